"""Who holds a claim: owner ids (``host:pid:start:nonce``) and whether an owner is gone.

A claim whose owner no longer runs on this host is taken back at the next claim, so
``kill -9`` loses nothing and delays nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..errors import ConfigError

OWNER_HOST_ENV = "IEVENTS_OWNER_HOST"
# How long a claim holds without renewal before another claimer may take it back.
DEFAULT_LEASE_S = 120.0
# Overrides it (seconds): shorter, a frozen or cut-off relay's rows come back sooner.
LEASE_ENV = "IEVENTS_LEASE_S"


def lease_seconds(env: Mapping[str, str]) -> float:
    """The claim lease from ``IEVENTS_LEASE_S`` (default :data:`DEFAULT_LEASE_S`)."""
    text = env.get(LEASE_ENV, "").strip()
    if not text:
        return DEFAULT_LEASE_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 1.0 <= value <= 86400.0:
        raise ConfigError(
            f"{LEASE_ENV}={text!r} is not a lease length",
            hint="give seconds between 1 and 86400 (the default is 120)",
        )
    return value


def _process_start(pid: int) -> str:
    """The start time of a process (clock ticks since boot), or ``-`` when unknown.

    With the pid it tells a live claimer from an unrelated process that reused its pid.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return "-"
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else "-"


def _hostname() -> str:
    import socket  # only claims need it: keeps ``send --queue`` lean

    # IEVENTS_OWNER_HOST names this host in claims where the host name is not unique
    # (containers), and lets tests stand for another host.
    return os.environ.get(OWNER_HOST_ENV) or socket.gethostname()


def new_owner() -> str:
    """A claim owner for this process: ``host:pid:start:nonce`` (nonce: per engine)."""
    pid = os.getpid()
    return f"{_hostname()}:{pid}:{_process_start(pid)}:{os.urandom(4).hex()}"


def owner_is_gone(owner: str, host: str | None = None) -> bool:
    """True when ``owner`` was a process on this host that no longer runs."""
    host = _hostname() if host is None else host
    # The host name may contain ':' in theory: take the last three fields from the right.
    parts = owner.rsplit(":", 3)
    if len(parts) != 4 or parts[0] != host:
        return False
    _, pid_text, start, _nonce = parts
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, owned by another user
    except OSError:
        return False
    current = _process_start(pid)
    return start != "-" and current != "-" and current != start
