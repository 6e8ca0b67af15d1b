"""The CLI run in-process is the CLI run as a process, and the environment object works.

Most CLI tests use ``run_cli`` (in-process, see ``conftest.run_in_process``). Here the same
invocations also run as real ``python -m intercom_events_cli`` processes and must give the
same exit code, stdout and stderr, byte for byte (paths aside); and the in-process runner
must leave nothing behind. The environment object (``cli/environment.py``) is exercised
directly: a terminal, NO_COLOR and the clock come from it, not from the process.
"""

from __future__ import annotations

import difflib
import io
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from conftest import TOKEN, CliResult, RunCli, make_runner
from fake_intercom import FakeIntercom

from intercom_events_cli.cli import main
from intercom_events_cli.cli.environment import Environment, activated, current

CREATED = ("--created-at", "2024-01-01T00:00:00Z")
FAST = ("--retries", "0", "--timeout", "5")

# (arguments, standard input, extra variables): one of each exit code and output path.
INVOCATIONS: list[tuple[tuple[str, ...], str | None, dict[str, str | None]]] = [
    (("--version",), None, {}),
    ((), None, {"COLUMNS": "100"}),  # the help, exit 2
    (("--help",), None, {"COLUMNS": "100"}),
    (("send", "--help"), None, {"COLUMNS": "120"}),
    (("send", "e"), None, {}),  # no identity: usage, 2
    (("send", "e", "--user-id", "1", "--retries", "x"), None, {}),
    (("sned", "e"), None, {}),
    (("send", "e", "--user-id", "1", "--json", "--retries", "1", "--token"), None, {}),
    (("send", "paid", "--user-id", "1", *CREATED, *FAST), None, {}),
    (("send", "paid", "--user-id", "1", "--json", *CREATED, *FAST), None, {}),
    (("send", "paid", "--user-id", "404", *CREATED, *FAST), None, {}),  # 67
    (("send", "paid", "--user-id", "1", "-m", "a.b=ü", *FAST), None, {}),  # 65
    (
        ("send", "paid", "--user-id", "1", *CREATED, *FAST),
        None,
        {"INTERCOM_ACCESS_TOKEN": "tok_wrong_1234"},
    ),
    (("send", "paid", "--user-id", "1", "--json", *CREATED), None, {"INTERCOM_ACCESS_TOKEN": None}),
    (("send", "café-日本", "--user-id", "1", *CREATED, *FAST), None, {"PYTHONIOENCODING": "ascii"}),
    (("send", "queued", "--user-id", "2", "--queue", *CREATED), None, {}),
    (("outbox", "list"), None, {}),
    (("outbox", "purge", "--pending"), None, {}),  # no terminal: refused, 2
    (("batch", "-", "--dry-run"), '{"event_name": "a", "user_id": "1"}\n{"event_name": ""}\n', {}),
    (("batch", "-", "--json", *FAST), '{"event_name": "b", "user_id": "3", "created_at": 1}\n', {}),
    (("check", "--json"), None, {}),
    (("list", "--user-id", "1", "--json"), None, {}),
    (("config", "--env-file", "missing.env"), None, {}),  # 78
]


def _normalise(result: CliResult, base: Path, url: str) -> tuple[int, str, str]:
    def text(output: str) -> str:
        output = output.replace(str(base), "<tmp>").replace(url, "<fake>")
        # Timings and capture times differ run to run (given times are all in 2024).
        output = re.sub(r"\b20(2[5-9]|[3-9]\d)-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<now>", output)
        output = re.sub(r'("elapsed_s"|"events_per_s"): [\d.]+', r"\1: N", output)
        output = re.sub(r"\b[\d.]+ (ms|s|events/s|records/s)\b", r"N \1", output)
        # A run under 0.1 s shows no rate: the same line as a timed one, for comparing.
        return re.sub(r"\((under N s|N s, N (events|records)/s)\)", "(<time>)", output)

    return result.code, text(result.stdout), text(result.stderr)


