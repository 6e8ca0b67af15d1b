"""The options every command shares, declared once: one :class:`Options` per run.

A command names the shared options it takes with :func:`shared`; they reach it as one
argument, ``opts``, which yields the run's :class:`~.output.Output`, its variables and
its :class:`~intercom_events_cli.config.settings.Settings` (``Settings.load`` is called here and
nowhere else in the CLI)::

    @shared("outbox", *SETTINGS, *OUTPUTS)
    def send(event_name: ..., *, opts: Options) -> None:
        ui = opts.output()
        settings = opts.settings()

The names give the options' order in ``--help``; a name of one of the command's own
parameters puts that parameter there (``outbox status`` puts its ``--format`` after
``--json``). A keyword replaces a shared option's declaration for one command (its help,
say), keeping its type and its place in ``opts``:
``@shared(*OUTPUTS, verbose=typer.Option("--verbose", "-v", help=...))``. A command that
declares a shared name itself (a repeatable ``--profile``, a list) owns it: the value is
its argument, not in ``opts``, and :meth:`Options.for_profile` gives the options of each
profile it names.

The contact a command is about (``--user-id``, ``--email``, ``--id``) is declared once as
well, by :func:`identity_options`: ``send`` names the event's contact, ``list`` the contact
whose events it lists; each gives its own panel and says what ``--id`` is for there::

    @identity_options(panel="Contact", id_help="Intercom's contact id (for a lead).")
    def list_command(..., *, identity: Identity, opts: Options) -> None:
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import field, fields, replace
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_args

import typer

from ..config.settings import Settings
from ..config.variables import Variables, load_environment
from ..frozen import frozen
from .environment import current
from .output import Output

if TYPE_CHECKING:
    from ..outbox.store import OutboxLocation

# The --help panels.
CONNECTION = "Settings"
OUTPUT = "Output"
DELIVERY = "Delivery"
OUTBOX = "Outbox"


class Region(str, Enum):
    """The workspace regions (a str, so the core takes it as the region's name)."""

    us = "us"
    eu = "eu"
    au = "au"


def finite(value: float | None) -> float | None:
    """Option callback refusing nan and inf, which pass typer's min/max checks unnoticed."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def _setting(flag: str, metavar: str, help: str) -> Any:
    return typer.Option(
        flag, metavar=metavar, help=help, rich_help_panel=CONNECTION, show_default=False
    )


# name -> (annotation, default): the declaration of each shared option.
DECLARATIONS: dict[str, tuple[Any, Any]] = {
    "outbox": (
        Annotated[
            str | None,
            _setting(
                "--outbox",
                "PATH|URI",
                "Outbox file or postgresql:// URI (IEVENTS_OUTBOX). "
                "[default: $XDG_STATE_HOME/ievents/outbox.sqlite3]",
            ),
        ],
        None,
    ),
    "token_file": (
        Annotated[
            str | None,
            _setting(
                "--token-file", "PATH", "File holding the token (INTERCOM_ACCESS_TOKEN_FILE)."
            ),
        ],
        None,
    ),
    "env_file": (
        Annotated[str | None, _setting("--env-file", "PATH", "Read this file instead of ./.env.")],
        None,
    ),
    "profile": (
        Annotated[
            str | None, _setting("--profile", "NAME", "Profile in config.toml (IEVENTS_PROFILE).")
        ],
        None,
    ),
    "region": (
        Annotated[
            Region | None,
            typer.Option(
                "--region",
                case_sensitive=False,
                help="Workspace region (INTERCOM_REGION). [default: us]",
                rich_help_panel=CONNECTION,
                show_default=False,
            ),
        ],
        None,
    ),
    "base_url": (
        Annotated[str | None, _setting("--base-url", "URL", "API base URL (INTERCOM_BASE_URL).")],
        None,
    ),
    "api_version": (
        Annotated[
            str | None,
            _setting(
                "--api-version", "VERSION", "API version (INTERCOM_API_VERSION). [default: 2.14]"
            ),
        ],
        None,
    ),
    "timeout": (
        Annotated[
            float,
            typer.Option(
                "--timeout",
                metavar="SECONDS",
                min=0.1,
                max=3600.0,
                callback=finite,
                help="Seconds per attempt, 0.1-3600.",
                rich_help_panel=CONNECTION,
            ),
        ],
        10.0,
    ),
    "retries": (
        Annotated[
            int,
            typer.Option(
                "--retries",
                metavar="N",
                min=0,
                # Backoff is capped at 30 s: 100 retries already spans most of an hour.
                max=100,
                help="Retries of a failed attempt, 0-100.",
                rich_help_panel=CONNECTION,
            ),
        ],
        4,
    ),
    "json_output": (
        Annotated[
            bool, typer.Option("--json", help="One JSON object on stdout.", rich_help_panel=OUTPUT)
        ],
        False,
    ),
    "quiet": (
        Annotated[
            bool,
            typer.Option(
                "--quiet",
                "-q",
                help="Nothing on success; errors still on stderr.",
                rich_help_panel=OUTPUT,
            ),
        ],
        False,
    ),
    "verbose": (
        Annotated[
            bool,
            typer.Option(
                "--verbose", "-v", help="One stderr line per HTTP attempt.", rich_help_panel=OUTPUT
            ),
        ],
        False,
    ),
    "no_color": (
        Annotated[
            bool,
            typer.Option(
                "--no-color",
                help="No colour (also NO_COLOR, or not a terminal).",
                rich_help_panel=OUTPUT,
            ),
        ],
        False,
    ),
    "debug": (
        Annotated[
            bool,
            typer.Option(
                "--debug",
                help="Tracebacks of internal errors (token redacted).",
                rich_help_panel=OUTPUT,
            ),
        ],
        False,
    ),
}

# The usual sets, in their usual --help order.
SETTINGS = (
    "token_file",
    "env_file",
    "profile",
    "region",
    "base_url",
    "api_version",
    "timeout",
    "retries",
)
OUTPUTS = ("json_output", "quiet", "verbose", "no_color", "debug")
OUTBOX_ONLY = ("outbox", "env_file", "profile")


@frozen
class Options:
    """The shared options of one run, as given (None or the default where not given)."""

    outbox: str | None = None
    token_file: str | None = None
    env_file: str | None = None
    profile: str | None = None
    region: Region | None = None
    base_url: str | None = None
    api_version: str | None = None
    # None: the command does not offer the option; Settings applies its default.
    timeout: float | None = None
    retries: int | None = None
    json_output: bool = False
    quiet: bool = False
    verbose: bool = False
    no_color: bool = False
    debug: bool = False
    offered: frozenset[str] = frozenset()  # the options the command declares
    given: frozenset[str] = frozenset()  # those given on the command line
    _loaded: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def output(self, **changes: Any) -> Output:
        """The run's output: ``--json``, ``-q``, ``-v`` (implied by ``--debug`` where the
        command offers ``-v``), ``--no-color``; ``changes`` override (``json_mode=True``)."""
        verbose = self.verbose or (self.debug and "verbose" in self.offered)
        chosen: dict[str, Any] = {
            "json_mode": self.json_output,
            "quiet": self.quiet,
            "verbose": verbose,
            "no_color": self.no_color,
        }
        return Output(**{**chosen, **changes})

    def environment(self) -> Variables:
        """The run's variables over the profile over ``.env``, read once (see
        ``config.load_environment``); the variables are the current environment's."""
        if "environment" not in self._loaded:
            self._loaded["environment"] = load_environment(
                self.env_file, current().environ, profile=self.profile
            )
        environment: Variables = self._loaded["environment"]
        return environment

    def settings(self, *, require_token: bool = True) -> Settings:
        """The settings: flag > variable > profile > ``.env`` > default (``Settings.load``)."""
        return Settings.load(
            env=self.environment(),
            token_file=self.token_file,
            region=self.region,
            base_url=self.base_url,
            api_version=self.api_version,
            timeout=self.timeout,
            retries=self.retries,
            require_token=require_token,
        )

    def outbox_location(self) -> OutboxLocation:
        """Where the outbox is: ``--outbox`` > IEVENTS_OUTBOX > the XDG state folder."""
        from ..outbox.store import resolve_location

        return resolve_location(self.outbox, self.environment())

    def for_profile(self, profile: str | None) -> Options:
        """These options with another profile (its own variables and settings)."""
        return replace(self, profile=profile, _loaded={})


