"""The variables a run sees, merged from the environment, a profile and ``.env``, and
where each came from.

Precedence: the environment > the selected profile > ``.env`` (in the current directory,
or ``--env-file``; it never overrides a variable already set), except that a source the
user named ranks above one picked for them; a named source that still loses is warned
about (:mod:`.warning_sink`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError
from .profiles import Profile, load_profile
from .warning_sink import warn_once

TOKEN_ENV = "INTERCOM_ACCESS_TOKEN"
TOKEN_FILE_ENV = "INTERCOM_ACCESS_TOKEN_FILE"
REGION_ENV = "INTERCOM_REGION"
BASE_URL_ENV = "INTERCOM_BASE_URL"
API_VERSION_ENV = "INTERCOM_API_VERSION"
OUTBOX_ENV = "IEVENTS_OUTBOX"


class Variables(dict[str, str]):
    """The merged variables, plus where each came from and which ``.env`` was looked for."""

    def __init__(self, values: Mapping[str, str] = ()) -> None:  # type: ignore[assignment]
        super().__init__(values)
        self.origins: dict[str, str] = {}
        self.env_path: Path = Path(".env")
        self.env_file_used: bool = False
        self.profile: Profile | None = None
        # Where the tokens hidden by the one in use came from (a lower layer's).
        self.token_overrides: list[str] = []

    def origin(self, key: str) -> str:
        """Where ``key`` came from: a variable, a ``.env`` file or a profile."""
        return self.origins.get(key, f"variable {key}")


def load_environment(
    env_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    profile: str | None = None,
) -> Variables:
    """Merge the process environment over a profile over a ``.env`` file.

    Precedence: the environment > the selected profile (``--profile``, ``IEVENTS_PROFILE``
    or ``default_profile``) > ``.env`` > defaults, except that an explicit ``env_file``
    ranks above a profile not chosen by ``--profile``; a value of an explicit source
    (``env_file``, ``--profile``) hidden by another source is warned about. Without
    ``env_file`` a ``.env`` in the current directory is used when present; an
    ``env_file`` that does not exist is a configuration error. python-dotenv is imported
    only when there is a file to read. Empty values count as unset. The token is one
    setting with two forms (the value, or a file): a layer that gives it in either form
    hides both forms in the layers below.
    """
    base = {key: value for key, value in (os.environ if environ is None else environ).items()}
    path = Path(env_file) if env_file is not None else Path(".env")
    if env_file is not None and (path.is_dir() or not path.exists()):
        problem = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"env file {str(path)!r} {problem}; check --env-file")
    # A named file may be a pipe (--env-file <(sops -d prod.env)): read once, as it is.
    readable = path.exists() if env_file is not None else path.is_file()
    from_file: dict[str, str] = {}
    if readable:
        try:
            values = _read_env_file(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read env file {str(path)!r}: {exc}") from None
        from_file = {key: value for key, value in values.items() if value}
    chosen = load_profile(profile, {**from_file, **base})
    file_layer = (from_file, {key: f"{key} in {path.absolute()}" for key in from_file})
    layers: list[tuple[dict[str, str], dict[str, str]]] = [file_layer]
    if chosen is not None:
        # What the user named beats what was picked for them: an --env-file ranks above
        # a profile chosen by IEVENTS_PROFILE or default_profile, below one from --profile.
        profile_layer = (chosen.values, chosen.origins)
        if env_file is not None and chosen.chosen_by != "--profile":
            layers.insert(0, profile_layer)
        else:
            layers.append(profile_layer)
    layers.append(({key: value for key, value in base.items() if value}, {}))
    merged = _merge(layers)
    explicit = [file_layer] if env_file is not None else []
    if chosen is not None and chosen.chosen_by == "--profile":
        explicit.append((chosen.values, chosen.origins))
    for layer, origins in explicit:
        _warn_hidden(merged, layer, origins)
    merged.env_path = path.absolute()
    merged.env_file_used = bool(from_file) or readable
    merged.profile = chosen
    return merged


def _drop_record(record: object) -> bool:
    return False


def _read_env_file(path: Path) -> dict[str, str | None]:
    """The values of a ``.env`` file; a line python-dotenv cannot parse is warned about.

    python-dotenv skips such a line and logs a line of its own (no file, no ievents
    format): that record is dropped, and the warning names the file and the line instead.
    """
    import logging

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    text = path.read_text(encoding="utf-8")
    dotenv_logger = logging.getLogger("dotenv.main")
    dotenv_logger.addFilter(_drop_record)
    try:
        values = dotenv_values(stream=io.StringIO(text))
    finally:
        dotenv_logger.removeFilter(_drop_record)
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            warn_once(
                f"{path.absolute()} line {binding.original.line} cannot be parsed and is ignored; "
                "write it as NAME=value (closing any quote you open)"
            )
    return values


def _merge(layers: list[tuple[dict[str, str], dict[str, str]]]) -> Variables:
    """The layers, lowest first, merged into one environment that knows each value's origin."""
    merged = Variables()
    for layer, origins in layers:
        if layer.get(TOKEN_ENV) or layer.get(TOKEN_FILE_ENV):
            hidden = [merged.origin(key) for key in (TOKEN_ENV, TOKEN_FILE_ENV) if key in merged]
            if hidden:  # said by `config` and `check`: a token must not win silently
                merged.token_overrides = hidden
            for key in (TOKEN_ENV, TOKEN_FILE_ENV):
                merged.pop(key, None)
                merged.origins.pop(key, None)
        merged.update(layer)
        for key in layer:
            merged.origins.pop(key, None)
        merged.origins.update(origins)
    return merged


def _warn_hidden(merged: Variables, layer: Mapping[str, str], origins: Mapping[str, str]) -> None:
    """Warn when a value from a source the user named is hidden by another source.

    The precedence stays (a set variable beats ``--env-file``); it is never silent.
    """
    for key, value in layer.items():
        if key == TOKEN_FILE_ENV and TOKEN_ENV in layer:
            continue  # one token, said once
        hidden = origins.get(key, key)
        if key in (TOKEN_ENV, TOKEN_FILE_ENV):
            # The token's two forms are one setting: whichever form won hides this one.
            key = TOKEN_ENV if TOKEN_ENV in merged else TOKEN_FILE_ENV
            value = layer.get(key, "")
        if key not in merged or merged.origin(key) == origins.get(key) or merged[key] == value:
            continue
        warn_once(f"{merged.origin(key)} overrides {hidden}")
