"""The shared options, declared once (cli/options.py): the object a command gets, the
decorator that declares them, and that every command declares them alike."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
import typer.main
from conftest import RunCli

from intercom_events_cli.cli import command
from intercom_events_cli.cli.commands import COMMANDS, Group
from intercom_events_cli.cli.options import (
    DECLARATIONS,
    OUTPUTS,
    SETTINGS,
    Identity,
    Options,
    identity_options,
    shared,
)

CLI = Path(__file__).resolve().parents[1] / "intercom_events_cli" / "cli"


def run(function: Any, *args: str) -> list[Any]:
    """Build ``function`` as typer would and run it on ``args``; what it was called with."""
    calls: list[Any] = []
    app = typer.Typer(add_completion=False)
    app.command()(function)
    built = typer.main.get_command(app)
    calls.append(built)
    built(args=list(args), prog_name="probe", standalone_mode=False)
    return calls


def option_order(built: Any) -> list[str]:
    return [param.opts[0] for param in built.params]


def test_options_reach_the_command_as_one_object_in_the_order_named() -> None:
    seen: list[Options] = []

    @shared("outbox", *SETTINGS, *OUTPUTS)
    def probe(name: Annotated[str, typer.Argument()], *, opts: Options) -> None:
        seen.append(opts)

    built, *_ = run(probe, "x", "--profile", "eu", "--timeout", "2.5", "-q", "--region", "EU")
    assert " ".join(option_order(built)) == (
        "name --outbox --token-file --env-file --profile --region --base-url --api-version "
        "--timeout --retries --json --quiet --verbose --no-color --debug"
    )
    [opts] = seen
    assert (opts.profile, opts.timeout, opts.retries, opts.quiet) == ("eu", 2.5, 4, True)
    assert opts.region is not None and opts.region.value == "eu"
    assert opts.given == {"profile", "timeout", "quiet", "region"}
    assert opts.offered == {*SETTINGS, *OUTPUTS, "outbox"}


def test_an_own_parameter_named_in_the_list_takes_that_place() -> None:
    @shared("json_output", "fmt", "quiet")
    def probe(
        fmt: Annotated[str, typer.Option("--format")] = "text",
        first: Annotated[bool, typer.Option("--first")] = False,
        *,
        opts: Options,
    ) -> None:
        pass

    built, *_ = run(probe)
    assert option_order(built) == ["--first", "--json", "--format", "--quiet"]


def test_an_override_changes_the_declaration_and_keeps_the_value_in_opts() -> None:
    seen: list[Options] = []

    @shared(*OUTPUTS, verbose=typer.Option("--verbose", "-v", help="Progress lines."))
    def probe(*, opts: Options) -> None:
        seen.append(opts)

    built, *_ = run(probe, "-v")
    [verbose] = [param for param in built.params if param.name == "verbose"]
    assert verbose.help == "Progress lines."
    assert seen[0].verbose is True and seen[0].output().verbose


def test_a_shared_name_the_command_declares_itself_is_its_own() -> None:
    """How flush can take a repeatable --profile (a list) where the rest take one."""
    seen: list[tuple[list[str] | None, Options]] = []

    @shared("env_file", "profile", "debug")
    def probe(
        profile: Annotated[list[str] | None, typer.Option("--profile")] = None,
        every: Annotated[bool, typer.Option("--all-profiles")] = False,
        *,
        opts: Options,
    ) -> None:
        seen.append((profile, opts))

    built, *_ = run(probe, "--profile", "a", "--profile", "b", "--debug")
    assert option_order(built) == ["--all-profiles", "--env-file", "--profile", "--debug"]
    [(profiles, opts)] = seen
    assert profiles == ["a", "b"] and opts.profile is None and "profile" not in opts.offered
    assert [opts.for_profile(name).profile for name in profiles] == ["a", "b"]
    assert opts.for_profile("a").debug is True


def test_debug_implies_verbose_only_where_the_command_offers_verbose() -> None:
    assert Options(debug=True, offered=frozenset({"verbose", "debug"})).output().verbose
    assert not Options(debug=True, offered=frozenset({"debug"})).output().verbose
    assert Options(json_output=True).output(json_mode=False).json_mode is False


def test_a_name_that_is_neither_shared_nor_the_commands_is_refused() -> None:
    with pytest.raises(TypeError, match="colour"):

        @shared("colour")
        def probe(*, opts: Options) -> None:
            pass

    with pytest.raises(TypeError, match="opts"):

        @shared("debug")
        def no_opts() -> None:
            pass


def test_the_environment_is_read_once_per_options(tmp_path: Path) -> None:
    import io

    from intercom_events_cli.cli.environment import Environment, activated

    env_file = tmp_path / "a.env"
    env_file.write_text("INTERCOM_REGION=eu\n")
    opts = Options(env_file=str(env_file))
    streams = {name: io.StringIO() for name in ("stdin", "stdout", "stderr")}
    with activated(Environment(**streams, environ={"HOME": str(tmp_path)})):
        first = opts.environment()
        env_file.write_text("INTERCOM_REGION=au\n")
        assert opts.environment() is first
        assert opts.settings(require_token=False).region == "eu"
        assert opts.for_profile(None).settings(require_token=False).region == "au"


def test_settings_load_is_called_in_one_place_in_the_cli() -> None:
    calls = {
        path.name: len(re.findall(r"\bSettings\.load\(", path.read_text(encoding="utf-8")))
        for path in CLI.glob("*.py")
    }
    assert {name: count for name, count in calls.items() if count} == {"options.py": 1}


def every_command() -> list[tuple[str, Any]]:
    root = command()
    found = []
    for name, entry in COMMANDS.items():
        built = root.get_command(None, name)
        if isinstance(entry, Group):
            found += [(f"{name} {sub}", built.get_command(None, sub)) for sub in entry.commands]
        else:
            found.append((name, built))
    return found


# A command whose option says something of its own about it (what -q prints for it).
OWN_HELP = {
    ("batch", "verbose"),
    ("list", "json_output"),
    ("list", "quiet"),
    ("outbox status", "quiet"),
    ("outbox list", "json_output"),
    ("outbox list", "quiet"),
    ("outbox export", "quiet"),
}


@pytest.mark.parametrize("path, built", every_command(), ids=lambda value: str(value))
def test_every_command_declares_a_shared_option_as_declared_once(path: str, built: Any) -> None:
    reference = typer.main.get_command(_all_options_app())
    declared = {param.name: param for param in reference.params}
    for param in built.params:
        if param.name not in DECLARATIONS or param.multiple:
            continue  # a command's own list under a shared name (a repeatable --profile)
        same = declared[param.name]
        assert (param.opts, param.default, param.type.name) == (
            same.opts,
            same.default,
            same.type.name,
        ), (path, param.name)
        if (path, param.name) not in OWN_HELP:
            assert param.help == same.help, (path, param.name)


def test_the_contact_reaches_the_command_as_one_identity_after_its_arguments() -> None:
    seen: list[tuple[str, Identity, Options]] = []

    @shared("quiet")
    @identity_options(panel="Who", id_help="The id.")
    def probe(
        name: Annotated[str, typer.Argument()],
        when: Annotated[str | None, typer.Option("--when")] = None,
        *,
        identity: Identity,
        opts: Options,
    ) -> None:
        seen.append((name, identity, opts))

    built, *_ = run(probe, "x", "--email", "ada@example.com", "--id", "c1", "-q")
    assert option_order(built) == ["name", "--user-id", "--email", "--id", "--when", "--quiet"]
    contact = {param.name: param for param in built.params if param.name in vars(Identity())}
    assert [(param.metavar, param.rich_help_panel) for param in contact.values()] == [
        ("ID", "Who"),
        ("EMAIL", "Who"),
        ("CONTACT_ID", "Who"),
    ]
    assert contact["contact_id"].help == "The id."
    [(name, identity, opts)] = seen
    assert name == "x" and opts.quiet is True
    assert identity == Identity(user_id=None, email="ada@example.com", contact_id="c1")


def test_a_command_without_identity_or_with_its_own_user_id_is_refused() -> None:
    with pytest.raises(TypeError, match="identity"):

        @identity_options(panel="Who", id_help="The id.")
        def no_identity() -> None:
            pass

    with pytest.raises(TypeError, match="user_id"):

        @identity_options(panel="Who", id_help="The id.")
        def own_user_id(
            user_id: Annotated[str | None, typer.Option("--uid")] = None, *, identity: Identity
        ) -> None:
            pass


def test_send_and_list_declare_the_contact_alike_but_for_panel_and_id_help() -> None:
    """One declaration (identity_options): only what it takes as parameters differs."""
    root = command()
    declared = {}
    for name in ("send", "list"):
        params = root.get_command(None, name).params
        declared[name] = [
            (param.opts, param.metavar, param.default, param.type.name, param.help)
            for param in params
            if param.name in ("user_id", "email")
        ]
        [contact_id] = [param for param in params if param.name == "contact_id"]
        assert contact_id.opts == ["--id"] and contact_id.metavar == "CONTACT_ID"
    assert declared["send"] == declared["list"] and len(declared["send"]) == 2


def _all_options_app() -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.command()
    @shared(*DECLARATIONS)
    def every(*, opts: Options) -> None:
        pass

    return app


def test_config_says_a_flag_given_at_its_default_value_is_from_the_flag(run_cli: RunCli) -> None:
    result = run_cli("config", "--json", "--timeout", "10", "--retries", "4")
    assert result.code == 0, result
    settings = result.json()["settings"]
    assert settings["timeout"] == {"value": 10.0, "source": "--timeout"}
    assert settings["retries"] == {"value": 4, "source": "--retries"}
    default = run_cli("config", "--json").json()["settings"]
    assert default["timeout"]["source"] == default["retries"]["source"] == "default"