_FIELDS = {item.name for item in fields(Options)} & set(DECLARATIONS)
_CONTEXT = "_options_context"
F = TypeVar("F", bound=Callable[..., Any])


def _declaration(name: str, override: Any) -> Any:
    annotation, _ = DECLARATIONS[name]
    if override is None:
        return annotation
    return Annotated[get_args(annotation)[0], override]


def shared(*names: str, **overrides: Any) -> Callable[[F], F]:
    """Give a command the shared options ``names`` (in this order), as one ``opts``.

    The function declares ``opts: Options`` and its own parameters; a name of one of its
    own parameters in ``names`` places that parameter there. ``overrides`` (name ->
    ``typer.Option(...)``) replace a shared option's declaration, keeping its type.
    """
    unknown = set(overrides) - set(names)
    if unknown:
        raise TypeError(f"overrides of options not named: {sorted(unknown)}")

    def decorate(function: F) -> F:
        own = dict(inspect.signature(function, eval_str=True).parameters)
        if own.pop("opts", None) is None:
            raise TypeError(f"{function.__name__} takes no opts: Options")
        if set(overrides) & set(own):
            raise TypeError(f"{function.__name__} declares {sorted(set(overrides) & set(own))}")
        offered = frozenset(name for name in names if name in _FIELDS and name not in own)
        placed: dict[str, inspect.Parameter] = {}
        for name in names:
            if name in own:
                placed[name] = own.pop(name)
            elif name in _FIELDS:
                placed[name] = inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=_declaration(name, overrides.get(name)),
                    default=DECLARATIONS[name][1],
                )
            else:
                raise TypeError(f"{function.__name__}: no shared option or parameter {name!r}")
        context = inspect.Parameter(
            _CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context
        )
        parameters = [
            item.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for item in [*own.values(), *placed.values(), context]
        ]

        @functools.wraps(function)
        def command(**kwargs: Any) -> Any:
            ctx = kwargs.pop(_CONTEXT)
            values = {name: kwargs.pop(name) for name in names if name in offered}
            given = frozenset(name for name in offered if _from_command_line(ctx, name))
            opts = Options(**values, offered=offered, given=given)
            return function(**kwargs, opts=opts)

        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {item.name: item.annotation for item in parameters}
        return command  # type: ignore[return-value]

    return decorate


