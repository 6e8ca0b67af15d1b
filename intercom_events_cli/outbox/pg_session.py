"""A connection to the PostgreSQL outbox: connecting, errors, the schema, transactions.

The base of :class:`~.pg_outbox.PostgresOutbox`. Each connection is known by its
**backend key**: its server process id and start time, as ``pg_stat_activity`` shows
them to every role. The rows it claims carry that key (``claim_session``); a claimer whose
backend is no longer listed is gone (PostgreSQL ends the backend the moment the client's
connection closes: ``kill -9``, a database restart). Nothing another role does can keep a
backend listed, or make a live one vanish, so no role can delay the taking back of a dead
relay's rows (an advisory lock, the mechanism of schema version 1, any role could hold).

A lost connection, or a database that is read-only for now (a standby during a
failover), raises :class:`~.errors.OutboxUnavailable` (75): the next call connects again,
with a new key. A missing privilege is a configuration error (78) naming the privilege,
the schema and the statement that grants it. Messages name the host, port and database,
never the password.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtra, OutboxError, OutboxMissing, OutboxUnavailable
from . import pg_schema
from .location import PostgresLocation

try:
    import psycopg
    from psycopg import errors as pg_errors
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise MissingExtra(
        "a PostgreSQL outbox needs the psycopg driver (the extra 'postgres')",
        "postgres",
        hint="or point --outbox / IEVENTS_OUTBOX at a file",
    ) from exc

if TYPE_CHECKING:
    from psycopg import Connection, Cursor

    from .pg_waker import ListenWaker

# psycopg logs a warning when it cannot end a pipeline whose connection was cut ("error
# ignored terminating <psycopg.Pipeline [BAD] at 0x...>: ..."), then raises the error this
# module turns into a message. Without a handler of its own that warning reached stderr
# through logging's last resort, before that message: it is the same failure, told twice.
logging.getLogger("psycopg").addHandler(logging.NullHandler())

__all__ = ["PgSession", "pg_errors", "psycopg"]

CONNECT_TIMEOUT_S = 10
# Words of a connection error that needs fixing (78) rather than waiting out (75).
_CONFIG_WORDS = (
    "password",
    "authentication",
    "does not exist",
    "pg_hba.conf",
    "permission denied",
    "could not translate host name",
    "invalid",
    "certificate",
    "ssl",
)


# A backend's key: its pid in the high 32 bits, the low 32 bits of its start time in
# milliseconds in the low ones (a reused pid is another backend). ``{a}`` is the
# pg_stat_activity row.
BACKEND_KEY_SQL = (
    "(({a}.pid::bigint << 32) | "
    "(floor(extract(epoch FROM {a}.backend_start) * 1000)::bigint & 4294967295))"
)
# The backends alive now (read once per statement: pg_stat_activity is a function scan).
ALIVE_CTE = "WITH alive AS MATERIALIZED (SELECT pid, backend_start FROM pg_stat_activity) "
# True while the backend whose key is ``{k}`` is among them. Another role's backends show
# their pid but not their start time: a listed pid then counts as alive (at worst its
# rows wait for their lease).
BACKEND_ALIVE_SQL = (
    "EXISTS (SELECT 1 FROM alive AS a WHERE a.pid = ({k} >> 32)::integer "
    "AND (a.backend_start IS NULL OR " + BACKEND_KEY_SQL.format(a="a") + " = {k}))"
)


def _reason(exc: BaseException) -> str:
    """The useful line of a libpq message, on one line."""
    text = str(exc).strip() or type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else text
    # 'connection to server at "h", port 5432 failed: Connection refused' -> the cause
    if "failed:" in first:
        first = first.rsplit("failed:", 1)[1].strip() or first
    return first.rstrip(".")


def _uri_parts(uri: str) -> dict[str, Any]:
    """host, port and dbname of a ``postgresql://`` URI by plain URL rules (no password)."""
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return {}
    return {
        "host": unquote(parts.hostname or ""),
        "port": str(port or ""),
        "dbname": unquote(parts.path.lstrip("/")),
    }


