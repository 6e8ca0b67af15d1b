"""Event metadata: keys Intercom accepts, typed values (strings, numbers, times, rich
links, monetary amounts), and the ``--metadata`` / ``--metadata-json`` options.

Pure, like :mod:`.fields`: a value or a :class:`~intercom_events_cli.errors.ValidationError`
naming the key and the rule.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ValidationError
from .fields import (
    CURRENCY_PATTERN,
    FORBIDDEN_KEY_CHARS,
    MAX_METADATA_KEYS,
    MAX_STRING_LENGTH,
    SURROGATES,
    Clock,
    as_json,
    describe,
    parse_timestamp,
    refuse_surrogates,
)

MetadataValue = str | int | float | dict[str, Any]
LINK = re.compile(r"https?://\S", re.IGNORECASE)


def validate_metadata_key(key: object) -> str:
    """Return the key, or refuse one that Intercom would drop (empty, ``.``, ``$``, ...)."""
    if not isinstance(key, str):  # pragma: no cover - JSON object keys are strings
        raise ValidationError(f"metadata key {describe(key)} is not a string", field="metadata")
    if key == "":
        raise ValidationError("metadata key is empty; use KEY=VALUE", field="metadata")
    if SURROGATES.search(key):  # the message only when needed: this runs for every key
        refuse_surrogates(key, f"metadata key {describe(key)}", "metadata")
    if not FORBIDDEN_KEY_CHARS.isdisjoint(key):
        bad = sorted({ch for ch in key if ch in FORBIDDEN_KEY_CHARS})
        shown = " ".join("NUL" if ch == "\x00" else ch for ch in bad)
        raise ValidationError(
            f"metadata key {describe(key)} contains {shown}; Intercom does not accept "
            "keys with . $ NUL or any of ~`!@#%^&*'{}|\\\"; rename the key",
            field=f"metadata.{key}",
        )
    return key


def _validate_object(key: str, value: Mapping[str, Any]) -> dict[str, Any]:
    keys = set(value)
    if keys == {"url", "value"}:
        url, text = value["url"], value["value"]
        if not isinstance(url, str) or not LINK.match(url):
            raise ValidationError(
                f"metadata {as_json(key)}: a rich link needs an http or https 'url', "
                f"got {describe(url)}",
                field=f"metadata.{key}",
            )
        if not isinstance(text, str):
            raise ValidationError(
                f"metadata {as_json(key)}: a rich link's 'value' must be a string, "
                f"got {describe(text)}",
                field=f"metadata.{key}",
            )
        for part, part_text in (("url", url), ("value", text)):
            if SURROGATES.search(part_text):  # worded only when needed: this runs for every link
                refuse_surrogates(
                    part_text, f"metadata {as_json(key)}: the rich link's {part}", f"metadata.{key}"
                )
            if len(part_text) > MAX_STRING_LENGTH:
                raise ValidationError(
                    f"metadata {as_json(key)}: the rich link's {part} is "
                    f"{len(part_text)} characters; "
                    f"at most {MAX_STRING_LENGTH}",
                    field=f"metadata.{key}",
                )
        return {"url": url, "value": text}
    if keys == {"amount", "currency"}:
        amount, currency = value["amount"], value["currency"]
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValidationError(
                f"metadata {as_json(key)}: a monetary amount needs 'amount' as a non-negative "
                f"whole number of cents, got {describe(amount)}",
                field=f"metadata.{key}",
            )
        if not isinstance(currency, str) or not CURRENCY_PATTERN.fullmatch(currency):
            raise ValidationError(
                f"metadata {as_json(key)}: a monetary amount needs 'currency' as three letters "
                f"(such as usd), got {describe(currency)}",
                field=f"metadata.{key}",
            )
        return {"amount": amount, "currency": currency}
    raise ValidationError(
        f'metadata {as_json(key)}: an object must be a rich link {{"url", "value"}} or a '
        f'monetary amount {{"amount", "currency"}}, got keys {sorted(map(str, keys))}',
        field=f"metadata.{key}",
    )


@functools.lru_cache(maxsize=1024)
def _date_label(key: str) -> str:
    # Worded for every date value (parse_timestamp takes its name up front): remembered.
    return f"metadata {as_json(key)}"


def validate_metadata_value(key: str, value: object, clock: Clock = time.time) -> MetadataValue:
    """Check one metadata value against Intercom's types and return what is sent."""
    if key.endswith("_date"):
        return parse_timestamp(value, field_name=_date_label(key), clock=clock)
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise ValidationError(
                f"metadata {as_json(key)} is {len(value)} characters long; Intercom allows at most "
                f"{MAX_STRING_LENGTH} (shorten it or send a rich link)",
                field=f"metadata.{key}",
            )
        if SURROGATES.search(value):
            refuse_surrogates(value, f"metadata {as_json(key)}", f"metadata.{key}")
        return value
    if isinstance(value, bool) or value is None:
        raise ValidationError(
            f"metadata {as_json(key)}: {json.dumps(value)} is not an Intercom metadata type; "
            "send a string or a number instead",
            field=f"metadata.{key}",
        )
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValidationError(
                f"metadata {as_json(key)}: {value} is not a finite number", field=f"metadata.{key}"
            )
        return value
    if isinstance(value, Mapping):
        return _validate_object(key, value)
    if isinstance(value, list | tuple):
        raise ValidationError(
            f"metadata {as_json(key)}: arrays are not supported by Intercom; send a string instead",
            field=f"metadata.{key}",
        )
    raise ValidationError(  # pragma: no cover - JSON has no other types
        f"metadata {as_json(key)}: unsupported value {describe(value)}", field=f"metadata.{key}"
    )