def _from_command_line(ctx: Any, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


@frozen
class Identity:
    """The contact named on the command line (None where an identifier is not given)."""

    user_id: str | None = None  # --user-id
    email: str | None = None  # --email
    contact_id: str | None = None  # --id


_IDENTITY = "identity"


def _identity_declarations(panel: str, id_help: str) -> dict[str, Any]:
    """name -> annotation of ``--user-id``, ``--email`` and ``--id``, in --help order."""

    def option(flag: str, metavar: str, help: str) -> Any:
        return Annotated[
            str | None, typer.Option(flag, metavar=metavar, help=help, rich_help_panel=panel)
        ]

    return {
        "user_id": option("--user-id", "ID", "Your user id for the contact."),
        "email": option("--email", "EMAIL", "The contact's e-mail address."),
        "contact_id": option("--id", "CONTACT_ID", id_help),
    }


def identity_options(*, panel: str, id_help: str) -> Callable[[F], F]:
    """Give a command ``--user-id``, ``--email`` and ``--id``, as one ``identity``.

    The function declares ``identity: Identity`` and its own parameters; the three options
    come first among its options (after its arguments), in the --help panel ``panel``;
    ``id_help`` says what ``--id`` is for in this command. Whether one identifier or
    exactly one must be given is the command's rule. Goes under :func:`shared`.
    """
    declared = _identity_declarations(panel, id_help)

    def decorate(function: F) -> F:
        own = dict(inspect.signature(function, eval_str=True).parameters)
        if own.pop(_IDENTITY, None) is None:
            raise TypeError(f"{function.__name__} takes no identity: Identity")
        if set(declared) & set(own):
            raise TypeError(f"{function.__name__} declares {sorted(set(declared) & set(own))}")
        arguments = list(own.values())
        # The arguments come first (no default, not keyword-only): the options go after.
        split = next(
            (
                index
                for index, item in enumerate(arguments)
                if item.default is not inspect.Parameter.empty
                or item.kind is inspect.Parameter.KEYWORD_ONLY
            ),
            len(arguments),
        )
        added = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=None
            )
            for name, annotation in declared.items()
        ]
        parameters = [
            item.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for item in [*arguments[:split], *added, *arguments[split:]]
        ]

        @functools.wraps(function)
        def command(**kwargs: Any) -> Any:
            identity = Identity(**{name: kwargs.pop(name) for name in declared})
            return function(**kwargs, identity=identity)

        command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        command.__annotations__ = {item.name: item.annotation for item in parameters}
        return command  # type: ignore[return-value]

    return decorate
