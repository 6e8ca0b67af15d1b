"""The outbox: events kept until Intercom has accepted them, behind one storage protocol.

- :mod:`.rows`: what is stored and handed back (``State``, ``OutboxRow``, results);
- :mod:`.store`: the ``OutboxStore`` protocol every backend meets, and ``open_store``;
- :mod:`.sqlite`: the SQLite store (``Outbox``), on the file of :mod:`.sqlite_file`;
- :mod:`.sql_store`, :mod:`.sql_destinations`: what both stores do alike, written once;
- :mod:`.owner`: who holds a claim, and whether that process is gone;
- ``pg_*``: the PostgreSQL store, imported only for a ``postgresql://`` outbox (psycopg).
"""

from __future__ import annotations

from ..config import (
    BUSY_TIMEOUT_ENV,
    DEFAULT_BUSY_TIMEOUT_S,
    busy_timeout_from_env,
    default_outbox_path,
    resolve_outbox_path,
)
from ..retry import BACKOFF_BASE_S, BACKOFF_CAP_S, retry_delay_s
from .owner import DEFAULT_LEASE_S, OWNER_HOST_ENV, new_owner, owner_is_gone
from .rows import AddResult, OutboxRow, OutboxSummary, RowResult, State
from .sqlite import Outbox
from .sqlite_file import (
    SCHEMA_VERSION,
    SQLITE_HEADER,
    check_owned_by_us,
    make_private_folders,
    translate_error,
)

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "BUSY_TIMEOUT_ENV",
    "DEFAULT_BUSY_TIMEOUT_S",
    "DEFAULT_LEASE_S",
    "OWNER_HOST_ENV",
    "SCHEMA_VERSION",
    "SQLITE_HEADER",
    "AddResult",
    "Outbox",
    "OutboxRow",
    "OutboxSummary",
    "RowResult",
    "State",
    "busy_timeout_from_env",
    "check_owned_by_us",
    "default_outbox_path",
    "make_private_folders",
    "new_owner",
    "owner_is_gone",
    "resolve_outbox_path",
    "retry_delay_s",
    "translate_error",
]
