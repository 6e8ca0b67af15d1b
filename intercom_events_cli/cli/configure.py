"""``ievents config``: every effective setting and where it came from."""

from __future__ import annotations

from typing import Any

import typer

from ..config import (
    API_VERSION_ENV,
    BASE_URL_ENV,
    REGION_ENV,
    Environment,
    Settings,
    base_url_origin,
    outbox_source,
    token_tail,
)
from ..profiles import config_path
from . import app
from .common import (
    ApiVersionOpt,
    BaseUrlOpt,
    DebugOpt,
    EnvFileOpt,
    JsonOpt,
    NoColorOpt,
    OutboxOpt,
    ProfileOpt,
    QuietOpt,
    RegionOpt,
    RetriesOpt,
    TimeoutOpt,
    TokenFileOpt,
    load_environment,
    reporting,
)
from .output import Output


def _source(flag_value: object, flag: str, env: Environment, variable: str) -> str:
    if flag_value:
        return flag
    if env.get(variable):
        return env.origin(variable)
    return "default"


def effective_settings(
    env: Environment,
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


def _from_command_line(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


@app.command("config")
def config_command(
    ctx: typer.Context,
    profile: ProfileOpt = None,
    env_file: EnvFileOpt = None,
    token_file: TokenFileOpt = None,
    region: RegionOpt = None,
    base_url: BaseUrlOpt = None,
    api_version: ApiVersionOpt = None,
    outbox: OutboxOpt = None,
    timeout: TimeoutOpt = 10.0,
    retries: RetriesOpt = 4,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    no_color: NoColorOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Show every effective setting and where it came from; sends nothing.

    Example:
      ievents config --profile eu
    """
    ui = Output(json_mode=json_output, quiet=quiet, no_color=no_color)

    with reporting(ui, debug):
        env = load_environment(env_file, profile=profile)
        settings = Settings.load(
            env=env,
            token_file=token_file,
            region=region,
            base_url=base_url,
            api_version=api_version,
            timeout=timeout,
            retries=retries,
            require_token=False,
        )
        flags = {
            "region": region,
            "base_url": base_url,
            "api_version": api_version,
            "outbox": outbox,
            "timeout": _from_command_line(ctx, "timeout"),
            "retries": _from_command_line(ctx, "retries"),
        }
        table = effective_settings(env, settings, flags=flags, timeout=timeout, retries=retries)
        if json_output:
            ui.json({"ok": True, "settings": table})
            return
        width = max(len(name) for name in table)
        for name, entry in table.items():
            value = "none" if entry["value"] is None else str(entry["value"])
            ui.result(f"{name.ljust(width)}  {value}  ({entry['source']})")