def test_in_process_runs_match_real_processes(tmp_path: Path) -> None:
    """Each invocation, in sequence against its own fake server and outbox, both ways."""
    outcomes = []
    for process in (False, True):
        base = tmp_path / ("process" if process else "in-process")
        base.mkdir()
        with FakeIntercom(expected_token=TOKEN) as fake:
            fake.unknown_contacts.add("404")
            run = make_runner(base, fake.url, process=process)
            outcomes.append(
                [
                    _normalise(run(*args, input=stdin, env=env), base, fake.url)
                    for args, stdin, env in INVOCATIONS
                ]
            )
            posted = sorted(
                event["event_name"] for event in fake.events_posted()
            )  # batch: any order
        outcomes[-1].append((0, repr(posted), ""))
    in_process, real = outcomes
    for invocation, ours, theirs in zip(INVOCATIONS, in_process, real, strict=False):
        if ours != theirs:  # the lines that differ, not pytest's cut-off repr
            diff = difflib.unified_diff(
                "\n".join(map(str, theirs)).splitlines(),
                "\n".join(map(str, ours)).splitlines(),
                "real process",
                "in process",
                lineterm="",
            )
            raise AssertionError(f"{invocation}:\n" + "\n".join(diff))
    assert in_process[-1] == real[-1] and "paid" in in_process[-1][1]
    codes = {code for code, _, _ in real}
    assert {0, 2, 65, 67, 77, 78} <= codes  # the invocations do reach each exit path


def test_a_run_leaves_the_process_as_it_found_it(run_cli: RunCli, tmp_path: Path) -> None:
    from intercom_events_cli.config import redaction

    before_env, before_cwd = dict(os.environ), os.getcwd()
    before_streams = (sys.stdin, sys.stdout, sys.stderr)
    before_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    result = run_cli("send", "e", "--user-id", "1", "--queue", env={"EXTRA_VARIABLE": "1"})
    assert result.code == 0, result
    assert dict(os.environ) == before_env
    assert os.getcwd() == before_cwd
    assert (sys.stdin, sys.stdout, sys.stderr) == before_streams
    assert {sig: signal.getsignal(sig) for sig in before_handlers} == before_handlers
    assert not redaction._secrets, "a registered secret would hide a later run's leak"
    assert current().process_streams  # no run's environment is left current


def test_the_run_sees_the_tests_variables_and_working_directory(
    run_cli: RunCli, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "local.env").write_text("INTERCOM_REGION=eu\n")
    result = run_cli("config", "--env-file", "local.env", "--json", cwd=elsewhere)
    assert result.code == 0, result
    assert result.json()["settings"]["region"]["value"] == "eu"
    assert "INTERCOM_REGION" not in os.environ


