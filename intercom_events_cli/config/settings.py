"""Settings: token, region, base URL, API version; where they come from.

Precedence: command-line flag > environment variable > profile > ``.env`` (in the
current directory, or ``--env-file``; it never overrides a variable already set) > default.
What the user names is never silently overridden by what was picked for them: an
``--env-file`` ranks above a profile not chosen by ``--profile``, ``--region`` beats a base
URL from a variable, profile or file, and a named source that still loses is warned about.
The token is never taken from a flag's value, and :class:`Settings` never shows it in
``repr``. Every token loaded is registered with :func:`register_secret` so that output
code can redact it from anything it writes.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .. import __version__
from ..errors import ConfigError, OutboxError
from .profiles import Profile, load_profile

TOKEN_ENV = "INTERCOM_ACCESS_TOKEN"
TOKEN_FILE_ENV = "INTERCOM_ACCESS_TOKEN_FILE"
REGION_ENV = "INTERCOM_REGION"
BASE_URL_ENV = "INTERCOM_BASE_URL"
API_VERSION_ENV = "INTERCOM_API_VERSION"
OUTBOX_ENV = "IEVENTS_OUTBOX"

DEFAULT_REGION = "us"
DEFAULT_API_VERSION = "2.14"
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 4
REGION_BASE_URLS = {
    "us": "https://api.intercom.io",
    "eu": "https://api.eu.intercom.io",
    "au": "https://api.au.intercom.io",
}
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@")
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}

_secrets: set[str] = set()


# Shorter "tokens" are not real Intercom tokens (those are ~60 characters); redacting a
# one-letter test token would garble every message instead of protecting anything.
MIN_SECRET_LENGTH = 8


def register_secret(value: str) -> None:
    """Remember a secret so that :func:`redact` removes it from any text."""
    if len(value) >= MIN_SECRET_LENGTH:
        # Also as it comes back encoded: JSON and repr() escapes, percent-encoded in a
        # server's next-page link, HTML-escaped in an error page, base64 in an echo.
        from ..textsafe import token_forms

        _secrets.update(token_forms(value))


def redact(text: str) -> str:
    """Replace every registered secret in ``text`` with ``***``."""
    # Longest first: an escaped form may contain a shorter one.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


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
    if env_file is not None and not path.is_file():
        problem = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ConfigError(f"env file {str(path)!r} {problem}; check --env-file")
    from_file: dict[str, str] = {}
    if path.is_file():
        try:
            from dotenv import dotenv_values

            values = dotenv_values(path)
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
    merged.env_file_used = bool(from_file) or path.is_file()
    merged.profile = chosen
    return merged


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
        _warn_once(f"{merged.origin(key)} overrides {hidden}")


# The longest first line read from a token file (Intercom tokens are about 60 characters).
MAX_TOKEN_LINE = 4096


def _read_token_file(path_text: str, origin: str) -> str:
    path = Path(path_text).expanduser()
    try:
        with path.open(encoding="utf-8") as handle:
            # Bounded: --token-file /dev/zero must not read until memory runs out.
            first_line = handle.readline(MAX_TOKEN_LINE + 1)
        if len(first_line) > MAX_TOKEN_LINE:
            raise ConfigError(
                f"token file {str(path)!r} (from {origin}) does not hold a token: its first "
                f"line is longer than {MAX_TOKEN_LINE} characters"
            )
        first_line = first_line.strip()
    except FileNotFoundError:
        raise ConfigError(f"token file {str(path)!r} (from {origin}) does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
        raise ConfigError(
            f"cannot read token file {str(path)!r} (from {origin}): {reason}"
        ) from None
    if not first_line:
        raise ConfigError(f"token file {str(path)!r} (from {origin}) is empty")
    return first_line


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
    _secrets.clear()
    _warned.clear()
    _pending_warnings.clear()
    _warning_sink.clear()


def _warn_once(text: str) -> None:
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


def token_tail(token: str) -> str:
    """The token's last four characters, enough to tell two tokens apart and no more."""
    return f"...{token[-4:]}" if len(token) >= 8 else "(set; too short to show any of it)"


def _fits_in_a_header(text: str) -> bool:
    """Printable ASCII without spaces: what an HTTP header value can carry as given."""
    return text.isascii() and text.isprintable() and " " not in text


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_base_url(url: str, origin: str) -> str:
    """Return ``url`` without a trailing slash; refuse non-HTTP(S) and plain http off loopback."""
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 in argv or the environment
        raise ConfigError(
            f"the base URL (from {origin}) is not valid UTF-8 text; check its encoding"
        ) from None
    if _USERINFO.match(url.strip()):
        # Not echoed: the part before '@' is a password.
        raise ConfigError(
            f"the base URL (from {origin}) contains a user name or password; remove it "
            "(the access token is the only credential ievents sends)"
        )
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:  # 'http://[::1' or 'http://host:99999'
        raise ConfigError(f"base URL {url!r} (from {origin}) is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"base URL {url!r} (from {origin}) is not an http(s) URL; "
            "use e.g. https://api.intercom.io",
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"base URL {url!r} (from {origin}) uses plain http off this machine, which would "
            "send the token unencrypted; use https (plain http is allowed for loopback only)",
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"base URL {url!r} (from {origin}) must not have a query or fragment")
    return url.strip().rstrip("/")


