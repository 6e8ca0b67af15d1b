"""The outbox: events kept until Intercom has accepted them, behind one storage protocol.

- :mod:`.rows`: what is stored and handed back (``State``, ``OutboxRow``, results);
- :mod:`.store`: the ``OutboxStore`` protocol every backend meets, the registry of
  backends (``BACKENDS``: a URI scheme, or the plain file path, to the module that opens
  it: :mod:`.sqlite_backend`, :mod:`.pg_backend`) and ``open_store``;
- :mod:`.sqlite`: the SQLite store (``SqliteOutbox``), on the file of :mod:`.sqlite_file`;
- :mod:`.sql_store`, :mod:`.sql_destinations`: what both stores do alike, written once;
- :mod:`.owner`: who holds a claim, and whether that process is gone;
- ``pg_*``: the PostgreSQL store, imported only for a ``postgresql://`` outbox (psycopg).

The names below are imported from their modules when first used (PEP 562): importing one
module of the package (``outbox.store``, for the protocol) loads no backend.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config.outbox_path import (
        BUSY_TIMEOUT_ENV as BUSY_TIMEOUT_ENV,
    )
    from ..config.outbox_path import (
        DEFAULT_BUSY_TIMEOUT_S as DEFAULT_BUSY_TIMEOUT_S,
    )
    from ..config.outbox_path import (
        busy_timeout_from_env as busy_timeout_from_env,
    )
    from ..config.outbox_path import (
        default_outbox_path as default_outbox_path,
    )
    from ..config.outbox_path import (
        resolve_outbox_path as resolve_outbox_path,
    )
    from ..http.retry import (
        BACKOFF_BASE_S as BACKOFF_BASE_S,
    )
    from ..http.retry import (
        BACKOFF_CAP_S as BACKOFF_CAP_S,
    )
    from ..http.retry import (
        retry_delay_s as retry_delay_s,
    )
    from .owner import (
        DEFAULT_LEASE_S as DEFAULT_LEASE_S,
    )
    from .owner import (
        OWNER_HOST_ENV as OWNER_HOST_ENV,
    )
    from .owner import (
        new_owner as new_owner,
    )
    from .owner import (
        owner_is_gone as owner_is_gone,
    )
    from .rows import (
        AddResult as AddResult,
    )
    from .rows import (
        OutboxRow as OutboxRow,
    )
    from .rows import (
        OutboxSummary as OutboxSummary,
    )
    from .rows import (
        RowResult as RowResult,
    )
    from .rows import (
        State as State,
    )
    from .sqlite import (
        SqliteOutbox as SqliteOutbox,
    )
    from .sqlite_file import (
        SCHEMA_VERSION as SCHEMA_VERSION,
    )
    from .sqlite_file import (
        SQLITE_HEADER as SQLITE_HEADER,
    )
    from .sqlite_file import (
        check_owned_by_us as check_owned_by_us,
    )
    from .sqlite_file import (
        make_private_folders as make_private_folders,
    )
    from .sqlite_file import (
        translate_error as translate_error,
    )

# Each name -> the module (relative to this package) it comes from.
_LAZY = {
    "BUSY_TIMEOUT_ENV": "..config.outbox_path",
    "DEFAULT_BUSY_TIMEOUT_S": "..config.outbox_path",
    "busy_timeout_from_env": "..config.outbox_path",
    "default_outbox_path": "..config.outbox_path",
    "resolve_outbox_path": "..config.outbox_path",
    "BACKOFF_BASE_S": "..http.retry",
    "BACKOFF_CAP_S": "..http.retry",
    "retry_delay_s": "..http.retry",
    "DEFAULT_LEASE_S": ".owner",
    "OWNER_HOST_ENV": ".owner",
    "new_owner": ".owner",
    "owner_is_gone": ".owner",
    "AddResult": ".rows",
    "OutboxRow": ".rows",
    "OutboxSummary": ".rows",
    "RowResult": ".rows",
    "State": ".rows",
    "SqliteOutbox": ".sqlite",
    "SCHEMA_VERSION": ".sqlite_file",
    "SQLITE_HEADER": ".sqlite_file",
    "check_owned_by_us": ".sqlite_file",
    "make_private_folders": ".sqlite_file",
    "translate_error": ".sqlite_file",
}


def __getattr__(name: str) -> Any:
    """Import ``name`` from its module on first use, and keep it here."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "AddResult",
    "BACKOFF_BASE_S",
    "BACKOFF_CAP_S",
    "BUSY_TIMEOUT_ENV",
    "DEFAULT_BUSY_TIMEOUT_S",
    "DEFAULT_LEASE_S",
    "OWNER_HOST_ENV",
    "OutboxRow",
    "OutboxSummary",
    "RowResult",
    "SCHEMA_VERSION",
    "SQLITE_HEADER",
    "SqliteOutbox",
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
