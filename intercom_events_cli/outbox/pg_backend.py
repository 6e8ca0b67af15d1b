"""The PostgreSQL backend's line in the registry (:data:`.store.BACKENDS`):
``postgresql://`` and ``postgres://`` URIs.

The location is the URI and the schema (``IEVENTS_OUTBOX_SCHEMA``, default ``ievents``),
:class:`~.location.PostgresLocation`; the store is :mod:`.pg_outbox`, imported (with
psycopg) only when one is opened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import OutboxError
from .location import DEFAULT_PG_SCHEMA, SCHEMA_ENV, PostgresLocation, valid_schema_name
from .pg_schema import RESERVED_WORDS

if TYPE_CHECKING:
    from .pg_outbox import PostgresOutbox
    from .store import OutboxLocation


def locate(text: str, option: str | None, env: Mapping[str, str]) -> PostgresLocation:
    """The URI ``text`` with the schema of ``IEVENTS_OUTBOX_SCHEMA``; a schema name that
    needs quoting raises :class:`OutboxError` (78)."""
    schema = env.get(SCHEMA_ENV, "").strip() or DEFAULT_PG_SCHEMA
    if not valid_schema_name(schema):
        raise OutboxError(
            f"{SCHEMA_ENV}={schema!r} is not a schema name ievents can use",
            hint="use lower-case letters, digits and underscores, starting with a letter",
        )
    if schema in RESERVED_WORDS or schema.startswith("pg_"):
        # Else the first statement fails with "syntax error at or near ..." (a reserved
        # word) or "unacceptable schema name" (pg_ is the system's), with no hint.
        kind = "a reserved word of SQL" if schema in RESERVED_WORDS else "reserved by PostgreSQL"
        raise OutboxError(
            f"{SCHEMA_ENV}={schema!r} is {kind}, not a schema name ievents can use",
            hint=f"choose another name, e.g. {SCHEMA_ENV}=ievents_{schema.removeprefix('pg_')}",
        )
    return PostgresLocation(text.strip(), schema)


def owns(location: object) -> bool:
    """A PostgreSQL outbox is a :class:`PostgresLocation`."""
    return isinstance(location, PostgresLocation)


def _location(location: OutboxLocation) -> PostgresLocation:
    if not isinstance(location, PostgresLocation):
        raise TypeError(f"not a PostgreSQL outbox: {location!r}")
    return location


def open_store(location: OutboxLocation, env: Mapping[str, str], *, create: bool) -> PostgresOutbox:
    """Connect to the database (creating the schema and tables unless ``create`` is false)."""
    from .pg_outbox import PostgresOutbox  # imports psycopg: only for a URI

    return PostgresOutbox.open(_location(location), create=create)


def open_reader(location: OutboxLocation, env: Mapping[str, str]) -> PostgresOutbox:
    """Another connection: a database has no locks a second connection could drop."""
    return open_store(location, env, create=True)
