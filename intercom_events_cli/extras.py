"""How to install an extra (``postgres``, ``metrics``) into the ievents that is running.

No package index serves ``intercom-events-cli``, so ``pip install
'intercom-events-cli[postgres]'`` cannot work. The command that does depends on how this
ievents was installed, which the running interpreter and the distribution's
``direct_url.json`` (PEP 610) tell:

- a pipx venv (``.../pipx/venvs/NAME``): ``pipx inject NAME 'psycopg[binary]>=3.2,<4'``;
- a venv from a clone (``direct_url.json`` names a local folder): ``VENV/bin/pip install
  -e 'CLONE[postgres]'`` (``-e`` only when it was editable);
- any other venv (a wheel): ``VENV/bin/pip install 'psycopg[binary]>=3.2,<4'``;
- no venv at all: ``PYTHON -m pip install '...'`` with this interpreter.

The requirements of an extra are read from the installed metadata, so they stay those of
pyproject.toml; :data:`FALLBACK` serves a source tree run without being installed.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .frozen import frozen

DISTRIBUTION = "intercom-events-cli"
# pyproject.toml's extras, for a source tree run without its metadata installed.
FALLBACK = {
    "postgres": ["psycopg[binary]>=3.2,<4"],
    "metrics": ["prometheus-client>=0.17"],
}
_EXTRA_MARKER = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


@frozen
class Installation:
    """How this ievents was installed: what :func:`extra_install_command` decides on."""

    kind: str  # "pipx", "clone", "venv" or "system"
    prefix: Path  # sys.prefix: the venv (or the interpreter's prefix)
    source: Path | None = None  # the clone installed from, for kind "clone"
    editable: bool = False


def _direct_url(dist: object) -> dict[str, object] | None:
    reader = getattr(dist, "read_text", None)
    text = reader("direct_url.json") if reader is not None else None
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _distribution() -> object | None:
    from importlib import metadata

    try:
        return metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def detect_installation(
    prefix: str | None = None, base_prefix: str | None = None, dist: object | None = None
) -> Installation:
    """Tell how the running ievents was installed (arguments: for tests of one case)."""
    here = Path(prefix if prefix is not None else sys.prefix)
    base = Path(base_prefix if base_prefix is not None else sys.base_prefix)
    if "pipx" in here.parts and here.parent.name == "venvs":
        return Installation("pipx", here)
    if here == base:
        return Installation("system", here)
    direct = _direct_url(dist if dist is not None else _distribution())
    if direct is not None:
        url = direct.get("url")
        dir_info = direct.get("dir_info")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is not None and parts.scheme == "file" and isinstance(dir_info, dict):
            source = Path(unquote(parts.path))
            return Installation("clone", here, source, bool(dir_info.get("editable")))
    return Installation("venv", here)


def extra_requirements(extra: str, dist: object | None = None) -> list[str]:
    """The requirements the extra ``extra`` adds, from the installed metadata."""
    dist = dist if dist is not None else _distribution()
    found: list[str] = []
    for line in getattr(dist, "requires", None) or []:
        requirement, _, marker = line.partition(";")
        match = _EXTRA_MARKER.search(marker)
        if match is not None and match.group(1) == extra:
            found.append(requirement.strip())
    return found or list(FALLBACK.get(extra, []))


def extra_install_command(
    extra: str, installation: Installation | None = None, dist: object | None = None
) -> str:
    """A shell command that installs the extra ``extra`` into this ievents, as installed."""
    where = installation if installation is not None else detect_installation(dist=dist)
    requirements = " ".join(shlex.quote(r) for r in extra_requirements(extra, dist))
    if where.kind == "pipx":
        return f"pipx inject {shlex.quote(where.prefix.name)} {requirements}"
    if where.kind == "clone" and where.source is not None:
        editable = "-e " if where.editable else ""
        target = shlex.quote(f"{where.source}[{extra}]")
        return f"{shlex.quote(str(where.prefix / 'bin' / 'pip'))} install {editable}{target}"
    if where.kind == "venv":
        return f"{shlex.quote(str(where.prefix / 'bin' / 'pip'))} install {requirements}"
    return f"{shlex.quote(sys.executable)} -m pip install {requirements}"
