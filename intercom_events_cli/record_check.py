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

from typing import Any

from .fields import (
    MAX_METADATA_KEYS,
    MAX_STRING_LENGTH,
    MILLISECONDS_THRESHOLD,
    SURROGATES,
    Clock,
    parse_timestamp,
    validate_event_name,
    validate_identity,
)
from .metadata import (
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

Fields = tuple[str, int, "str | None", "str | None", "str | None", "dict[str, MetadataValue]"]


def plain_event(record: dict[str, Any], clock: Clock) -> Fields | None:
    """The fields of an Event for ``record`` (a dict with no key outside the record
    fields), or None when the record has no event name or no contact: the rule-by-rule
    path words those. Raises the ValidationError the rules raise for a bad value."""
    if "event_name" not in record:
        return None
    name = record["event_name"]
    if type(name) is not str or name not in _names:
        validate_event_name(name)
        if len(_names) < REMEMBERED:
            _names.add(name)
    user_id = _contact("user_id", record.get("user_id"))
    email = _contact("email", record.get("email"))
    contact_id = _contact("id", record.get("id"))
    if user_id is None and email is None and contact_id is None:
        return None
    created = record.get("created_at")
    if created is None:
        stamp = int(clock())
    elif type(created) is int and 0 <= created < MILLISECONDS_THRESHOLD:
        stamp = created
    else:
        stamp = parse_timestamp(created, field_name="created_at", clock=clock)
    given = record.get("metadata")
    if given is None:
        metadata: dict[str, MetadataValue] = {}
    elif type(given) is dict and len(given) <= MAX_METADATA_KEYS:
        metadata = _metadata(given, clock)
    else:
        metadata = validate_metadata(given, clock)
    return name, stamp, user_id, email, contact_id, metadata


def _contact(name: str, value: object) -> str | None:
    """``validate_identity``, with printable ASCII text accepted at once."""
    if value is None:
        return None
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
        metadata[key] = validate_metadata_value(key, value, clock)
    return metadata