def test_an_exception_escaping_main_ends_the_run_as_the_interpreter_would(
    run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from intercom_events_cli.cli import runner as usage

    def escaped(*args: object) -> int:
        raise LookupError("escaped")

    monkeypatch.setattr(usage, "run", escaped)
    result = run_cli("--version")
    assert result.code == 1
    assert result.stderr.startswith("Traceback (most recent call last)")
    assert result.stderr.endswith("LookupError: escaped\n")


# -- the environment object ----------------------------------------------------------------------


def environment(
    *, stdin: str = "", tty: bool = False, environ: dict[str, str] | None = None, clock: float = 0
) -> Environment:
    return Environment(
        stdin=io.StringIO(stdin),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
        environ={"PATH": os.environ.get("PATH", ""), **(environ or {})},
        clock=(lambda: clock) if clock else __import__("time").time,
        stdin_isatty=tty,
        stdout_isatty=tty,
        stderr_isatty=tty,
    )


def test_from_process_is_the_processes_streams_and_variables() -> None:
    env = Environment.from_process()
    assert env.stdout is sys.stdout and env.stderr is sys.stderr and env.stdin is sys.stdin
    assert env.environ is os.environ
    assert env.process_streams
    assert TOKEN not in repr(
        Environment(
            stdin=None,
            stdout=io.StringIO(),
            stderr=io.StringIO(),
            environ={"INTERCOM_ACCESS_TOKEN": TOKEN},
        )
    )


def test_main_writes_to_the_environments_streams_and_returns_the_code() -> None:
    env = environment()
    assert main(["--version"], env) == 0
    assert env.stdout.getvalue().startswith("ievents ")  # type: ignore[attr-defined]
    assert main(["send", "e"], env) == 2
    assert "--user-id" in env.stderr.getvalue()  # type: ignore[attr-defined]


def test_colour_follows_the_environments_terminal_and_no_color(tmp_path: Path) -> None:
    variables = {"IEVENTS_OUTBOX": str(tmp_path / "o.sqlite3"), "TERM": "xterm"}
    on_a_terminal = environment(tty=True, environ=variables)
    assert main(["outbox", "purge", "--dead", "--older-than", "x"], on_a_terminal) == 2
    assert "\x1b[31m" in on_a_terminal.stderr.getvalue()  # type: ignore[attr-defined]
    no_color = environment(tty=True, environ={**variables, "NO_COLOR": "1"})
    assert main(["outbox", "purge", "--dead", "--older-than", "x"], no_color) == 2
    assert "\x1b[" not in no_color.stderr.getvalue()  # type: ignore[attr-defined]
    piped = environment(tty=False, environ=variables)
    assert main(["outbox", "purge", "--dead", "--older-than", "x"], piped) == 2
    assert "\x1b[" not in piped.stderr.getvalue()  # type: ignore[attr-defined]


def test_a_terminal_stdout_gets_the_table_and_the_clock_dates_it(tmp_path: Path) -> None:
    variables = {
        "IEVENTS_OUTBOX": str(tmp_path / "o.sqlite3"),
        "INTERCOM_ACCESS_TOKEN": TOKEN,
        "INTERCOM_BASE_URL": "http://127.0.0.1:9",
    }
    queued = environment(environ=variables)
    assert main(["send", "e", "--user-id", "7", "--queue"], queued) == 0
    later = __import__("time").time() + 7200
    table = environment(tty=True, environ={**variables, "COLUMNS": "120"}, clock=later)
    assert main(["outbox", "status"], table) == 0
    assert "2 h ago" in table.stdout.getvalue()  # type: ignore[attr-defined]


def test_activated_points_sys_streams_at_the_environment_and_back() -> None:
    env = environment()
    saved = (sys.stdin, sys.stdout, sys.stderr)
    with activated(env):
        assert current() is env
        assert sys.stdout is env.stdout and sys.stdin is env.stdin
        print("through sys.stdout")
    assert (sys.stdin, sys.stdout, sys.stderr) == saved
    assert env.stdout.getvalue() == "through sys.stdout\n"  # type: ignore[attr-defined]


def test_commands_read_the_world_only_through_the_environment() -> None:
    """No module of cli/ but environment.py reads sys' streams, os.environ, isatty or the clock.

    Whatever reads them directly escapes both a test's environment and ``run_cli``.
    """
    import ast

    import intercom_events_cli.cli as cli_package

    direct = {("sys", "stdin"), ("sys", "stdout"), ("sys", "stderr"), ("os", "environ")}
    direct |= {("os", "getenv"), ("time", "time"), ("os", "getcwd")}
    found = []
    for path in sorted(Path(cli_package.__file__).parent.glob("*.py")):
        if path.name == "environment.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if (node.value.id, node.attr) in direct:
                    found.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
            if isinstance(node, ast.Attribute) and node.attr == "isatty":
                found.append(f"{path.name}:{node.lineno} .isatty")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                found.append(f"{path.name}:{node.lineno} print()")
    assert found == [], "read through cli.environment.current() instead: " + ", ".join(found)


def test_a_run_past_its_timeout_raises_as_the_process_runner_does(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    import subprocess

    from fake_intercom import Reply

    fake.script(Reply(delay=60))  # the fake's stop ends it
    with pytest.raises(subprocess.TimeoutExpired):
        run_cli("send", "e", "--user-id", "1", "--retries", "0", timeout=0.5)
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL
    assert run_cli("--version").code == 0  # the next run is not disturbed
