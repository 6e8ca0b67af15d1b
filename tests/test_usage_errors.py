"""Usage errors from the option parser come out in ievents' one error style.

One line ``ievents: error: ...`` plus a hint, no rich box, no colour off a terminal;
with ``--json`` also exactly one JSON object on stdout.
"""

from __future__ import annotations

import json

import pytest
from conftest import RunCli

BOX = set("╭╮╰╯│─")


def assert_one_style(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    assert lines[0].startswith("ievents: error: "), stderr
    assert lines[1].startswith("  hint: "), stderr
    assert len(lines) == 2, stderr
    assert not BOX & set(stderr) and "\x1b[" not in stderr, stderr
    return lines


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("send", "x", "--user-id", "1", "--timeout", "0"), "--timeout"),
        (("send", "x", "--user-id", "1", "--retries", "101"), "--retries"),
        (("batch", "--concurrency", "0", "f.ndjson"), "--concurrency"),
        (("check", "--bogus"), "--bogus"),
        (("list", "--user-id", "1", "--bogus"), "--bogus"),
        (("outbox", "status", "--bogus"), "--bogus"),
        (("nosuch",), "nosuch"),
        (("send", "x", "--user-id", "1", "--region", "mars"), "'us', 'eu', 'au'"),
        (("batch", "--format", "xml", "f.ndjson"), "'ndjson', 'csv'"),
    ],
)
def test_parser_errors_are_one_line_and_one_json_object(
    run_cli: RunCli, args: tuple[str, ...], needle: str
) -> None:
    plain = run_cli(*args)
    assert plain.code == 2, plain
    assert plain.stdout == ""
    assert needle in assert_one_style(plain.stderr)[0]

    with_json = run_cli(*args, "--json")
    assert with_json.code == 2, with_json
    assert len(with_json.stdout.splitlines()) == 1, with_json
    obj = json.loads(with_json.stdout)
    assert obj["ok"] is False and obj["exit_code"] == 2
    assert obj["error"]["code"] == "usage_error" and needle in obj["error"]["message"]


def test_unquoted_json_metadata_gets_the_quoting_hint(run_cli: RunCli) -> None:
    # What the shell makes of: -m price:={"amount": 2999, "currency": "usd"}
    result = run_cli(
        "send", "x", "--user-id", "1", "-m", 'price:={"amount":', "2999,", "currency:", "usd}"
    )
    assert result.code == 2
    hint = assert_one_style(result.stderr)[1]
    assert "quote the whole option" in hint and "-m 'price:={" in hint


def test_options_before_the_command_say_where_they_go(run_cli: RunCli) -> None:
    result = run_cli("-v", "send", "x", "--user-id", "1")
    assert result.code == 2
    assert (
        "options go after the command name: ievents send -v" in assert_one_style(result.stderr)[1]
    )


def test_token_flag_says_the_token_is_never_a_flag(run_cli: RunCli) -> None:
    result = run_cli("check", "--token", "abc")
    assert result.code == 2
    hint = assert_one_style(result.stderr)[1]
    assert "never a flag" in hint and "--token-file" in hint


def test_unknown_option_suggests_the_close_one(run_cli: RunCli) -> None:
    result = run_cli("send", "x", "--user-id", "1", "--dry-rn")
    assert "did you mean --dry-run?" in assert_one_style(result.stderr)[1]


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("batch", "--format"), "ievents batch"),
        (("outbox", "list", "--limit"), "ievents outbox list"),
        (("send", "x", "--user-id"), "ievents send"),
    ],
)
def test_an_option_without_its_value_points_at_its_commands_help(
    run_cli: RunCli, args: tuple[str, ...], command: str
) -> None:
    result = run_cli(*args)
    assert result.code == 2
    message, hint = assert_one_style(result.stderr)
    assert "requires an argument" in message
    assert hint == f"  hint: see '{command} --help'"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("send", "x", "--user-id", "1", "--retries", "x"),
            "'--retries': 'x' is not a whole number",
        ),
        (("flush", "-c", "1.5"), "'1.5' is not a whole number"),
        (("flush", "--max-time", "soon"), "'--max-time': 'soon' is not a number"),
        (("send", "x", "--user-id", "1", "--timeout", "x"), "'--timeout': 'x' is not a number"),
    ],
)
def test_a_value_that_is_not_a_number_is_said_so(
    run_cli: RunCli, args: tuple[str, ...], message: str
) -> None:
    result = run_cli(*args)
    assert result.code == 2
    line = assert_one_style(result.stderr)[0]
    assert message in line and "range" not in line, line


def test_help_keeps_its_rich_layout(run_cli: RunCli) -> None:
    result = run_cli("send", "--help")
    assert result.code == 0 and "Usage: ievents send" in result.stdout