def validate_metadata(metadata: object, clock: Clock = time.time) -> dict[str, MetadataValue]:
    """Validate a whole metadata object; ``_date`` keys come back as Unix seconds."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ValidationError(
            f"metadata must be a JSON object, got {describe(metadata)}", field="metadata"
        )
    if len(metadata) > MAX_METADATA_KEYS:
        raise ValidationError(
            f"metadata has {len(metadata)} keys; Intercom keeps only the first "
            f"{MAX_METADATA_KEYS} and silently drops the rest, so remove "
            f"{len(metadata) - MAX_METADATA_KEYS}",
            field="metadata",
        )
    return {
        validate_metadata_key(key): validate_metadata_value(key, value, clock)
        for key, value in metadata.items()
    }


def parse_metadata_option(option: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` (a string) or ``KEY:=JSON`` (a typed value) from ``-m``."""
    position = option.find("=")
    if position < 0:
        raise ValidationError(
            f"metadata {describe(option)} has no '='; use KEY=VALUE for a string or "
            "KEY:=JSON for a number or object",
            field="metadata",
        )
    if position > 0 and option[position - 1] == ":":
        key, raw = option[: position - 1], option[position + 1 :]
        try:
            return key, json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise ValidationError(
                f"metadata {as_json(key)}: {describe(raw)} is not valid JSON; quote the whole "
                'option, e.g. -m \'price:={"amount": 2999, "currency": "usd"}\'',
                field=f"metadata.{key}",
            ) from None
    return option[:position], option[position + 1 :]


def parse_metadata_json(text: str) -> dict[str, Any]:
    """Parse the value of ``--metadata-json``: a JSON object (``@FILE`` is read by the CLI)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"--metadata-json is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}",
            field="metadata",
        ) from None
    except (ValueError, RecursionError):  # a 5000-digit number, absurdly deep nesting
        raise ValidationError(
            "--metadata-json is not usable JSON: a number too long or nesting too deep",
            field="metadata",
        ) from None
    if not isinstance(value, dict):
        raise ValidationError(
            f"--metadata-json must be a JSON object, got {describe(value)}", field="metadata"
        )
    return value


def merge_metadata(base: Mapping[str, Any], options: Iterable[str]) -> dict[str, Any]:
    """``--metadata-json`` first, then each ``-m`` in order (``-m`` wins on a key)."""
    merged = dict(base)
    for option in options:
        key, value = parse_metadata_option(option)
        merged[key] = value
    return merged
