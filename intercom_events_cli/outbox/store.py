"""The storage protocol behind every outbox command, and the registry that opens one.

Two stores implement :class:`OutboxStore`: the SQLite file (:mod:`.sqlite`) and a
PostgreSQL schema (:mod:`.pg_outbox`). The delivery engine, the relay, ``batch`` and the
commands use only what the protocol names (change notification included:
:meth:`OutboxStore.waker`), so they never know which one they hold.

Where the outbox is (``--outbox`` / ``IEVENTS_OUTBOX``) picks its backend from
:data:`BACKENDS`, one line per backend: a URI's scheme (``postgresql://``,
``postgres://``) names the backend that takes it; anything else is a plain file path,
for the backend that has no scheme (SQLite). A backend's module (:class:`BackendModule`)
is imported only when a location of its own is used: the SQLite path never loads the
PostgreSQL modules, nor psycopg.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, cast

from ..errors import OutboxError, UsageError
from ..frozen import frozen

# redact_uri is re-exported: a location as text, safe to print, whatever its backend.
from .location import redact_uri as redact_uri
from .location import refuse_uri_like

if TYPE_CHECKING:
    import threading

    from ..config.settings import Settings
    from ..delivery.destination import Destination
    from ..event import Event
    from .rows import AddResult, BulkRow, OutboxRow, OutboxSummary, RowResult, State


# Ids and limits are 64-bit signed integers in every store (SQLite's INTEGER, PostgreSQL's
# bigint): larger numbers can be no row's id, and a store refuses them as parameters.
MAX_ID = 2**63 - 1


class OutboxLocation(Protocol):
    """Where an outbox is: what :func:`resolve_location` makes of ``--outbox`` (a
    :class:`~pathlib.Path` for a file; each other backend has a class of its own).

    ``str()`` of it is safe to print (a URI shows no password).
    """

    def exists(self) -> bool:
        """Whether anything was ever stored there (a URI: assumed so)."""
        ...


class Waker(Protocol):
    """Says when an outbox may have new rows (another connection's commit), on a
    connection of its own: :meth:`OutboxStore.waker`."""

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds (less when the ``stop`` it was made with is
        set); True when something changed (or may have: after a reconnection)."""
        ...

    def close(self) -> None:
        """Let go of what it holds."""
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

    def waker(self, stop: threading.Event) -> Waker:
        """A :class:`Waker` for this outbox (the relay's: PostgreSQL ``LISTEN``, SQLite's
        ``PRAGMA data_version``), which outlives this store's connection."""
        ...

    def replaced(self) -> bool:
        """Whether the location names another outbox now than the one this store opened
        (a SQLite file moved aside or replaced): opening it again gets that one."""
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

    def queue_rows(
        self,
        rows: Sequence[BulkRow],
        *,
        source: str | None = None,
        requeue: Collection[State] = (),
        now: float | None = None,
        destination_id: int | None = None,
    ) -> tuple[int, int]:
        """:meth:`queue_many` of rows made by :func:`~.rows.bulk_row` (each with its line)."""
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

    # destinations (see delivery/destination.py)
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
        """(pending or in flight, of which in flight) among the rows of ``source``.

        At the end of a batch run its own claims are settled: what is still in flight is
        held by another process (another batch, a relay)."""
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

    def note_flush(
        self,
        exit_code: int,
        *,
        now: float | None = None,
        relay: bool = False,
        relay_stopped: bool = False,
    ) -> None:
        """Remember when a flush finished and how (``relay``: a relay's heartbeat;
        ``relay_stopped``: a relay's clean stop)."""
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


# -- the registry: one line per backend ---------------------------------------------------


@frozen
class Backend:
    """One kind of outbox: the URI schemes it takes, and the module that opens it."""

    name: str  # in tests and logs: "sqlite", "postgres"
    label: str  # in messages: "SQLite", "PostgreSQL"
    module: str  # under outbox/: meets BackendModule; imported only when used
    schemes: tuple[str, ...] = ()  # URI schemes it takes; () for the plain file path
    # Whether writers on several connections run side by side (a connection each pays)
    # or take turns (one file: one connection shared is as fast, and lighter).
    concurrent_writers: bool = False

    def load(self) -> BackendModule:
        """The backend's module (imported now, on first use)."""
        return cast("BackendModule", importlib.import_module(f"{__package__}.{self.module}"))


BACKENDS: tuple[Backend, ...] = (
    Backend("sqlite", "SQLite", "sqlite_backend"),
    Backend("postgres", "PostgreSQL", "pg_backend", ("postgresql", "postgres"), True),
)


class BackendModule(Protocol):
    """What a backend's module (a :class:`Backend`'s ``module``) offers."""

    def locate(self, text: str, option: str | None, env: Mapping[str, str]) -> OutboxLocation:
        """The location ``text`` names (``option`` or ``IEVENTS_OUTBOX``; empty: the
        default); raises :class:`OutboxError` (78) for one it cannot use."""
        ...

    def owns(self, location: object) -> bool:
        """Whether ``location`` is one of this backend's."""
        ...

    def open_store(
        self, location: OutboxLocation, env: Mapping[str, str], *, create: bool
    ) -> OutboxStore:
        """Open (creating it unless ``create`` is false) the outbox at ``location``."""
        ...

    def open_reader(self, location: OutboxLocation, env: Mapping[str, str]) -> OutboxStore:
        """Another connection, to read, to an outbox this process has open already."""
        ...


def backend_for_text(text: str) -> Backend:
    """The backend of a location given as text: the one its URI scheme names, else the
    plain file path's (a text that only looks like a URI is refused later, as a path)."""
    scheme, sep, _ = text.strip().partition("://")
    for backend in BACKENDS:
        if sep and scheme.lower() in backend.schemes:
            return backend
    return next(backend for backend in BACKENDS if not backend.schemes)


def backend_of(location: OutboxLocation) -> Backend:
    """The backend a location (from :func:`resolve_location`) belongs to."""
    for backend in BACKENDS:
        if backend.load().owns(location):
            return backend
    raise OutboxError(f"no outbox backend takes the location {str(location)!r}")


def resolve_location(option: str | None, env: Mapping[str, str]) -> OutboxLocation:
    """``--outbox`` > ``IEVENTS_OUTBOX`` > the XDG default: a file path or a URI whose scheme
    a backend of :data:`BACKENDS` takes (``postgresql://``).

    Anything else that looks like a URI or a connection string (``jdbc:...``,
    ``postgresql+psycopg://...``, ``host=... password=...``) raises :class:`OutboxError`
    (78). The PostgreSQL schema is ``IEVENTS_OUTBOX_SCHEMA`` (default ``ievents``).
    """
    from ..config.variables import OUTBOX_ENV

    if option is not None and not option.strip():
        # ``--outbox "$OUTBOX"`` with the variable unset: never the default in its place.
        raise UsageError(
            "--outbox is empty; give the outbox's path or postgresql:// URI, or leave the "
            "option out for the default"
        )
    if env.get(OUTBOX_ENV) and not env[OUTBOX_ENV].strip():
        raise OutboxError(
            f"{OUTBOX_ENV} is blank (only spaces); give the outbox's path or postgresql:// "
            "URI, or unset it for the default"
        )
    text = option or env.get(OUTBOX_ENV) or ""
    backend = backend_for_text(text)
    if text and not backend.schemes:
        # Anything else that looks like a URI or a connection string is refused: it must
        # never become a file named after it (which would hold its password).
        origin_of = getattr(env, "origin", None)
        origin = "--outbox" if option else origin_of(OUTBOX_ENV) if origin_of else OUTBOX_ENV
        refuse_uri_like(text, origin)
    return backend.load().locate(text, option, env)


def open_store(
    location: OutboxLocation | str, env: Mapping[str, str] | None = None, *, create: bool = True
) -> OutboxStore:
    """Open (creating when missing, unless ``create`` is false) the outbox at ``location``.

    ``location``: a file path or a ``postgresql://`` URI as text (as ``--outbox`` takes
    it), or what :func:`resolve_location` made of one. ``env`` (default: the process
    environment) gives the busy timeout and the PostgreSQL schema. Raises
    :class:`OutboxError` (78), :class:`~.errors.OutboxBusy` (75) for a file another
    process holds, or :class:`~.errors.OutboxUnavailable` (75) for a database that cannot
    be reached now. With ``create=False`` nothing is created (no file, folder, schema or
    table): a location without an outbox raises :class:`~.errors.OutboxMissing`. Example::

        with open_store("~/events.sqlite3") as store:
            print(store.summary().counts)
    """
    environ = os.environ if env is None else env
    if isinstance(location, str):
        location = resolve_location(location, environ)
    return backend_of(location).load().open_store(location, environ, create=create)


def open_reader(location: OutboxLocation, env: Mapping[str, str]) -> OutboxStore:
    """Another connection, to read (``summary``), to an outbox this process has opened
    with :func:`open_store` (a relay's metrics: never the relay's own connection)."""
    return backend_of(location).load().open_reader(location, env)


def backend_label(location: OutboxLocation) -> str:
    """The name of the location's kind of outbox, for messages: ``SQLite``, ``PostgreSQL``."""
    return backend_of(location).label


if TYPE_CHECKING:
    # mypy holds each registered backend's module to BackendModule.
    from . import pg_backend, sqlite_backend

    _CHECKED: tuple[BackendModule, ...] = (sqlite_backend, pg_backend)
