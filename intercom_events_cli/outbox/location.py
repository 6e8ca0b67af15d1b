"""Where a PostgreSQL outbox is: its URI (shown without the password) and schema name.

Kept apart from :mod:`.store` so the PostgreSQL modules can use it without importing the
store that opens them (no import cycle).
"""

from __future__ import annotations

import re

from ..errors import OutboxError

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
    """True for ``postgresql://...`` and ``postgres://...`` (libpq's two spellings)."""
    scheme, sep, _ = text.strip().partition("://")
    return bool(sep) and scheme.lower() in POSTGRES_SCHEMES


# ``scheme:`` of two or more characters (one letter is a Windows drive, ``C:\\``).
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]+):")
# What may precede a URI's user name: up to two schemes (``jdbc:postgresql:``) and slashes.
_PREFIX = re.compile(r"^\s*(?:[A-Za-z][A-Za-z0-9+.-]*:){0,2}/*")
# In a URI's query a parameter ends at ``&`` (or ``;``); in a libpq keyword string (no
# ``://``) an unquoted value runs to the next blank, ``&`` and ``;`` included.
_PASSWORD_PARAM = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&;]*)")
_KEYWORD_PASSWORD = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)")
_LIBPQ_KEYWORDS = re.compile(
    r"^\s*(host|hostaddr|port|dbname|user|password|passfile|service|sslmode|"
    r"connect_timeout|application_name|options|target_session_attrs)\s*=",
    re.IGNORECASE,
)
_URI_FORM = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


def redact_uri(text: str) -> str:
    """The location with any password (userinfo, ``password=``) shown as ``***``.

    Works on anything given as an outbox location, well-formed or not (``postgresql:/u:pw@h``,
    ``jdbc:postgresql://...``, ``host=... password=...``): when it cannot tell a user name from
    a password, it hides both. A password's raw and percent-decoded forms are both gone,
    since the whole part is replaced.
    """
    pattern = _PASSWORD_PARAM if "://" in text else _KEYWORD_PASSWORD
    text = pattern.sub(r"\1***", text)
    head, at, tail = text.rpartition("@")
    if not at:
        return text
    prefix_match = _PREFIX.match(head)
    prefix = prefix_match.group(0) if prefix_match else ""
    userinfo = head[len(prefix) :]
    user, colon, _password = userinfo.partition(":")
    if colon:
        shown = f"{user}:***"
    else:
        # After ``scheme://`` a part without ':' is a user name; after ``scheme:`` alone,
        # the prefix may have taken ``user:`` and this is the password.
        shown = userinfo if prefix.endswith("//") else "***"
    return f"{prefix}{shown}@{tail}"


def refuse_uri_like(text: str, origin: str) -> None:
    """Raise :class:`OutboxError` (78) for a location that looks like a URI or a connection
    string but is not a ``postgresql://`` URI: it must never become a file of that name.

    The message shows the location redacted, and says how to write it.
    """
    shown = redact_uri(text.strip())
    where = f"the outbox location {shown!r} (from {origin})"
    lowered = text.strip().lower()
    if _LIBPQ_KEYWORDS.match(text):
        raise OutboxError(
            f"{where} is a libpq keyword string; ievents takes a URI",
            hint=f"write it as {_URI_FORM} (percent-encode special characters)",
        )
    match = _SCHEME.match(text)
    if match is None:
        return
    scheme = match.group(1).lower()
    if scheme == "jdbc":
        raise OutboxError(
            f"{where} is a JDBC URL; ievents takes a libpq URI",
            hint=f"drop the jdbc: prefix and give the user and password in it: {_URI_FORM}",
        )
    base, plus, driver = scheme.partition("+")
    if base in POSTGRES_SCHEMES and plus:
        raise OutboxError(
            f"{where} names a driver ({scheme}://, SQLAlchemy's form); ievents takes {base}://",
            hint=f"drop '+{driver}': {base}://" + shown.split("://", 1)[-1]
            if "://" in shown
            else f"write it as {_URI_FORM}",
        )
    if scheme in POSTGRES_SCHEMES:
        raise OutboxError(
            f"{where} is not a valid PostgreSQL URI: it must start with {scheme}://",
            hint=f"write it as {_URI_FORM}",
        )
    if scheme in ("sqlite", "file") or lowered.startswith(("sqlite:", "file:")):
        raise OutboxError(
            f"{where} is a URL; a SQLite outbox is given by its file path",
            hint="give the path itself, e.g. --outbox /var/lib/ievents/outbox.sqlite3",
        )
    raise OutboxError(
        f"{where} looks like a URL ({scheme}:), not a file path; the outbox is a SQLite "
        "file or a PostgreSQL database",
        hint=f"give a file path, or {_URI_FORM}; a file whose name has a colon: ./NAME",
    )


def valid_schema_name(name: str) -> bool:
    """A plain lower-case SQL identifier (no quoting needed, no surprises)."""
    return (
        0 < len(name) <= 48
        and (name[0].isascii() and (name[0].isalpha() or name[0] == "_"))
        and all(c.isascii() and (c.isalnum() or c == "_") for c in name)
        and name == name.lower()
    )
