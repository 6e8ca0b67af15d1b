"""What the outbox stores and hands back: a row's state, the row, and the results of
capture, settlement and inspection. Shared by every storage backend."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..delivery.destination import Destination
from ..event import Event, canonical_json, key_of_body
from ..frozen import frozen

if TYPE_CHECKING:
    from .store import OutboxLocation


# The columns of a row, in the order :meth:`OutboxRow.from_db` reads them.
COLUMNS = (
    "id, dedup_key, payload, event_name, state, attempts, last_status, last_error_code, "
    "last_error_message, request_id, created, updated, next_attempt_at, owner, lease_expires_at, "
    "source, source_line, destination_id, claim_token"
)


# One event as bulk capture hands it to a store: (de-duplication key, body, event name,
# input line). Plain tuples, made as each record is read: a run keeps tens of thousands
# of them waiting for their transaction, where Event objects would cost several times the
# memory and the time to make and free.
BulkRow = tuple[str, str, str, "int | None"]


def bulk_row(event: Event, line: int | None = None) -> BulkRow:
    """``event`` as a :data:`BulkRow`: its key is :meth:`Event.dedup_key`, its body
    :meth:`Event.canonical_json`, both from the one serialisation made here."""
    body = canonical_json(event.payload())
    return key_of_body(body.encode()), body, event.event_name, line


def bulk_rows(events: Sequence[Event], lines: Sequence[int] | None = None) -> list[BulkRow]:
    """:func:`bulk_row` of each event, with its line from ``lines`` (same order) if given."""
    if lines is None:
        return [bulk_row(event) for event in events]
    return [bulk_row(event, line) for event, line in zip(events, lines, strict=True)]


class State(str, Enum):
    """Where an event is in its life."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    DEAD = "dead"


@frozen
class OutboxRow:
    """One event in the outbox, as stored."""

    id: int
    dedup_key: str
    payload_text: str
    event_name: str
    state: State
    attempts: int
    last_status: int | None
    last_error_code: str | None
    last_error_message: str | None
    request_id: str | None
    created: float
    updated: float
    next_attempt_at: float
    owner: str | None
    lease_expires_at: float | None
    source: str | None = None  # e.g. the batch run that captured it
    source_line: int | None = None  # its line in that run's input
    destination_id: int | None = None  # None: unbound (captured by an older ievents)
    # The fencing token of the claim that handed this row out (None: not claimed). Results
    # are written only while the row still carries it: a claim taken back and given to
    # another sender makes the first sender's results stale.
    claim_token: int | None = None

    @classmethod
    def from_db(cls, values: Sequence[Any]) -> OutboxRow:
        """Build a row from a ``SELECT`` of :data:`COLUMNS`."""
        return cls(
            id=values[0],
            dedup_key=values[1],
            payload_text=values[2],
            event_name=values[3],
            state=State(values[4]),
            attempts=values[5],
            last_status=values[6],
            last_error_code=values[7],
            last_error_message=values[8],
            request_id=values[9],
            created=values[10],
            updated=values[11],
            next_attempt_at=values[12],
            owner=values[13],
            lease_expires_at=values[14],
            source=values[15],
            source_line=values[16],
            destination_id=values[17],
            claim_token=values[18] if len(values) > 18 else None,
        )

    @property
    def payload(self) -> dict[str, Any]:
        """The event's JSON body (API field names)."""
        value: dict[str, Any] = json.loads(self.payload_text)
        return value

    def event(self) -> Event:
        """The stored event (``created_at`` exactly as captured)."""
        return Event.from_payload(self.payload)

    def error(self) -> dict[str, Any] | None:
        """``{"code", "message"}`` of the last failure, or None."""
        if self.last_error_code is None and self.last_error_message is None:
            return None
        return {"code": self.last_error_code, "message": self.last_error_message}


@frozen
class AddResult:
    """What :meth:`SqliteOutbox.add` did with one event."""

    id: int
    state: State
    added: bool  # False: the same event (same dedup key) was already in the outbox
    row: OutboxRow | None = None  # the existing row, when ``added`` is False


@frozen
class RowResult:
    """The new state of one claimed row, written back by :meth:`SqliteOutbox.record`.

    ``counts_attempt`` is False for a row handed back without being sent.
    ``next_attempt_at`` None keeps the row's current value.
    """

    row_id: int
    state: State
    status: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    next_attempt_at: float | None = None
    counts_attempt: bool = True
    unbind: bool = False  # bound by its claim and never answered: unbound again
    # The claim this result belongs to (OutboxRow.claim_token). Given, the result is
    # written only while the row still carries it (or, for a delivery, is pending).
    claim_token: int | None = None


@frozen
class OutboxSummary:
    """Counts and heartbeat times, for ``outbox status``."""

    path: Path | OutboxLocation
    schema_version: int
    counts: dict[State, int]
    oldest_pending_created: float | None
    next_attempt_at: float | None
    last_flush_at: float | None
    last_flush_exit_code: int | None
    last_success_at: float | None
    # Pending and in-flight events per destination (None: unbound), most first.
    pending_by_destination: tuple[tuple[Destination | None, int], ...] = ()
    # When a relay (flush --watch) last said it was alive; None: no relay ever ran.
    relay_heartbeat_at: float | None = None
    # When a relay last stopped cleanly (SIGTERM, Ctrl-C); None: none did.
    relay_stopped_at: float | None = None

    @property
    def relay_stopped(self) -> bool:
        """Whether the last relay to say anything said it stopped (no beat since)."""
        stopped, beat = self.relay_stopped_at, self.relay_heartbeat_at
        return stopped is not None and (beat is None or stopped >= beat)


# -- the outbox ------------------------------------------------------------------------------


def iter_pages(
    read_page: Callable[[list[State], int, int], list[OutboxRow]],
    states: Iterable[State],
    page: int,
) -> Iterator[OutboxRow]:
    """Every row in ``states`` by id, one page at a time (no lock held in between).

    ``read_page(states, limit, after_id)`` is a store's ``rows``; both backends page alike.
    """
    wanted = list(states)
    after = 0
    while True:
        chunk = read_page(wanted, page, after)
        yield from chunk
        if len(chunk) < page:
            return
        after = chunk[-1].id
