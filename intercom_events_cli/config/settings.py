"""Settings: token, region, base URL, API version; where they come from.

Precedence: command-line flag > environment variable > profile > ``.env`` (in the
current directory, or ``--env-file``; it never overrides a variable already set) > default.
What the user names is never silently overridden by what was picked for them: an
``--env-file`` ranks above a profile not chosen by ``--profile``, ``--region`` beats a base
URL from a variable, profile or file, and a named source that still loses is warned about.
The token is never taken from a flag's value, and :class:`Settings` never shows it in
``repr``. Every token loaded is registered with :func:`.redaction.register_secret` so that output
code can redact it from anything it writes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import field
from pathlib import Path
from urllib.parse import urlsplit

from .. import __version__
from ..errors import ConfigError
from ..frozen import frozen
from .redaction import register_secret
from .variables import (
    API_VERSION_ENV,
    BASE_URL_ENV,
    REGION_ENV,
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    Variables,
    load_environment,
)
from .warning_sink import warn_if_readable_by_others, warn_once

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
) -> tuple[str, str, str | None]:
    """(the token, where it came from, the file it was read from or None):
    ``--token-file`` > the token > a token file.

    Warns about a token file or ``.env`` others can read; refuses a token that cannot be
    sent, and a missing one when ``require_token``.
    """
    token = ""
    token_source = ""
    read_from: str | None = None
    if token_file:
        read_from = token_file
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
        read_from = env[TOKEN_FILE_ENV]
        token = _read_token_file(read_from, source)
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
    return token, token_source, read_from


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
        warn_once(
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


@frozen
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
    # The file the token was read from (--token-file, INTERCOM_ACCESS_TOKEN_FILE, a
    # profile's token_file), or None: a long-running relay reads it again (a rotation).
    token_file: str | None = field(default=None, compare=False)

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
        token, token_source, read_from = _resolve_token(
            origins, token_file, require_token=require_token
        )
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
            token_file=read_from,
        )