class PgSession:
    """One connection to the outbox's schema (reconnecting), with its claim lock."""

    def __init__(self, location: PostgresLocation) -> None:
        self._location = location
        self.schema = location.schema
        self.channel = pg_schema.channel(location.schema)
        self._db: Connection[Any] | None = None
        self._lock = threading.RLock()
        # This connection's backend key (see BACKEND_KEY_SQL); None: unknown, and the rows
        # it claims then come back by their lease alone.
        self._session: int | None = None
        self._temp_ready = False  # this connection's temporary table for COPY exists
        self._last_reclaim = 0.0
        # False for the commands that only look: a missing schema is said, never made.
        self.create_missing = True
        self._offset = 0.0  # the database's clock minus this host's, as last measured
        self._last_now = 0.0  # now()'s latest reading: it never goes back

    @property
    def path(self) -> PostgresLocation:
        """Where the outbox is (``str()``: the URI without its password)."""
        return self._location

    def waker(self, stop: threading.Event) -> ListenWaker:
        """``LISTEN`` on this outbox's channel, on a connection of its own."""
        from .pg_waker import ListenWaker

        return ListenWaker(self._location, stop)

    # -- connecting -------------------------------------------------------------------------

    def _describe(self) -> str:
        """``host:port/database`` as libpq will use it (environment included), no password."""
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(self._location.uri)
        except psycopg.Error:
            # A URI libpq refuses (an unknown query parameter): still name the host and
            # port it gives, never libpq's defaults (localhost:5432) in their place.
            params = _uri_parts(self._location.uri)
        host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
        port = str(params.get("port") or os.environ.get("PGPORT") or "5432")
        database = params.get("dbname") or os.environ.get("PGDATABASE")
        where = f"{host}:{port}" if not host.startswith("/") else f"{host} (socket)"
        return f"{where}/{database}" if database else where

    def _connection(self) -> Connection[Any]:
        """The live connection, connecting (again) when there is none."""
        if self._db is not None and not self._db.closed and not self._db.broken:
            return self._db
        self._drop()
        options: dict[str, Any] = {"autocommit": True, "application_name": "ievents"}
        if "connect_timeout" not in self._location.uri and not os.environ.get("PGCONNECT_TIMEOUT"):
            options["connect_timeout"] = CONNECT_TIMEOUT_S
        try:
            db = psycopg.connect(self._location.uri, **options)
        except psycopg.Error as exc:
            raise self._translate_connect(exc) from None
        self._db = db
        self._temp_ready = False
        try:
            self._prepare(db)
            # How other flushers know we are alive: this backend, as long as it is listed.
            found = db.execute(
                "SELECT " + BACKEND_KEY_SQL.format(a="a") + " FROM pg_stat_activity AS a "
                "WHERE a.pid = pg_backend_pid()"
            ).fetchone()
            self._session = int(found[0]) if found and found[0] is not None else None
        except psycopg.Error as exc:
            error = self._translate(exc)  # while the connection can still say what is missing
            self._drop()
            raise error from None
        except OutboxError:
            self._drop()
            raise
        return db

    def _drop(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except psycopg.Error:
                pass
        self._db = None

    def _translate_connect(self, exc: psycopg.Error) -> OutboxError:
        where = self._describe()
        reason = self._scrub(_reason(exc))
        lowered = reason.lower()
        if any(word in lowered for word in _CONFIG_WORDS) or isinstance(
            exc, psycopg.ProgrammingError
        ):
            return OutboxError(
                f"cannot use the PostgreSQL outbox at {where}: {reason}",
                hint="check the user, password, database and sslmode in --outbox / "
                "IEVENTS_OUTBOX (or the PG* environment variables)",
            )
        return OutboxUnavailable(
            f"cannot reach the PostgreSQL outbox at {where}: {reason}",
            hint="the database is down or unreachable from here; try again later",
        )

    def _translate(self, exc: psycopg.Error) -> OutboxError:
        where = self._describe()
        reason = self._scrub(_reason(exc))
        if isinstance(exc, pg_errors.InsufficientPrivilege) and self._usable():
            return self._privilege_error(reason)
        if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
            if self._read_only_by_client():
                # Asked for by this connection itself (?options=-c ..., PGOPTIONS): it stays
                # so on every new connection, so waiting for it would be for ever.
                return OutboxError(
                    f"the PostgreSQL outbox at {where} is read-only: the connection's "
                    f"options set default_transaction_read_only ({reason})",
                    hint="remove default_transaction_read_only from the URI's options "
                    "(or PGOPTIONS): ievents writes to its outbox",
                )
            # A standby, or default_transaction_read_only during a failover: temporary. A
            # new connection is needed to see the database writable again.
            self._drop()
            return OutboxUnavailable(
                f"the PostgreSQL outbox at {where} is read-only for now: {reason}",
                hint="a standby or a failover in progress; try again (a relay waits for it)",
            )
        if isinstance(exc, (pg_errors.QueryCanceled, pg_errors.LockNotAvailable)):
            # Nothing went away: a statement_timeout or lock_timeout (or an administrator)
            # ended it. Temporary: the same statement may pass later (a relay tries again).
            self._drop()
            return OutboxUnavailable(
                f"the PostgreSQL outbox at {where} cancelled a statement: {reason}",
                hint="a statement_timeout or lock_timeout (of the role, the database or the "
                "URI's options) shorter than ievents' statements or a lock held meanwhile; "
                "raise it for ievents' role",
            )
        if (
            isinstance(exc, (pg_errors.UndefinedTable, pg_errors.InvalidSchemaName))
            and self._tables_gone()
        ):
            # Dropped (or restored without it) while in use: gone, not broken. A new
            # connection makes it anew where this command may create it, as a relay whose
            # SQLite file was deleted goes on with the new file at its path.
            self._drop()
            return OutboxUnavailable(
                f"the PostgreSQL outbox at {where} (schema {self.schema}) was dropped while in use",
                hint="it is made anew when a command that captures or flushes opens it (a "
                "relay does so itself); restore it from a backup if its events are needed",
            )
        if isinstance(exc, psycopg.OperationalError) or not self._usable():
            self._drop()
            return OutboxUnavailable(
                f"lost the PostgreSQL outbox at {where}: {reason}",
                hint="the database went away (restart, network); try again",
            )
        return OutboxError(f"the PostgreSQL outbox at {where} failed: {reason}")

    def _read_only_by_client(self) -> bool:
        """Whether this session is read-only by its own connection options."""
        from .pg_diagnose import read_only_by_client

        return self._db is not None and self._usable() and read_only_by_client(self._db)

    def _tables_gone(self) -> bool:
        """Whether this schema's ``events`` table is missing now (asked after an error)."""
        from .pg_diagnose import tables_gone

        return self._db is not None and self._usable() and tables_gone(self._db, self.schema)

    def _usable(self) -> bool:
        return self._db is not None and not self._db.closed and not self._db.broken

    def _privilege_error(self, reason: str) -> OutboxError:
        """A refused statement (78): which privilege on what is missing, and the GRANT."""
        from .pg_privileges import describe_missing

        assert self._db is not None
        try:
            message, hint = describe_missing(self._db, self.schema)
        except psycopg.Error:
            message, hint = "", ""
        where = self._describe()
        hint = (
            hint
            or f"grant the role what it needs on schema {self.schema}, or set "
            "IEVENTS_OUTBOX_SCHEMA to a schema it owns"
        )
        return OutboxError(
            # PostgreSQL's own words first (what a search finds), then what is missing.
            f"the PostgreSQL outbox at {where} refused: "
            + (f"permission denied: {message}" if message else reason),
            hint=f"{hint}; see Privileges on the PostgreSQL outbox page of the docs "
            "(docs/operations/postgresql.md)",
        )

    def _scrub(self, text: str) -> str:
        """Never show a password, even if a driver message quoted the URI."""
        from psycopg.conninfo import conninfo_to_dict

        secrets = [os.environ.get("PGPASSWORD", "")]
        try:
            secrets.append(str(conninfo_to_dict(self._location.uri).get("password") or ""))
        except psycopg.Error:
            pass
        for secret in secrets:
            if secret:
                text = text.replace(secret, "***")
        return text.replace(self._location.uri, str(self._location))

    def _prepare(self, db: Connection[Any]) -> None:
        """Create or migrate the schema (once, under a transaction-level advisory lock)."""
        schema = self.schema
        # The usual case, a schema at this version, without the lock that serialises opens.
        with db.transaction():
            current = db.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.meta",)
            ).fetchone()
            if current and current[0] and self._stored_version(db) == pg_schema.SCHEMA_VERSION:
                return
            if not (current and current[0]) and not self.create_missing:
                # Not "no outbox there yet": a command that writes would refuse it too.
                self._refuse_public()
                self._refuse_foreign(db)
                raise OutboxMissing(
                    f"there is no ievents outbox in the schema {schema!r} at {self._describe()}"
                )
        with db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ievents:{schema}",))
            # One statement: reading pg_namespace takes in the catalog changes committed
            # while this session waited for the lock (to_regclass alone may answer from a
            # stale cache, and find no outbox that another process has just created).
            row = db.execute(
                "SELECT to_regclass(%s) IS NOT NULL, "
                "EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)",
                (f"{schema}.meta", schema),
            ).fetchone()
            assert row is not None
            has_meta, has_schema = row
            version = self._stored_version(db) if has_meta else 0
            if version > pg_schema.SCHEMA_VERSION:
                raise OutboxError(
                    f"the PostgreSQL outbox at {self._describe()} (schema {schema}) has version "
                    f"{version}, made by a newer ievents (this one knows version "
                    f"{pg_schema.SCHEMA_VERSION}); it was left untouched",
                    hint="upgrade ievents",
                )
            if version == pg_schema.SCHEMA_VERSION:
                return
            if version == 0:
                self._create(db, has_schema)
                version = pg_schema.SCHEMA_VERSION
            for step in range(version + 1, pg_schema.SCHEMA_VERSION + 1):
                for statement in pg_schema.migration_statements(schema, step):
                    db.execute(statement)
            db.execute(
                f"INSERT INTO {schema}.meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(pg_schema.SCHEMA_VERSION),),
            )

    def _stored_version(self, db: Connection[Any]) -> int:
        """The version written in the schema's ``meta`` table (which exists); 0 if none."""
        found = db.execute(
            f"SELECT value FROM {self.schema}.meta WHERE key = 'schema_version'"
        ).fetchone()
        if not found:
            return 0
        try:
            version = int(found[0])
            if version < 0:
                raise ValueError(version)
            return version
        except ValueError:
            # Written by hand or by something else: neither migrated nor used as a version.
            raise OutboxError(
                f"the PostgreSQL outbox at {self._describe()} (schema {self.schema}) has an "
                f"unreadable schema version {found[0]!r} in {self.schema}.meta; it was left "
                "untouched",
                hint="put back the version the ievents that made it wrote (a whole number)",
            ) from None

    def _create(self, db: Connection[Any], has_schema: bool) -> None:
        """The schema and its tables, refusing a schema that holds anything else."""
        schema = self.schema
        self._refuse_public()
        if has_schema:
            self._refuse_foreign(db)
        else:
            db.execute(f"CREATE SCHEMA {schema}")
        for statement in pg_schema.create_statements(schema):
            db.execute(statement)

    def _refuse_public(self) -> None:
        """Raise for the schema 'public' (78): the outbox needs a schema of its own."""
        if self.schema == "public":
            raise OutboxError(
                f"ievents will not create its outbox tables in the schema 'public' at "
                f"{self._describe()}: the outbox needs a schema of its own (IEVENTS_OUTBOX_SCHEMA"
                "=public)",
                hint="unset IEVENTS_OUTBOX_SCHEMA (the default is ievents) or name another schema",
            )

    def _refuse_foreign(self, db: Connection[Any]) -> None:
        """Raise for a schema of this name that holds anything (it is not an outbox)."""
        tables = db.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s",
            (self.schema,),
        ).fetchone()
        if tables and tables[0]:
            raise OutboxError(
                f"the schema {self.schema!r} at {self._describe()} exists but is not an "
                "ievents outbox; it was left untouched",
                hint="set IEVENTS_OUTBOX_SCHEMA to another schema name",
            )

    def close(self) -> None:
        """Close the connection (which also releases this session's claim lock)."""
        with self._lock:
            self._drop()

    # -- transactions -----------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[Cursor[Any]]:
        """One transaction on the live connection; errors become OutboxError."""
        with self._lock:
            db = self._connection()
            try:
                with db.transaction(), db.cursor() as cursor:
                    yield cursor
            except psycopg.Error as exc:
                raise self._translate(exc) from None

    def _t(self, sql: str) -> str:
        return sql.replace("{s}", self.schema)

    def _notify(self, cursor: Cursor[Any]) -> None:
        # Delivered at commit, and only then: a rolled-back capture wakes nobody.
        cursor.execute("SELECT pg_notify(%s, '')", (self.channel,))
