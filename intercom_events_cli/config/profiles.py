"""Named profiles in ``$XDG_CONFIG_HOME/ievents/config.toml``, as gh and the Stripe CLI have.

.. code-block:: toml

    default_profile = "eu"

    [profiles.eu]
    region = "eu"                                # or base_url = "https://..."
    token_file = "~/.config/ievents/eu.token"    # or token_env = "INTERCOM_EU_TOKEN"
    api_version = "2.14"                         # optional
    outbox = "~/.local/state/ievents/eu.sqlite3" # optional

A profile is selected by ``--profile NAME``, else ``IEVENTS_PROFILE``, else
``default_profile``. A relative ``outbox`` or ``token_file`` is relative to this file's
folder (:func:`beside`), whatever the working directory. Its values become the variables
ievents reads anyway (``INTERCOM_REGION``, ...), below the environment and above ``.env`` (see
:func:`~intercom_events_cli.config.variables.load_environment`). An unknown profile or key is a
configuration error naming the file and line. The file is read only when it exists or a
profile is asked for, and tomllib (tomli before Python 3.11) is imported only then.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..frozen import frozen

PROFILE_ENV = "IEVENTS_PROFILE"
CONFIG_ENV = "IEVENTS_CONFIG"

# Profile key -> the variable it stands for.
PROFILE_KEYS = {
    "region": "INTERCOM_REGION",
    "base_url": "INTERCOM_BASE_URL",
    "api_version": "INTERCOM_API_VERSION",
    "outbox": "IEVENTS_OUTBOX",
    "token_file": "INTERCOM_ACCESS_TOKEN_FILE",
    "token_env": "",  # read from the named variable into INTERCOM_ACCESS_TOKEN
}


# Keys naming a file: a relative one is relative to the config file's folder.
FILE_KEYS = ("outbox", "token_file")
# ``postgresql://...``, ``jdbc:...``: not a path (a URI-like text is refused, or taken by
# its backend, where the outbox is resolved).
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def beside(config: Path, value: str) -> str:
    """``value`` (a profile's ``outbox`` or ``token_file``) as an absolute path when it is
    a relative one: relative to the folder of ``config``, the file that names it, and not
    to the working directory of whichever command reads it (a relay started by systemd
    in ``/`` and the application capturing from its own folder must reach one file).
    ``~`` is expanded; a URI, or anything with ``=`` (a connection string), is kept."""
    if _SCHEME.match(value) or "=" in value:
        return value
    expanded = Path(value).expanduser()
    if expanded.is_absolute():
        return value
    return str(config.expanduser().absolute().parent / expanded)


def config_path(env: Mapping[str, str]) -> Path:
    """``IEVENTS_CONFIG``, else ``$XDG_CONFIG_HOME/ievents/config.toml`` (``~/.config``)."""
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base).expanduser() / "ievents" / "config.toml"


@frozen
class Profile:
    """The selected profile: its values as variables, and where each came from."""

    name: str
    chosen_by: str
    path: Path
    values: dict[str, str]
    origins: dict[str, str]


def _line_of(text: str, key: str, table: str | None = None) -> int | None:
    """The line defining ``key`` (inside ``[table]`` when given), 1-based; None if not found."""
    in_table = table is None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("["):
            header = line.strip("[] \t").replace('"', "").replace(" ", "")
            if table is None:
                if key == header or header.startswith(f"{key}."):
                    return number
                continue
            in_table = header == table
            continue
        if in_table and line.split("=", 1)[0].strip().strip('"') == key:
            return number
    return None


def _where(path: Path, line: int | None) -> str:
    return f"{path}, line {line}" if line else str(path)


def _parse(path: Path) -> tuple[dict[str, Any], str]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8"
        raise ConfigError(f"cannot read config file {str(path)!r}: {reason}") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _check_keys(data: dict[str, Any], text: str, path: Path) -> None:
    for key in data:
        if key not in ("default_profile", "profiles"):
            raise ConfigError(
                f"unknown key {key!r} in {_where(path, _line_of(text, key))}; "
                "the top level takes default_profile and [profiles.NAME] tables"
            )
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"'profiles' in {path} must be a table: [profiles.NAME]")
    for name, table in profiles.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"profile {name!r} in {_where(path, _line_of(text, 'profiles'))} is not a "
                "table; write [profiles.NAME] followed by key = value lines"
            )
        for key, value in table.items():
            line = _line_of(text, key, f"profiles.{name}")
            if key not in PROFILE_KEYS:
                raise ConfigError(
                    f"unknown key {key!r} in profile {name!r} ({_where(path, line)}); "
                    f"use {', '.join(PROFILE_KEYS)}"
                )
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f"{key} in profile {name!r} ({_where(path, line)}) must be a non-empty "
                    'string in quotes, e.g. region = "eu"'
                )
        if "token_file" in table and "token_env" in table:
            raise ConfigError(
                f"profile {name!r} in {path} sets both token_file and token_env; keep one"
            )


def selected_by(chosen_by: str) -> str:
    """``selected by default_profile`` (the file is named beside it) or ``by IEVENTS_PROFILE``."""
    return "selected by " + chosen_by.split(" in ", 1)[0]


def load_profile(flag: str | None, env: Mapping[str, str]) -> Profile | None:
    """The profile chosen by ``flag``, ``IEVENTS_PROFILE`` or ``default_profile``, if any."""
    path = config_path(env)
    chosen = flag or env.get(PROFILE_ENV)
    chosen_by = "--profile" if flag else PROFILE_ENV
    if not path.is_file():
        if chosen:
            raise ConfigError(
                f"profile {chosen!r} (from {chosen_by}) asked for, but there is no config "
                f"file {path}; create it with a [profiles.{chosen}] table, or set "
                f"{CONFIG_ENV} to its path"
            )
        return None
    data, text = _parse(path)
    _check_keys(data, text, path)
    if not chosen:
        default = data.get("default_profile")
        if default is None:
            return None
        if not isinstance(default, str) or not default:
            line = _line_of(text, "default_profile")
            raise ConfigError(f"default_profile in {_where(path, line)} must be a profile name")
        chosen, chosen_by = default, f"default_profile in {path}"
    profiles: dict[str, dict[str, str]] = data.get("profiles", {})
    if chosen not in profiles:
        line = _line_of(text, "default_profile") if chosen_by.startswith("default") else None
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(
            f"unknown profile {chosen!r} (from {chosen_by}) in {_where(path, line)}; "
            f"profiles there: {known}"
        )
    values: dict[str, str] = {}
    origins: dict[str, str] = {}
    for key, value in profiles[chosen].items():
        line = _line_of(text, key, f"profiles.{chosen}")
        origin = f"profile {chosen} ({_where(path, line)})"
        if chosen_by != "--profile":  # why this profile: it was not asked for by name
            origin = f"profile {chosen} ({_where(path, line)}; {selected_by(chosen_by)})"
        if key == "token_env":
            token = env.get(value, "").strip()
            if not token:
                raise ConfigError(
                    f"token_env in profile {chosen!r} ({_where(path, line)}) names {value}, "
                    "which is not set; export it, or use token_file"
                )
            values["INTERCOM_ACCESS_TOKEN"] = token
            origins["INTERCOM_ACCESS_TOKEN"] = f"variable {value} via {origin}"
            continue
        variable = PROFILE_KEYS[key]
        values[variable] = beside(path, value.strip()) if key in FILE_KEYS else value.strip()
        origins[variable] = origin
    return Profile(chosen, chosen_by, path, values, origins)


def profile_names(env: Mapping[str, str]) -> tuple[Path, list[str]]:
    """The config file and the names of its profiles, in file order (none: no file)."""
    path = config_path(env)
    if not path.is_file():
        return path, []
    data, text = _parse(path)
    _check_keys(data, text, path)
    return path, list(data.get("profiles", {}))
