"""The Event: validation, metadata typing, ``created_at`` parsing, canonical payload.

Everything here is pure: no I/O, no clock unless one is passed in. Every parser either
returns a value or raises :class:`~intercom_events_cli.errors.ValidationError` naming the
field and the rule, so that bad input is refused before anything is sent or stored.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from .errors import ValidationError

MAX_METADATA_KEYS = 10
MAX_STRING_LENGTH = 255
MAX_EVENT_NAME_LENGTH = 255
# Intercom silently drops keys with these characters; refuse them instead.
FORBIDDEN_KEY_CHARS = frozenset(".$\x00~`!@#%^&*'{}|\\\"")
# A value at or above this is taken as Unix milliseconds (10^11 s is the year 5138).
MILLISECONDS_THRESHOLD = 10**11
# datetime cannot represent years past 9999; anything later is a mistake anyway.
MAX_TIMESTAMP = 253402300799
CURRENCY_PATTERN = re.compile(r"[A-Za-z]{3}")
_OFFSET_WITHOUT_COLON = re.compile(r"([+-]\d{2})(\d{2})$")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Lone surrogates: what Python makes of bytes that are not UTF-8 (a Latin-1 argv, a JSON
# "\ud800" escape). They cannot be encoded into the request body.
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s")

Clock = Callable[[], float]
MetadataValue = str | int | float | dict[str, Any]


def as_json(value: object) -> str:
    """``value`` as JSON text for a message (never a Python repr); lone surrogates escaped."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):  # a circular structure: cannot come from JSON input
        text = f'"{type(value).__name__}"'
    return _SURROGATES.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def _describe(value: object, limit: int = 40) -> str:
    text = as_json(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refuse_surrogates(text: str, what: str, field_name: str) -> None:
    if _SURROGATES.search(text):
        raise ValidationError(
            f"{what} is not valid UTF-8 text; check the encoding of the input", field=field_name
        )


def parse_timestamp(value: object, *, field_name: str, clock: Clock = time.time) -> int:
    """Turn a time into whole Unix seconds (UTC).

    Accepts Unix seconds, Unix milliseconds (any value >= 10^11 is divided by 1000),
    ISO-8601 with ``Z`` or an offset (a naive time is taken as UTC), and ``now``.
    Numbers may be given as JSON numbers or as strings.
    """
    if isinstance(value, bool) or value is None:
        raise ValidationError(
            f"{field_name}: {_describe(value)} is not a time; "
            "use Unix seconds, ISO-8601 (2024-01-31T12:00:00Z) or 'now'",
            field=field_name,
        )
    number: float | None = None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an int from JSON can be too large for a float
            number = math.inf
    elif isinstance(value, str):
        text = value.strip()
        if text.lower() == "now":
            return int(clock())
        try:
            number = float(text) if re.fullmatch(r"-?\d+(\.\d+)?", text) else None
        except ValueError:  # pragma: no cover - the regex admits only floats
            number = None
        if number is None:
            return _parse_iso8601(text, field_name)
    else:
        raise ValidationError(
            f"{field_name}: {_describe(value)} is not a time; "
            "use Unix seconds, ISO-8601 (2024-01-31T12:00:00Z) or 'now'",
            field=field_name,
        )
    if math.isnan(number) or math.isinf(number) or number < 0:
        raise ValidationError(
            f"{field_name}: {_describe(value)} is not a valid Unix time; "
            "use a non-negative number of seconds",
            field=field_name,
        )
    if number >= MILLISECONDS_THRESHOLD:
        number /= 1000
    seconds = int(number)
    if seconds > MAX_TIMESTAMP:
        raise ValidationError(
            f"{field_name}: {_describe(value)} is too far in the future; "
            "use Unix seconds or milliseconds",
            field=field_name,
        )
    return seconds


def _parse_iso8601(text: str, field_name: str) -> int:
    normalised = text
    if normalised[-1:] in ("Z", "z"):
        normalised = normalised[:-1] + "+00:00"
    normalised = _OFFSET_WITHOUT_COLON.sub(r"\1:\2", normalised)
    try:
        moment = datetime.fromisoformat(normalised)
    except ValueError:
        raise ValidationError(
            f"{field_name}: {_describe(text)} is not a time; "
            "use Unix seconds, ISO-8601 (2024-01-31T12:00:00Z) or 'now'",
            field=field_name,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        seconds = int(moment.timestamp())
    except (OverflowError, ValueError, OSError):
        raise ValidationError(
            f"{field_name}: {_describe(text)} is out of range", field=field_name
        ) from None
    if seconds < 0:
        raise ValidationError(
            f"{field_name}: {_describe(text)} is before 1970; Intercom needs a Unix time",
            field=field_name,
        )
    if seconds > MAX_TIMESTAMP:  # 9999-12-31T23:59:59-01:00 is in the year 10000 in UTC
        raise ValidationError(f"{field_name}: {_describe(text)} is out of range", field=field_name)
    return seconds


def format_utc(seconds: int) -> str:
    """Unix seconds as ``2024-01-31T12:00:00Z``."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_event_name(name: object) -> str:
    """Return the event name, or refuse an empty, over-long or control-character name."""
    if not isinstance(name, str):
        raise ValidationError(f"event_name: {_describe(name)} is not a string", field="event_name")
    if not name.strip():
        raise ValidationError(
            "event_name is empty; give a name such as invited-friend", field="event_name"
        )
    if len(name) > MAX_EVENT_NAME_LENGTH:
        raise ValidationError(
            f"event_name is {len(name)} characters long; Intercom allows at most "
            f"{MAX_EVENT_NAME_LENGTH}",
            field="event_name",
        )
    if _CONTROL_CHARACTERS.search(name):
        raise ValidationError(
            "event_name contains a control character (such as a newline or tab); remove it",
            field="event_name",
        )
    _refuse_surrogates(name, "event_name", "event_name")
    return name


def validate_metadata_key(key: object) -> str:
    """Return the key, or refuse one that Intercom would drop (empty, ``.``, ``$``, ...)."""
    if not isinstance(key, str):  # pragma: no cover - JSON object keys are strings
        raise ValidationError(f"metadata key {_describe(key)} is not a string", field="metadata")
    if key == "":
        raise ValidationError("metadata key is empty; use KEY=VALUE", field="metadata")
    if _SURROGATES.search(key):  # the message only when needed: this runs for every key
        _refuse_surrogates(key, f"metadata key {_describe(key)}", "metadata")
    if not FORBIDDEN_KEY_CHARS.isdisjoint(key):
        bad = sorted({ch for ch in key if ch in FORBIDDEN_KEY_CHARS})
        shown = " ".join("NUL" if ch == "\x00" else ch for ch in bad)
        raise ValidationError(
            f"metadata key {_describe(key)} contains {shown}; Intercom does not accept "
            "keys with . $ NUL or any of ~`!@#%^&*'{}|\\\"; rename the key",
            field=f"metadata.{key}",
        )
    return key


def _validate_object(key: str, value: Mapping[str, Any]) -> dict[str, Any]:
    keys = set(value)
    if keys == {"url", "value"}:
        url, text = value["url"], value["value"]
        if not isinstance(url, str) or not re.match(r"https?://\S", url, re.IGNORECASE):
            raise ValidationError(
                f"metadata {as_json(key)}: a rich link needs an http or https 'url', "
                f"got {_describe(url)}",
                field=f"metadata.{key}",
            )
        if not isinstance(text, str):
            raise ValidationError(
                f"metadata {as_json(key)}: a rich link's 'value' must be a string, "
                f"got {_describe(text)}",
                field=f"metadata.{key}",
            )
        for part, part_text in (("url", url), ("value", text)):
            _refuse_surrogates(
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
                f"whole number of cents, got {_describe(amount)}",
                field=f"metadata.{key}",
            )
        if not isinstance(currency, str) or not CURRENCY_PATTERN.fullmatch(currency):
            raise ValidationError(
                f"metadata {as_json(key)}: a monetary amount needs 'currency' as three letters "
                f"(such as usd), got {_describe(currency)}",
                field=f"metadata.{key}",
            )
        return {"amount": amount, "currency": currency}
    raise ValidationError(
        f'metadata {as_json(key)}: an object must be a rich link {{"url", "value"}} or a '
        f'monetary amount {{"amount", "currency"}}, got keys {sorted(map(str, keys))}',
        field=f"metadata.{key}",
    )


def validate_metadata_value(key: str, value: object, clock: Clock = time.time) -> MetadataValue:
    """Check one metadata value against Intercom's types and return what is sent."""
    if key.endswith("_date"):
        return parse_timestamp(value, field_name=f"metadata {as_json(key)}", clock=clock)
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise ValidationError(
                f"metadata {as_json(key)} is {len(value)} characters long; Intercom allows at most "
                f"{MAX_STRING_LENGTH} (shorten it or send a rich link)",
                field=f"metadata.{key}",
            )
        if _SURROGATES.search(value):
            _refuse_surrogates(value, f"metadata {as_json(key)}", f"metadata.{key}")
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
        f"metadata {as_json(key)}: unsupported value {_describe(value)}", field=f"metadata.{key}"
    )


def validate_metadata(metadata: object, clock: Clock = time.time) -> dict[str, MetadataValue]:
    """Validate a whole metadata object; ``_date`` keys come back as Unix seconds."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ValidationError(
            f"metadata must be a JSON object, got {_describe(metadata)}", field="metadata"
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
            f"metadata {_describe(option)} has no '='; use KEY=VALUE for a string or "
            "KEY:=JSON for a number or object",
            field="metadata",
        )
    if position > 0 and option[position - 1] == ":":
        key, raw = option[: position - 1], option[position + 1 :]
        try:
            return key, json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise ValidationError(
                f"metadata {as_json(key)}: {_describe(raw)} is not valid JSON; quote the whole "
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
            f"--metadata-json must be a JSON object, got {_describe(value)}", field="metadata"
        )
    return value


def merge_metadata(base: Mapping[str, Any], options: Iterable[str]) -> dict[str, Any]:
    """``--metadata-json`` first, then each ``-m`` in order (``-m`` wins on a key)."""
    merged = dict(base)
    for option in options:
        key, value = parse_metadata_option(option)
        merged[key] = value
    return merged


def _validate_identity(name: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValidationError(f"{name}: {_describe(value)} is not a string", field=name)
    text = str(value)
    if not text.strip():
        raise ValidationError(f"{name} is empty; give a value or leave it out", field=name)
    if len(text) > MAX_STRING_LENGTH:
        raise ValidationError(
            f"{name} is {len(text)} characters long; at most {MAX_STRING_LENGTH}", field=name
        )
    if _CONTROL_CHARACTERS.search(text):
        raise ValidationError(f"{name} contains a control character", field=name)
    _refuse_surrogates(text, name, name)
    # \s is str.isspace(); the regex is much faster than a per-character generator.
    if name == "email" and ("@" not in text or _WHITESPACE.search(text)):
        raise ValidationError(f"email {_describe(text)} is not an e-mail address", field=name)
    return text


@dataclass(frozen=True)
class Event:
    """One Intercom data event, validated, with ``created_at`` fixed.

    Build one with :meth:`Event.create` (or :func:`event_from_record` for a bulk record):
    the constructor itself does not validate.
    """

    event_name: str
    created_at: int
    user_id: str | None = None
    email: str | None = None
    contact_id: str | None = None
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        event_name: str,
        *,
        user_id: str | int | None = None,
        email: str | None = None,
        contact_id: str | None = None,
        created_at: object = None,
        metadata: Mapping[str, Any] | None = None,
        clock: Clock = time.time,
    ) -> Event:
        """Validate everything and return an Event; ``created_at`` defaults to now."""
        name = validate_event_name(event_name)
        identities = {
            "user_id": _validate_identity("user_id", user_id),
            "email": _validate_identity("email", email),
            "id": _validate_identity("id", contact_id),
        }
        if not any(identities.values()):
            raise ValidationError(
                "no contact given; use --user-id, --email or --id (user_id, email or id "
                "in a record)",
                field="user_id",
            )
        stamp = (
            int(clock())
            if created_at is None
            else parse_timestamp(created_at, field_name="created_at", clock=clock)
        )
        return cls(
            event_name=name,
            created_at=stamp,
            user_id=identities["user_id"],
            email=identities["email"],
            contact_id=identities["id"],
            metadata=validate_metadata(metadata, clock),
        )

    @property
    def contact(self) -> str:
        """A short human description of the contact (``user_id 314159``)."""
        parts = [
            f"{label} {value}"
            for label, value in (
                ("user_id", self.user_id),
                ("email", self.email),
                ("id", self.contact_id),
            )
            if value
        ]
        return ", ".join(parts)

    def payload(self) -> dict[str, Any]:
        """The exact JSON body for ``POST /events``."""
        body: dict[str, Any] = {"event_name": self.event_name, "created_at": self.created_at}
        if self.user_id is not None:
            body["user_id"] = self.user_id
        if self.email is not None:
            body["email"] = self.email
        if self.contact_id is not None:
            body["id"] = self.contact_id
        if self.metadata:
            body["metadata"] = dict(self.metadata)
        return body

    @cached_property
    def _canonical(self) -> bytes:
        # Sorted keys and no spaces: one serialisation serves as the body and the key.
        return json.dumps(
            self.payload(), ensure_ascii=False, sort_keys=True, separators=(",", ":")
        ).encode()

    def body(self) -> bytes:
        """The request body (canonical JSON): identical on every attempt, so retries are safe."""
        return self._canonical

    def dedup_key(self) -> str:
        """SHA-256 of the canonical body: the same event always has the same key."""
        return hashlib.sha256(self._canonical).hexdigest()

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Event:
        """Rebuild an Event from a payload this module produced (e.g. from the outbox)."""
        return cls(
            event_name=payload["event_name"],
            created_at=int(payload["created_at"]),
            user_id=payload.get("user_id"),
            email=payload.get("email"),
            contact_id=payload.get("id"),
            metadata=dict(payload.get("metadata") or {}),
        )


RECORD_FIELDS = frozenset({"event_name", "created_at", "user_id", "email", "id", "metadata"})


def event_from_record(record: object, clock: Clock = time.time) -> Event:
    """Validate one bulk record (API field names) into an Event.

    Keys starting with ``_`` are ignored (so a rejects file can be replayed); any other
    unknown key is refused, naming it, so that a typo never sends an event without its
    contact.
    """
    if not isinstance(record, Mapping):
        raise ValidationError(
            f"a record must be a JSON object, got {_describe(record)}", field="record"
        )
    unknown = [k for k in record if k not in RECORD_FIELDS and not str(k).startswith("_")]
    if unknown:
        import difflib

        close = difflib.get_close_matches(str(unknown[0]), sorted(RECORD_FIELDS), n=1)
        suggestion = f" (did you mean {as_json(close[0])}?)" if close else ""
        raise ValidationError(
            f"unknown field {as_json(unknown[0])}{suggestion}; a record takes event_name, "
            "created_at, user_id, email, id and metadata",
            field=as_json(unknown[0])[1:-1],
        )
    if "_metadata_cell" in record:
        raise ValidationError(
            "the metadata cell of this rejected CSV row is in _metadata_cell: put its keys "
            "into metadata (one JSON object), then delete _metadata_cell",
            field="metadata",
        )
    if "event_name" not in record:
        raise ValidationError("event_name is missing", field="event_name")
    return Event.create(
        record["event_name"],
        user_id=record.get("user_id"),
        email=record.get("email"),
        contact_id=record.get("id"),
        created_at=record.get("created_at"),
        metadata=record.get("metadata"),
        clock=clock,
    )
