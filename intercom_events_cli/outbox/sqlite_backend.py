"""The SQLite backend's line in the registry (:data:`.store.BACKENDS`): a plain file path.

Where the file is (``--outbox`` > ``IEVENTS_OUTBOX`` > the XDG default, ``config/outbox_path.py``),
and opening it with the busy timeout of ``IEVENTS_OUTBOX_BUSY_TIMEOUT``. The store is
:mod:`.sqlite`, its file :mod:`.sqlite_file`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.outbox_path import busy_timeout_from_env, resolve_outbox_path
from .sqlite import SqliteOutbox

if TYPE_CHECKING:
    from .store import OutboxLocation


def locate(text: str, option: str | None, env: Mapping[str, str]) -> Path:
    """The file ``option`` or ``IEVENTS_OUTBOX`` names (``~`` expanded), else the default."""
    return resolve_outbox_path(option, env)


def owns(location: object) -> bool:
    """A SQLite outbox is given by its file path (a :class:`~pathlib.Path`, or any
    ``os.PathLike``)."""
    return isinstance(location, (Path, os.PathLike))


def _path(location: OutboxLocation) -> Path:
    return location if isinstance(location, Path) else Path(str(location))


def open_store(location: OutboxLocation, env: Mapping[str, str], *, create: bool) -> SqliteOutbox:
    """Open (creating it unless ``create`` is false) and check the outbox file."""
    return SqliteOutbox.open(
        _path(location), busy_timeout_s=busy_timeout_from_env(env), create=create
    )


def open_reader(location: OutboxLocation, env: Mapping[str, str]) -> SqliteOutbox:
    """A second connection to a file this process has open (:meth:`SqliteOutbox.open_reader`)."""
    return SqliteOutbox.open_reader(_path(location), busy_timeout_s=busy_timeout_from_env(env))
