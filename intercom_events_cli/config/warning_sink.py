"""Where configuration warnings go: a sink the CLI sets (its stderr), queued until then.

The core never prints: a warning about the configuration (a named source hidden by
another, a token file others can read) is handed to the sink, once per text.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .redaction import forget_secrets

_warned: set[str] = set()
_warning_sink: list[Callable[[str], None]] = []
_pending_warnings: list[str] = []


def set_warning_sink(sink: Callable[[str], None] | None) -> None:
    """Where configuration warnings go (the CLI's stderr); queued ones are delivered now."""
    _warning_sink[:] = [sink] if sink is not None else []
    if sink is not None:
        while _pending_warnings:
            sink(_pending_warnings.pop(0))


def reset_process_state() -> None:
    """Forget the registered secrets and the warnings given once, as a new process would.

    For a caller that runs several commands in one process (the in-process test runner):
    a secret registered by an earlier run would otherwise be redacted in a later one.
    """
    forget_secrets()
    _warned.clear()
    _pending_warnings.clear()
    _warning_sink.clear()


def warn_once(text: str) -> None:
    """Hand ``text`` to the sink (or queue it), unless it was already said in this process."""
    if text not in _warned:
        _warned.add(text)
        _warn(text)


def _warn(text: str) -> None:
    if _warning_sink:
        _warning_sink[0](text)
    else:
        _pending_warnings.append(text)


def warn_if_readable_by_others(path_text: str | Path) -> None:
    """Warn once per file when the file holding the token can be read by other users."""
    path = Path(path_text).expanduser()
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if os.name != "posix" or not mode & 0o044 or str(path) in _warned:
        return
    _warned.add(str(path))
    _warn(
        f"{path} holds the access token and is readable by other users "
        f"(mode {mode & 0o777:04o}); run: chmod 600 {path}"
    )
