"""Where a PostgreSQL outbox is: its URI (shown without the password) and schema name.

Kept apart from :mod:`.store` so the PostgreSQL modules can use it without importing the
store that opens them (no import cycle).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
SCHEMA_ENV = "IEVENTS_OUTBOX_SCHEMA"
DEFAULT_PG_SCHEMA = "ievents"


class PostgresLocation:
    """A PostgreSQL outbox: the connection URI and the schema ievents keeps its tables in.

    ``str()`` is the URI without its password (safe in messages and JSON).
    """

    def __init__(self, uri: str, schema: str = DEFAULT_PG_SCHEMA) -> None:
        self.uri = uri
        self.schema = schema

    def exists(self) -> bool:
        """Always True: finding out needs a connection, which opening makes anyway."""
        return True

    def __str__(self) -> str:
        suffix = "" if self.schema == DEFAULT_PG_SCHEMA else f" (schema {self.schema})"
        return redact_uri(self.uri) + suffix

    def __repr__(self) -> str:
        return f"PostgresLocation({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PostgresLocation) and (self.uri, self.schema) == (
            other.uri,
            other.schema,
        )

    def __hash__(self) -> int:
        return hash((self.uri, self.schema))


def is_postgres_uri(text: str) -> bool:
    """True for ``postgresql://...`` and ``postgres://...``."""
    scheme, sep, _ = text.strip().partition("://")
    return bool(sep) and scheme.lower() in POSTGRES_SCHEMES


def redact_uri(uri: str) -> str:
    """The URI with any password (in the userinfo or a ``password=`` parameter) as ``***``."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "postgresql://***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hosts}"
    query = "&".join(
        f"{key}=***" if key.lower() == "password" else f"{key}{eq}{value}"
        for key, eq, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def valid_schema_name(name: str) -> bool:
    """A plain lower-case SQL identifier (no quoting needed, no surprises)."""
    return (
        0 < len(name) <= 48
        and (name[0].isascii() and (name[0].isalpha() or name[0] == "_"))
        and all(c.isascii() and (c.isalnum() or c == "_") for c in name)
        and name == name.lower()
    )