def _resolve_token(
    env: Variables, token_file: str | None, *, require_token: bool
) -> tuple[str, str]:
    """(the token, where it came from): ``--token-file`` > the token > a token file.

    Warns about a token file or ``.env`` others can read; refuses a token that cannot be
    sent, and a missing one when ``require_token``.
    """
    token = ""
    token_source = ""
    if token_file:
        token = _read_token_file(token_file, "--token-file")
        token_source = f"file {token_file} (from --token-file)"
        warn_if_readable_by_others(token_file)
    elif env.get(TOKEN_ENV):
        token = env[TOKEN_ENV].strip()
        token_source = env.origin(TOKEN_ENV)
        if env.env_file_used and token_source.startswith(f"{TOKEN_ENV} in "):
            warn_if_readable_by_others(env.env_path)
    elif env.get(TOKEN_FILE_ENV):
        source = env.origin(TOKEN_FILE_ENV)
        token = _read_token_file(env[TOKEN_FILE_ENV], source)
        token_source = f"file {env[TOKEN_FILE_ENV]} (from {source})"
        warn_if_readable_by_others(env[TOKEN_FILE_ENV])
    if token and not token_file and env.token_overrides:
        token_source += f", overriding {' and '.join(env.token_overrides)}"
    if token and not _fits_in_a_header(token):
        raise ConfigError(
            "the access token contains whitespace, control or non-ASCII characters; check "
            f"{token_source or TOKEN_ENV} holds only the token"
        )
    register_secret(token)
    if require_token and not token:
        looked = (
            f"{env.env_path} has none" if env.env_file_used else f"no .env in {env.env_path.parent}"
        )
        raise ConfigError(
            f"no access token ({looked}): set {TOKEN_ENV} in the environment or in .env, "
            f"point --token-file / {TOKEN_FILE_ENV} at a file holding it, or choose a "
            "profile (--profile NAME); from cron, give --env-file or --profile explicitly",
        )
    return token, token_source


def base_url_origin(env: Variables) -> str:
    """Where ``INTERCOM_BASE_URL`` came from, named as a variable when from the environment."""
    return env.origins.get(BASE_URL_ENV, f"variable {BASE_URL_ENV}")


def _resolve_endpoint(env: Variables, region: str | None, base_url: str | None) -> tuple[str, str]:
    """(the region, the base URL): flags > the environment > the default region."""
    region_origin = "--region" if region else env.origins.get(REGION_ENV, REGION_ENV)
    region_value = (region or env.get(REGION_ENV) or DEFAULT_REGION).strip().lower()
    if region_value not in REGION_BASE_URLS:
        raise ConfigError(
            f"unknown region {region_value!r} (from {region_origin}); use us, eu or au",
        )

    if base_url:
        resolved_url = validate_base_url(base_url, "--base-url")
    elif region and env.get(BASE_URL_ENV):
        # The flag beats a base URL from a variable, a profile or .env; said, not silent.
        resolved_url = REGION_BASE_URLS[region_value]
        _warn_once(
            f"--region {region_value} overrides {base_url_origin(env)}: requests go to "
            f"{resolved_url}"
        )
    elif env.get(BASE_URL_ENV):
        resolved_url = validate_base_url(
            env[BASE_URL_ENV], env.origins.get(BASE_URL_ENV, BASE_URL_ENV)
        )
    else:
        resolved_url = REGION_BASE_URLS[region_value]
    return region_value, resolved_url


@dataclass(frozen=True)
class Settings:
    """Everything needed to talk to Intercom. ``token`` is hidden from ``repr``."""

    token: str = field(repr=False)
    base_url: str = REGION_BASE_URLS[DEFAULT_REGION]
    region: str = DEFAULT_REGION
    api_version: str = DEFAULT_API_VERSION
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    # Where the token came from ("variable INTERCOM_ACCESS_TOKEN", "file ... (from ...)").
    token_source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # Whoever builds Settings (Settings.load, a library user, dataclasses.replace):
        # the token is redacted from every message from then on.
        register_secret(self.token)

    @property
    def has_token(self) -> bool:
        """Whether a token was configured (a dry run works without one)."""
        return bool(self.token)

    def headers(self, *, redacted: bool = False) -> dict[str, str]:
        """The headers of every request; ``redacted`` shows the token as ``***``."""
        return {
            "Authorization": f"Bearer {'***' if redacted else self.token}",
            "Accept": "application/json",
            "Intercom-Version": self.api_version,
            "User-Agent": f"ievents/{__version__} (+https://pypi.org/project/intercom-events-cli)",
        }

    @classmethod
    def load(
        cls,
        *,
        env: Mapping[str, str] | None = None,
        env_file: str | Path | None = None,
        token_file: str | None = None,
        region: str | None = None,
        base_url: str | None = None,
        api_version: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        require_token: bool = True,
    ) -> Settings:
        """Resolve settings from flags (the arguments), the environment and ``.env``.

        ``env`` is an already merged environment (see :func:`load_environment`); without
        it the process environment and ``.env`` (or ``env_file``) are read.
        """
        if env is None:
            env = load_environment(env_file)
        origins = env if isinstance(env, Variables) else Variables(env)
        token, token_source = _resolve_token(origins, token_file, require_token=require_token)
        region_value, resolved_url = _resolve_endpoint(origins, region, base_url)

        version = (api_version or env.get(API_VERSION_ENV) or DEFAULT_API_VERSION).strip()
        if not version or not _fits_in_a_header(version):
            raise ConfigError(f"API version {version!r} is not valid; use e.g. 2.14")

        return cls(
            token=token,
            base_url=resolved_url,
            region=region_value,
            api_version=version,
            timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
            retries=DEFAULT_RETRIES if retries is None else retries,
            token_source=token_source,
        )


# -- where the outbox is, and how long to wait for a locked one ------------------------------

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
