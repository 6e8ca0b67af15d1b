"""The Event: one validated Intercom data event, its canonical payload and dedup key.

The rules for each field are :mod:`.fields` (name, contact, times) and :mod:`.metadata`;
their public names are re-exported here, where the rest of the code finds them. Everything
here is pure: no I/O, no clock unless one is passed in.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import field
from functools import cached_property
from typing import Any

from . import record_check
from .errors import ValidationError
from .fields import (
    FORBIDDEN_KEY_CHARS,
    MAX_EVENT_NAME_LENGTH,
    MAX_METADATA_KEYS,
    MAX_STRING_LENGTH,
    MAX_TIMESTAMP,
    MILLISECONDS_THRESHOLD,
    Clock,
    as_json,
    describe,
    format_utc,
    parse_timestamp,
    validate_event_name,
    validate_identity,
)
from .frozen import frozen
from .metadata import (
    MetadataValue,
    merge_metadata,
    parse_metadata_json,
    parse_metadata_option,
    validate_metadata,
    validate_metadata_key,
    validate_metadata_value,
)

__all__ = [
    "FORBIDDEN_KEY_CHARS",
    "MAX_EVENT_NAME_LENGTH",
    "MAX_METADATA_KEYS",
    "MAX_STRING_LENGTH",
    "MAX_TIMESTAMP",
    "MILLISECONDS_THRESHOLD",
    "RECORD_FIELDS",
    "Clock",
    "Event",
    "MetadataValue",
    "as_json",
    "event_from_record",
    "format_utc",
    "merge_metadata",
    "parse_metadata_json",
    "parse_metadata_option",
    "parse_timestamp",
    "validate_event_name",
    "validate_metadata",
    "validate_metadata_key",
    "validate_metadata_value",
]


@frozen
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
            "user_id": validate_identity("user_id", user_id),
            "email": validate_identity("email", email),
            "id": validate_identity("id", contact_id),
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
        return self.canonical_json().encode()

    @cached_property
    def _canonical_text(self) -> str:
        return canonical_json(self.payload())

    def canonical_json(self) -> str:
        """The request body as text: what the outbox stores (see :meth:`body`)."""
        return self._canonical_text

    def body(self) -> bytes:
        """The request body (canonical JSON): identical on every attempt, so retries are safe."""
        return self._canonical

    def dedup_key(self) -> str:
        """SHA-256 of the canonical body: the same event always has the same key."""
        return key_of_body(self._canonical)

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


def _canonical_encoder() -> Callable[[Any], str]:
    """``json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))``,
    built once: json.dumps builds an encoder on every call with these arguments, which is
    a third of a bulk capture's serialising time."""
    from json import encoder

    # The C encoder, as json.dumps uses it (no circular check: a payload is JSON data).
    make = getattr(encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - only interpreters without the C accelerator
        slow = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return lambda value: slow.encode(value)
    iterate = make(
        None,
        json.JSONEncoder().default,
        encoder.encode_basestring,
        None,
        ":",
        ",",
        True,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan, as json.dumps (a validated payload has no NaN)
    )
    return lambda value: "".join(iterate(value, 0))


_encode = _canonical_encoder()


def key_of_body(body: bytes) -> str:
    """The de-duplication key of a canonical body (:meth:`Event.dedup_key`): its SHA-256."""
    return hashlib.sha256(body).hexdigest()


def canonical_json(value: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, UTF-8 kept as is."""
    return _encode(value)


RECORD_FIELDS = frozenset({"event_name", "created_at", "user_id", "email", "id", "metadata"})


def event_from_record(record: object, clock: Clock = time.time) -> Event:
    """Validate one bulk record (API field names) into an Event.

    Keys starting with ``_`` are ignored (so a rejects file can be replayed); any other
    unknown key is refused, naming it, so that a typo never sends an event without its
    contact.

    The common record (a dict of known fields holding plain values) is checked by
    :func:`record_check.plain_event`, inline; anything else, valid or not, by the rules
    one by one (:func:`checked_event_from_record`), which word every error.
    """
    if type(record) is dict and record.keys() <= RECORD_FIELDS:
        fields = record_check.plain_event(record, clock)
        if fields is not None:
            # Its fields are validated: set at once, without the frozen dataclass's
            # __init__ (one object.__setattr__ per field, a tenth of the whole check).
            event = object.__new__(Event)
            object.__setattr__(event, "__dict__", fields)
            return event
    return checked_event_from_record(record, clock)


def checked_event_from_record(record: object, clock: Clock = time.time) -> Event:
    """:func:`event_from_record` rule by rule: the reference the fast path agrees with."""
    if not isinstance(record, Mapping):
        raise ValidationError(
            f"a record must be a JSON object, got {describe(record)}", field="record"
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
