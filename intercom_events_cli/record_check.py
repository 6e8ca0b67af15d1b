"""The common bulk record checked inline: the rules of :mod:`.fields` and :mod:`.metadata`,
in the order :meth:`Event.create <intercom_events_cli.event.Event.create>` applies them.

A bulk capture spends most of its time validating, so the plain cases (printable ASCII
names and contacts, Unix seconds, short strings and integers in metadata) are accepted
here with a few string methods, and names and metadata keys already accepted are
remembered. Any other value goes to the rule itself, which accepts it or raises the
error it always raised: the result, Event or error, is the same as rule by rule
(``tests/test_record_check.py`` holds the two paths to that).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from .fields import (
    MAX_METADATA_KEYS,
    MAX_STRING_LENGTH,
    MAX_TIMESTAMP,
    MILLISECONDS_THRESHOLD,
    SURROGATES,
    Clock,
    parse_timestamp,
    validate_event_name,
    validate_identity,
)
from .metadata import (
    LINK,
    MetadataValue,
    validate_metadata,
    validate_metadata_key,
    validate_metadata_value,
)

# Names and keys remembered once accepted (their rules depend on nothing else), up to a
# bound: a file of unique names must not grow memory.
REMEMBERED = 4096
_names: set[str] = set()
_keys: dict[str, bool] = {}  # metadata key -> is it a date (``_date``)
# What exports write: UTC with Z. Neither a decimal number nor "now" (parse_timestamp's
# other cases), so its reading is _parse_iso8601's: Z as +00:00, then fromisoformat.
_ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def plain_event(record: dict[str, Any], clock: Clock) -> dict[str, Any] | None:
    """The fields of an Event for ``record`` (a dict with no key outside the record
    fields), by attribute name, or None when the record has no event name or no contact:
    the rule-by-rule path words those. Raises the ValidationError the rules raise for a
    bad value."""
    if "event_name" not in record:
        return None
    name = record["event_name"]
    if type(name) is not str or name not in _names:
        validate_event_name(name)
        if len(_names) < REMEMBERED:
            _names.add(name)
    # Most records give one contact: the call only for a value.
    user_id = record.get("user_id")
    if user_id is not None:
        user_id = _contact("user_id", user_id)
    email = record.get("email")
    if email is not None:
        email = _contact("email", email)
    contact_id = record.get("id")
    if contact_id is not None:
        contact_id = _contact("id", contact_id)
    elif user_id is None and email is None:
        return None
    created = record.get("created_at")
    if created is None:
        stamp = int(clock())
    elif type(created) is int and 0 <= created < MILLISECONDS_THRESHOLD:
        stamp = created
    else:
        utc = _utc_seconds(created)
        stamp = (
            parse_timestamp(created, field_name="created_at", clock=clock) if utc is None else utc
        )
    given = record.get("metadata")
    if given is None:
        metadata: dict[str, MetadataValue] = {}
    elif type(given) is dict and len(given) <= MAX_METADATA_KEYS:
        metadata = _metadata(given, clock)
    else:
        metadata = validate_metadata(given, clock)
    return {
        "event_name": name,
        "created_at": stamp,
        "user_id": user_id,
        "email": email,
        "contact_id": contact_id,
        "metadata": metadata,
    }


def _utc_seconds(value: object) -> int | None:
    """``2024-01-31T12:00:00Z`` as ``parse_timestamp`` reads it (the same calls, without
    its other cases), or None for it to judge."""
    if type(value) is not str or not _ISO_UTC.fullmatch(value):
        return None
    try:
        seconds = int(datetime.fromisoformat(value[:-1] + "+00:00").timestamp())
    except (ValueError, OverflowError, OSError):
        return None
    return seconds if 0 <= seconds <= MAX_TIMESTAMP else None


def _contact(name: str, value: object) -> str | None:
    """``validate_identity`` of a value that is not None, printable ASCII text at once."""
    if (
        type(value) is str
        and 0 < len(value) <= MAX_STRING_LENGTH
        and value.isascii()
        and value.isprintable()  # no control character (ASCII: no other kind of space)
        and not value.isspace()
        and (name != "email" or ("@" in value and " " not in value))
    ):
        return value
    return validate_identity(name, value)


def _metadata(given: dict[str, Any], clock: Clock) -> dict[str, MetadataValue]:
    """``validate_metadata`` for a dict of at most ten keys: key, then value, in order."""
    metadata: dict[str, MetadataValue] = {}
    for key, value in given.items():
        is_date = _keys.get(key)
        if is_date is None:
            validate_metadata_key(key)
            is_date = key.endswith("_date")
            if len(_keys) < REMEMBERED:
                _keys[key] = is_date
        kind = type(value)
        if is_date:
            if kind is int and 0 <= value < MILLISECONDS_THRESHOLD:
                metadata[key] = value
                continue
        elif kind is str:
            plain = value.isascii() or not SURROGATES.search(value)
            if len(value) <= MAX_STRING_LENGTH and plain:
                metadata[key] = value
                continue
        elif kind is int:
            metadata[key] = value
            continue
        elif kind is dict and len(value) == 2:
            plain = _plain_object(value)
            if plain is not None:
                metadata[key] = plain
                continue
        metadata[key] = validate_metadata_value(key, value, clock)
    return metadata


def _plain_object(value: dict[str, Any]) -> dict[str, Any] | None:
    """A rich link or a monetary amount of plain ASCII values, as ``_validate_object``
    returns it, or None for the rules to judge."""
    if "url" in value and "value" in value:
        url, text = value["url"], value["value"]
        if (
            type(url) is str
            and type(text) is str
            and len(url) <= MAX_STRING_LENGTH
            and len(text) <= MAX_STRING_LENGTH
            and url.isascii()
            and text.isascii()
            and LINK.match(url)
        ):
            return {"url": url, "value": text}
    elif "amount" in value and "currency" in value:
        amount, currency = value["amount"], value["currency"]
        if (
            type(amount) is int
            and amount >= 0
            and type(currency) is str
            and len(currency) == 3
            and currency.isascii()
            and currency.isalpha()
        ):
            return {"amount": amount, "currency": currency}
    return None
