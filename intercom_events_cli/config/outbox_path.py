"""Where the outbox is (``--outbox`` > ``IEVENTS_OUTBOX`` > the XDG default), and how long
to wait for a locked one."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import OutboxError
from .variables import OUTBOX_ENV, Variables

BUSY_TIMEOUT_ENV = "IEVENTS_OUTBOX_BUSY_TIMEOUT"
DEFAULT_BUSY_TIMEOUT_S = 5.0


def default_outbox_path(env: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/ievents/outbox.sqlite3``, else ``~/.local/state/ievents/...``."""
    state_home = env.get("XDG_STATE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    if state_home and os.path.isabs(state_home):
        base = Path(state_home)
    else:
        home = env.get("HOME") or str(Path.home())
        base = Path(home) / ".local" / "state"
    return base / "ievents" / "outbox.sqlite3"


def resolve_outbox_path(option: str | None, env: Mapping[str, str]) -> Path:
    """``--outbox`` > ``IEVENTS_OUTBOX`` (environment or .env) > the XDG default."""
    if option:
        return Path(option).expanduser()
    if env.get(OUTBOX_ENV):
        return Path(env[OUTBOX_ENV]).expanduser()
    return default_outbox_path(env)


def outbox_source(option: str | None, env: Mapping[str, str]) -> str:
    """Why this outbox: ``--outbox``, where ``IEVENTS_OUTBOX`` came from, or the default."""
    if option:
        return "--outbox"
    if env.get(OUTBOX_ENV):
        return env.origin(OUTBOX_ENV) if isinstance(env, Variables) else f"variable {OUTBOX_ENV}"
    return f"default: no --outbox, {OUTBOX_ENV} or profile outbox"


def busy_timeout_from_env(env: Mapping[str, str]) -> float:
    """How long to wait for a locked outbox: ``IEVENTS_OUTBOX_BUSY_TIMEOUT`` seconds or 5."""
    text = env.get(BUSY_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_BUSY_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise OutboxError(f"{BUSY_TIMEOUT_ENV}={text!r} is not a number of seconds (0-3600)")
    return value
