"""``ievents check``: is my token right, and which workspace does it belong to?"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config.redaction import token_tail
from ..config.settings import Settings
from ..errors import ApiError, IeventsError
from ..http.client import proxy_for
from .common import open_client, open_existing, reporting
from .options import OUTPUTS, SETTINGS, Options, shared
from .output import Output
from .render import failure_json, lookup_hint

if TYPE_CHECKING:
    from ..http.lookup import TokenOwner


def print_owner(ui: Output, owner: TokenOwner, settings: Settings) -> None:
    """The human ``check`` report on stdout."""

    def shown(value: str | None) -> str:
        return value if value else "(not reported)"

    admin = shown(owner.admin_name)
    if owner.admin_email:
        admin += f" <{owner.admin_email}>"
    app_line = shown(owner.app_name)
    if owner.app_id_code:
        app_line += f" (id_code {owner.app_id_code})"
    ui.result("ok: the token works", style="green")
    ui.result(f"  admin:   {admin}")
    ui.result(f"  app:     {app_line}")
    ui.result(f"  region:  {shown(owner.reported_region)}")
    ui.result(f"  API:     {owner.api_base} (Intercom-Version {owner.api_version})")
    ui.result(f"  token:   {token_tail(settings.token)} from {settings.token_source}")
    proxy = proxy_for(settings.base_url)
    if proxy:
        ui.result(f"  proxy:   {proxy} (from the environment: HTTPS_PROXY / HTTP_PROXY)")


@shared(*SETTINGS, *OUTPUTS)
def check(*, opts: Options) -> None:
    """Check the token and region: whose token it is, where ievents sends.

    Example:
      ievents check --profile eu
    """
    ui = opts.output()
    settings: Settings | None = None

    def json_failure(exc: IeventsError) -> None:
        if ui.json_mode:
            ui.json(
                failure_json(
                    exc,
                    api_base=settings.base_url if settings else None,
                    api_version=settings.api_version if settings else None,
                    status=getattr(exc, "status", None),
                    token_source=settings.token_source if settings else None,
                )
            )

    with reporting(ui, opts.debug, on_error=json_failure):
        settings = opts.settings()
        from ..http.lookup import get_me

        try:
            with open_client(ui, settings) as client:
                owner = get_me(client)
        except ApiError as exc:
            exc.hint = exc.hint or lookup_hint(exc, settings)
            raise
        remember_workspace(opts, settings, owner.app_id_code)
        if ui.json_mode:
            ui.json(
                {
                    **owner.as_json(),
                    "token": {
                        "last4": token_tail(settings.token),
                        "source": settings.token_source,
                    },
                    "proxy": proxy_for(settings.base_url),
                }
            )
        else:
            print_owner(ui, owner, settings)
        for warning in owner.warnings():
            ui.warn(warning)


def remember_workspace(opts: Options, settings: Settings, workspace_id: str | None) -> None:
    """Tell an existing outbox which workspace the token belongs to (never creates one):
    events captured under an older token of the workspace then go with this one."""
    if not workspace_id:
        return
    from ..errors import OutboxError

    try:
        env = opts.environment()
        store = open_existing(opts.outbox_location(), env)
        if store is not None:
            with store:
                store.learn(settings, workspace_id)
    except OutboxError:
        pass  # check is about the token; the outbox reports its own trouble when used
