"""``ievents config``: every effective setting and where it came from."""

from __future__ import annotations

from typing import Any

from ..config.outbox_path import outbox_source
from ..config.profiles import config_path
from ..config.redaction import token_tail
from ..config.settings import Settings, base_url_origin
from ..config.variables import API_VERSION_ENV, BASE_URL_ENV, REGION_ENV, Variables
from .common import reporting
from .options import Options, shared


def _source(flag_value: object, flag: str, env: Variables, variable: str) -> str:
    if flag_value:
        return flag
    if env.get(variable):
        return env.origin(variable)
    return "default"


def effective_settings(
    env: Variables,
    settings: Settings,
    *,
    flags: dict[str, Any],
    timeout: float,
    retries: int,
) -> dict[str, dict[str, Any]]:
    """Each setting as ``{"value", "source"}``; the token only as its last four characters."""
    from ..outbox.store import resolve_location

    if settings.has_token:
        token: dict[str, Any] = {
            "value": token_tail(settings.token),
            "source": settings.token_source,
        }
    else:
        looked = (
            f"not in {env.env_path}" if env.env_file_used else f"no .env in {env.env_path.parent}"
        )
        token = {
            "value": None,
            "source": f"no variable, token file or profile sets it; {looked}",
        }
    if flags["base_url"]:
        base_source = "--base-url"
    elif flags["region"] and env.get(BASE_URL_ENV):
        base_source = f"--region {settings.region}, overriding {base_url_origin(env)}"
    elif env.get(BASE_URL_ENV):
        base_source = env.origin(BASE_URL_ENV)
    else:
        base_source = f"region {settings.region}"
    profile = env.profile
    return {
        "profile": {
            "value": profile.name if profile else None,
            "source": profile.chosen_by
            if profile
            else "no --profile, IEVENTS_PROFILE or default_profile",
        },
        "config_file": {
            "value": str(config_path(env)),
            "source": "present" if config_path(env).is_file() else "absent",
        },
        "env_file": {
            "value": str(env.env_path),
            "source": "read" if env.env_file_used else "absent",
        },
        "token": token,
        "region": {
            "value": settings.region,
            "source": _source(flags["region"], "--region", env, REGION_ENV),
        },
        "base_url": {"value": settings.base_url, "source": base_source},
        "api_version": {
            "value": settings.api_version,
            "source": _source(flags["api_version"], "--api-version", env, API_VERSION_ENV),
        },
        "outbox": {
            # str(): a URI without its password (never a Path made of the URI).
            "value": str(resolve_location(flags["outbox"], env)),
            "source": outbox_source(flags["outbox"], env),
        },
        "timeout": {"value": timeout, "source": "--timeout" if flags["timeout"] else "default"},
        "retries": {"value": retries, "source": "--retries" if flags["retries"] else "default"},
    }


@shared(
    "profile",
    "env_file",
    "token_file",
    "region",
    "base_url",
    "api_version",
    "outbox",
    "timeout",
    "retries",
    "json_output",
    "quiet",
    "no_color",
    "debug",
)
def config_command(*, opts: Options) -> None:
    """Show every effective setting and where it came from; sends nothing.

    Example:
      ievents config --profile eu
    """
    ui = opts.output()

    with reporting(ui, opts.debug):
        env = opts.environment()
        settings = opts.settings(require_token=False)
        flags = {
            "region": opts.region,
            "base_url": opts.base_url,
            "api_version": opts.api_version,
            "outbox": opts.outbox,
            "timeout": "timeout" in opts.given,
            "retries": "retries" in opts.given,
        }
        table = effective_settings(
            env, settings, flags=flags, timeout=settings.timeout, retries=settings.retries
        )
        if ui.json_mode:
            ui.json({"ok": True, "settings": table})
            return
        width = max(len(name) for name in table)
        for name, entry in table.items():
            value = "none" if entry["value"] is None else str(entry["value"])
            ui.result(f"{name.ljust(width)}  {value}  ({entry['source']})")
