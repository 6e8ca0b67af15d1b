"""The storage protocol behind every outbox command, and the factory that opens one.

Two stores implement :class:`OutboxStore`: the SQLite file (:mod:`.outbox`) and a
PostgreSQL schema (:mod:`.pg_outbox`). The delivery engine, ``batch`` and the commands
use only what the protocol names, so they never know which one they hold.

Where the outbox is (``--outbox`` / ``IEVENTS_OUTBOX``): a ``postgresql://`` (or
``postgres://``) URI opens PostgreSQL, anything else is a file path. psycopg is imported
only when a URI is opened: the SQLite path never loads it.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import OutboxError

# Re-exported: where an outbox is belongs with opening it, for the callers.
from .location import (
    DEFAULT_PG_SCHEMA,
    SCHEMA_ENV,
    PostgresLocation,
    is_postgres_uri,
    refuse_uri_like,
    valid_schema_name,
)
from .location import (
    POSTGRES_SCHEMES as POSTGRES_SCHEMES,
)
from .location import (
    redact_uri as redact_uri,
)

if TYPE_CHECKING:
    from ..config import Settings
    from ..destination import Destination
    from ..event import Event
    from .rows import AddResult, OutboxRow, OutboxSummary, RowResult, State


class OutboxLocation(Protocol):
    """Where an outbox is: a :class:`~pathlib.Path` or a :class:`PostgresLocation`.

    ``str()`` of it is safe to print (a URI shows no password).
    """

    def exists(self) -> bool:
        """Whether anything was ever stored there (a URI: assumed so)."""
        ...


class OutboxStore(Protocol):
    """What the delivery engine, ``batch`` and the commands use of an outbox."""

    @property
    def path(self) -> OutboxLocation:
        """Where it is (for messages: no password)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...

    def __enter__(self) -> OutboxStore: ...

    def __exit__(self, *exc_info: object) -> None: ...

    # capture
    def add(
        self,
        event: Event,
        *,
        now: float | None = None,
        attempts: int = 0,
        last_status: int | None = None,
        last_error_code: str | None = None,
        last_error_message: str | None = None,
        request_id: str | None = None,
        next_attempt_at: float | None = None,
        destination_id: int | None = None,
    ) -> AddResult:
        """Store one event as pending unless the same event is already there."""
        ...

    def queue_many(
        self,
        events: Sequence[Event],
        *,
        source: str | None = None,
        source_lines: Sequence[int] | None = None,
        requeue: Collection[State] = (),
        now: float | None = None,
        destination_id: int | None = None,
    ) -> tuple[int, int]:
        """Bulk capture: (stored, skipped); pending rows already there are adopted."""
        ...

    # delivery
    def claim(
        self,
        owner: str,
        limit: int,
        *,
        lease_s: float = ...,
        now: float | None = None,
        destination_id: int | None = None,
        due_or_not: bool = False,
    ) -> list[OutboxRow]:
        """Claim up to ``limit`` due pending rows of a destination (binding unbound ones)."""
        ...

    def make_all_due(self, *, now: float | None = None, destination_id: int | None = None) -> int:
        """Bring pending rows' next attempt forward to now."""
        ...

    # destinations (see DESTINATION.md and destination.py)
    def bind(self, settings: Settings) -> int:
        """The id of the destination ``settings`` deliver to (stored when new): the
        token's workspace once learned, else the token's own."""
        ...

    def token_workspace(self, settings: Settings) -> str | None:
        """The workspace id learned for the token of ``settings``, or None (not yet)."""
        ...

    def learn(self, settings: Settings, workspace_id: str, name: str | None = None) -> int:
        """Bind the token of ``settings`` (and every event of its workspace) to
        ``workspace_id``, known also as ``name`` (a profile); returns the destination id."""
        ...

    def set_default_workspace(self, workspace_id: str) -> int:
        """Where SQL-enqueued rows naming no workspace go; returns the waiting rows taken."""
        ...

    def default_workspace(self) -> str | None:
        """The default workspace of SQL-enqueued rows, or None."""
        ...

    def move(
        self, from_ids: Sequence[int], to_id: int, state: State, *, dry_run: bool = False
    ) -> int:
        """Bind the rows in ``state`` of destinations ``from_ids`` to ``to_id``; a count."""
        ...

    def waiting_for_workspace(self) -> list[tuple[str | None, int]]:
        """Undelivered rows no token can take yet, by the workspace they name."""
        ...

    def destinations(self) -> dict[int, Destination]:
        """Every known destination by id."""
        ...

    def waiting_elsewhere(self, destination_id: int) -> list[tuple[Destination, int]]:
        """Undelivered events bound to other destinations, with their counts."""
        ...

    def count_undelivered(self, source: str) -> tuple[int, int]:
        """(pending or in flight, of which due later) among the rows of ``source``."""
        ...

    def count_due(self, destination_id: int | None, *, now: float | None = None) -> int:
        """Pending events due now for this destination (and unbound ones)."""
        ...

    def is_failing(self, destination_id: int) -> bool:
        """Whether the last delivery attempt for it failed temporarily."""
        ...

    def note_destination(self, destination_id: int, *, up: bool, now: float | None = None) -> None:
        """Remember whether Intercom answered or failed temporarily for it."""
        ...

    def renew(self, owner: str, *, lease_s: float = ...) -> list[int]:
        """Extend the leases ``owner`` still holds; the ids renewed."""
        ...

    def now(self) -> float:
        """Now by the clock the outbox's claims, leases and due times use."""
        ...

    def release(self, owner: str, ids: Sequence[int] | None = None) -> int:
        """Hand rows back to pending, unsent."""
        ...

    def record(self, owner: str, results: Sequence[RowResult], *, now: float | None = None) -> int:
        """Write delivery results back."""
        ...

    def note_flush(self, exit_code: int, *, now: float | None = None, relay: bool = False) -> None:
        """Remember when a flush finished and how (``relay``: a relay's heartbeat)."""
        ...

    def take_refused(self) -> list[OutboxRow]:
        """Rows claims made dead letters without sending them, since the last call."""
        ...

    # inspection and management
    def summary(self) -> OutboxSummary:
        """Counts per state and heartbeat times."""
        ...

    def rows(
        self, states: Iterable[State], *, limit: int | None = None, after_id: int = 0
    ) -> list[OutboxRow]:
        """Rows in ``states`` by id."""
        ...

    def iter_rows(self, states: Iterable[State], *, page: int = 500) -> Iterator[OutboxRow]:
        """Every row in ``states``, page by page."""
        ...

    def retry_dead(self, ids: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
        """Dead letters back to pending: (moved, not dead)."""
        ...

    def purge_plan(
        self, state: State, *, older_than_s: float | None = None, now: float | None = None
    ) -> tuple[int, int, float]:
        """What :meth:`purge` would delete."""
        ...

    def purge(self, state: State, *, max_id: int, cutoff: float) -> int:
        """Delete rows within the bounds of :meth:`purge_plan`."""
        ...


def resolve_location(option: str | None, env: Mapping[str, str]) -> Path | PostgresLocation:
    """``--outbox`` > ``IEVENTS_OUTBOX`` > the XDG default: a file path or a PostgreSQL URI.

    Anything else that looks like a URI or a connection string (``jdbc:...``,
    ``postgresql+psycopg://...``, ``host=... password=...``) raises :class:`OutboxError`
    (78). The PostgreSQL schema is ``IEVENTS_OUTBOX_SCHEMA`` (default ``ievents``).
    """
    from ..config import OUTBOX_ENV, resolve_outbox_path

    text = option or env.get(OUTBOX_ENV) or ""
    if text and not is_postgres_uri(text):
        # Anything else that looks like a URI or a connection string is refused: it must
        # never become a file named after it (which would hold its password).
        origin_of = getattr(env, "origin", None)
        origin = "--outbox" if option else origin_of(OUTBOX_ENV) if origin_of else OUTBOX_ENV
        refuse_uri_like(text, origin)
    if text and is_postgres_uri(text):
        schema = env.get(SCHEMA_ENV, "").strip() or DEFAULT_PG_SCHEMA
        if not valid_schema_name(schema):
            raise OutboxError(
                f"{SCHEMA_ENV}={schema!r} is not a schema name ievents can use",
                hint="use lower-case letters, digits and underscores, starting with a letter",
            )
        return PostgresLocation(text.strip(), schema)
    return resolve_outbox_path(option, env)


def open_store(
    location: OutboxLocation | str, env: Mapping[str, str] | None = None, *, create: bool = True
) -> OutboxStore:
    """Open (creating when missing, unless ``create`` is false) the outbox at ``location``.

    ``location``: a file path or a ``postgresql://`` URI as text (as ``--outbox`` takes
    it), or what :func:`resolve_location` made of one. ``env`` (default: the process
    environment) gives the busy timeout and the PostgreSQL schema. Raises
    :class:`OutboxError` (78), or :class:`~.errors.OutboxUnavailable` (75) for a
    database that cannot be reached now. With ``create=False`` nothing is created (no
    file, folder, schema or table): a location without an outbox raises
    :class:`~.errors.OutboxMissing`. Example::

        with open_store("~/events.sqlite3") as store:
            print(store.summary().counts)
    """
    environ = os.environ if env is None else env
    if isinstance(location, str):
        location = resolve_location(location, environ)
    if isinstance(location, PostgresLocation):
        from .pg_outbox import PostgresOutbox  # imports psycopg: only for a URI

        return PostgresOutbox.open(location, create=create)
    from ..config import busy_timeout_from_env
    from .sqlite import Outbox

    path = location if isinstance(location, Path) else Path(str(location))
    return Outbox.open(path, busy_timeout_s=busy_timeout_from_env(environ), create=create)


def open_reader(location: OutboxLocation, env: Mapping[str, str]) -> OutboxStore:
    """Another connection, to read (``summary``), to an outbox this process has opened
    with :func:`open_store` (a relay's metrics: never the relay's own connection)."""
    if isinstance(location, PostgresLocation):
        return open_store(location, env)
    from ..config import busy_timeout_from_env
    from .sqlite import Outbox

    path = location if isinstance(location, Path) else Path(str(location))
    return Outbox.open_reader(path, busy_timeout_s=busy_timeout_from_env(env))
