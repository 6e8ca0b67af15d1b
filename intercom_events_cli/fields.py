"""The rules for one field of an event: its name, the contact, ``created_at`` and other
times, and the text checks every field shares.

Everything here is pure: no I/O, no clock unless one is passed in. Every check either
returns a value or raises :class:`~intercom_events_cli.errors.ValidationError` naming the
field and the rule.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone

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
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Lone surrogates: what Python makes of bytes that are not UTF-8 (a Latin-1 argv, a JSON
# "\ud800" escape). They cannot be encoded into the request body.
SURROGATES = re.compile(r"[\ud800-\udfff]")
WHITESPACE = re.compile(r"\s")
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")

Clock = Callable[[], float]


def as_json(value: object) -> str:
    """``value`` as JSON text for a message (never a Python repr); lone surrogates escaped."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):  # a circular structure: cannot come from JSON input
        text = f'"{type(value).__name__}"'
    return SURROGATES.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def describe(value: object, limit: int = 40) -> str:
    text = as_json(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def refuse_surrogates(text: str, what: str, field_name: str) -> None:
    if SURROGATES.search(text):
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
            f"{field_name}: {describe(value)} is not a time; "
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
            number = float(text) if _DECIMAL.fullmatch(text) else None
        except ValueError:  # pragma: no cover - the regex admits only floats
            number = None
        if number is None:
            return _parse_iso8601(text, field_name)
    else:
        raise ValidationError(
            f"{field_name}: {describe(value)} is not a time; "
            "use Unix seconds, ISO-8601 (2024-01-31T12:00:00Z) or 'now'",
            field=field_name,
        )
    if math.isnan(number) or math.isinf(number) or number < 0:
        raise ValidationError(
            f"{field_name}: {describe(value)} is not a valid Unix time; "
            "use a non-negative number of seconds",
            field=field_name,
        )
    if number >= MILLISECONDS_THRESHOLD:
        number /= 1000
    seconds = int(number)
    if seconds > MAX_TIMESTAMP:
        raise ValidationError(
            f"{field_name}: {describe(value)} is too far in the future; "
            "use Unix seconds or milliseconds",
            field=field_name,
        )
    return seconds


def _parse_iso8601(text: str, field_name: str) -> int:
    if text[-1:] in ("Z", "z"):
        normalised = text[:-1] + "+00:00"  # which the offset pattern below cannot match
    else:
        normalised = _OFFSET_WITHOUT_COLON.sub(r"\1:\2", text)
    try:
        moment = datetime.fromisoformat(normalised)
    except ValueError:
        raise ValidationError(
            f"{field_name}: {describe(text)} is not a time; "
            "use Unix seconds, ISO-8601 (2024-01-31T12:00:00Z) or 'now'",
            field=field_name,
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        seconds = int(moment.timestamp())
    except (OverflowError, ValueError, OSError):
        raise ValidationError(
            f"{field_name}: {describe(text)} is out of range", field=field_name
        ) from None
    if seconds < 0:
        raise ValidationError(
            f"{field_name}: {describe(text)} is before 1970; Intercom needs a Unix time",
            field=field_name,
        )
    if seconds > MAX_TIMESTAMP:  # 9999-12-31T23:59:59-01:00 is in the year 10000 in UTC
        raise ValidationError(f"{field_name}: {describe(text)} is out of range", field=field_name)
    return seconds


def format_utc(seconds: int) -> str:
    """Unix seconds as ``2024-01-31T12:00:00Z``."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_event_name(name: object) -> str:
    """Return the event name, or refuse an empty, over-long or control-character name."""
    if not isinstance(name, str):
        raise ValidationError(f"event_name: {describe(name)} is not a string", field="event_name")
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
    if CONTROL_CHARACTERS.search(name):
        raise ValidationError(
            "event_name contains a control character (such as a newline or tab); remove it",
            field="event_name",
        )
    refuse_surrogates(name, "event_name", "event_name")
    return name


def validate_identity(name: str, value: object) -> str | None:
    """A contact field (``user_id``, ``email``, ``id``) as text, or None; refuses a bad one."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValidationError(f"{name}: {describe(value)} is not a string", field=name)
    text = str(value)
    if not text.strip():
        raise ValidationError(f"{name} is empty; give a value or leave it out", field=name)
    if len(text) > MAX_STRING_LENGTH:
        raise ValidationError(
            f"{name} is {len(text)} characters long; at most {MAX_STRING_LENGTH}", field=name
        )
    if CONTROL_CHARACTERS.search(text):
        raise ValidationError(f"{name} contains a control character", field=name)
    refuse_surrogates(text, name, name)
    # \s is str.isspace(); the regex is much faster than a per-character generator.
    if name == "email" and ("@" not in text or WHITESPACE.search(text)):
        raise ValidationError(f"email {describe(text)} is not an e-mail address", field=name)
    return text
