"""``ievents send`` end to end: the real CLI in a subprocess against the fake Intercom.

One test per exit code, the --json and --dry-run shapes, quiet and verbose output, colour
rules, hints, configuration sources, and the token never reaching any output (the
``run_cli`` fixture checks every run; some tests below check harder cases on top).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TOKEN, CliResult, RunCli, StartCli, assert_no_token, base_env
from fake_intercom import FakeIntercom, Reply, api_error
from helpers import run_on_terminal, wait_for

from intercom_events_cli import __version__

# Fast failure paths: no more than one retry, short timeouts.
FAST = ("--retries", "0", "--timeout", "2")
ONE_RETRY = ("--retries", "1", "--timeout", "2")
JAN_1_2024 = 1_704_067_200
JSON_KEYS = {
    "ok",
    "exit_code",
    "delivered",
    "queued",
    "status",
    "attempts",
    "request_id",
    "event",
    "error",
}
ANSI = "\x1b["


def send(run_cli: RunCli, *args: str, **kwargs: Any) -> CliResult:
    """``ievents send invited-friend --user-id 314159 ARGS`` (created_at fixed)."""
    return run_cli(
        "send",
        "invited-friend",
        "--user-id",
        "314159",
        "--created-at",
        "2024-01-01T00:00:00Z",
        *args,
        **kwargs,
    )


def expected_payload(**extra: Any) -> dict[str, Any]:
    return {"event_name": "invited-friend", "created_at": JAN_1_2024, "user_id": "314159", **extra}


def assert_identical_bodies(fake: FakeIntercom, count: int) -> None:
    posts = fake.posts()
    assert len(posts) == count
    assert len({post.body for post in posts}) == 1, "every attempt must send the same body"


# -- exit 0 ------------------------------------------------------------------------------------


def test_delivered_exits_0_with_one_line_on_stdout(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = send(run_cli, "-m", "plan=pro")

    assert result.code == 0, result
    assert fake.events_posted() == [expected_payload(metadata={"plan": "pro"})]
    assert result.stderr == ""
    (line,) = result.stdout.splitlines()
    assert re.fullmatch(
        r"delivered invited-friend for user_id 314159 at 2024-01-01T00:00:00Z "
        r"\(202 Accepted, 1 attempt, \d+ ms\)",
        line,
    ), line


def test_every_metadata_type_reaches_intercom(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = send(
        run_cli,
        "-m",
        "plan=pro",
        "-m",
        "seats:=3",
        "-m",
        "ratio:=0.5",
        "-m",
        'price:={"amount": 2999, "currency": "usd"}',
        "-m",
        'order:={"url": "https://example.org/o/1", "value": "1"}',
        "-m",
        "signup_date=2024-01-01T00:00:00Z",
        "-m",
        "article=https://example.org/a/1",
    )

    assert result.code == 0, result
    assert fake.events_posted()[0]["metadata"] == {
        "plan": "pro",
        "seats": 3,
        "ratio": 0.5,
        "price": {"amount": 2999, "currency": "usd"},
        "order": {"url": "https://example.org/o/1", "value": "1"},
        "signup_date": JAN_1_2024,
        "article": "https://example.org/a/1",
    }


def test_metadata_json_file_is_merged_and_m_wins(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    path = tmp_path / "meta.json"
    path.write_text('{"plan": "basic", "seats": 2}')

    result = send(run_cli, "--metadata-json", f"@{path}", "-m", "plan=pro")

    assert result.code == 0, result
    assert fake.events_posted()[0]["metadata"] == {"plan": "pro", "seats": 2}


def test_identities_are_sent_as_given(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = run_cli(
        "send", "e", "--user-id", "7", "--email", "ada@example.org", "--id", "5f00", *FAST
    )

    assert result.code == 0, result
    (posted,) = fake.events_posted()
    assert (posted["user_id"], posted["email"], posted["id"]) == ("7", "ada@example.org", "5f00")
    assert "for user_id 7, email ada@example.org, id 5f00" in result.stdout


def test_created_at_defaults_to_now_in_whole_seconds(run_cli: RunCli, fake: FakeIntercom) -> None:
    before = int(time.time())
    result = run_cli("send", "e", "--email", "ada@example.org")
    after = int(time.time())

    assert result.code == 0, result
    created_at = fake.events_posted()[0]["created_at"]
    assert isinstance(created_at, int)
    assert before <= created_at <= after


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("1704067200", JAN_1_2024),
        ("1704067200000", JAN_1_2024),
        ("2024-01-01T00:00:00Z", JAN_1_2024),
        ("2024-01-01T02:00:00+02:00", JAN_1_2024),
        ("2024-01-01T02:00:00+0200", JAN_1_2024),
        ("2024-01-01T00:00:00", JAN_1_2024),
    ],
)
def test_created_at_forms(run_cli: RunCli, when: str, expected: int) -> None:
    result = run_cli("send", "e", "--user-id", "1", "--created-at", when, "--dry-run", "--json")
    assert result.code == 0, result
    assert result.json()["event"]["created_at"] == expected


def test_created_at_now(run_cli: RunCli) -> None:
    before = int(time.time())
    result = run_cli("send", "e", "--user-id", "1", "--created-at", "now", "--dry-run", "--json")
    assert result.code == 0, result
    assert before <= result.json()["event"]["created_at"] <= int(time.time())


# -- exit 1: internal errors -------------------------------------------------------------------


def run_with_broken_client(
    monkeypatch: pytest.MonkeyPatch, run_cli: RunCli, *args: str
) -> CliResult:
    """Run the real entry point with EventsClient.send replaced by one that raises.

    The fault is injected by this test (ievents has no hook for it): a bug that raises an
    unexpected exception, with the token in its message, the way a careless bug would.
    In-process: ``run_cli`` ends the run as the interpreter would if it escaped ``main``.
    """
    from intercom_events_cli.http import client

    def broken(self: client.EventsClient, event: object) -> None:
        raise RuntimeError("bug while holding " + self.settings.token)

    monkeypatch.setattr(client.EventsClient, "send", broken)
    return run_cli(*args)


def test_internal_error_exits_1_with_one_line_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    result = run_with_broken_client(monkeypatch, run_cli, "send", "e", "--user-id", "1")

    assert result.code == 1, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "ievents: error: internal error: RuntimeError: bug while holding ***" in result.stderr
    assert "--debug" in result.stderr
    assert len(result.stderr.splitlines()) == 2  # the error and its hint


def test_internal_error_with_debug_shows_a_redacted_traceback(
    monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    result = run_with_broken_client(monkeypatch, run_cli, "send", "e", "--user-id", "1", "--debug")

    assert result.code == 1, result
    assert "Traceback (most recent call last)" in result.stderr
    assert "RuntimeError: bug while holding ***" in result.stderr
    assert "internal error" in result.stderr


def test_internal_error_with_json_still_exits_1(
    monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> None:
    result = run_with_broken_client(monkeypatch, run_cli, "send", "e", "--user-id", "1", "--json")
    assert result.code == 1, result
    assert "internal error" in result.stderr


def test_reporting_turns_an_unexpected_exception_into_exit_1() -> None:
    """The same, in process: the one place where errors become exit codes."""
    import io

    import typer

    from intercom_events_cli.cli.common import reporting
    from intercom_events_cli.cli.output import Output
    from intercom_events_cli.config.redaction import register_secret

    register_secret(TOKEN)
    for debug in (False, True):
        stdout, stderr = io.StringIO(), io.StringIO()
        ui = Output(stdout=stdout, stderr=stderr)
        with pytest.raises(typer.Exit) as caught, reporting(ui, debug):
            raise KeyError(f"token {TOKEN}")
        assert caught.value.exit_code == 1
        assert stdout.getvalue() == ""
        assert TOKEN not in stderr.getvalue()
        assert "internal error: KeyError" in stderr.getvalue()
        assert ("Traceback" in stderr.getvalue()) is debug


# -- exit 2: usage -----------------------------------------------------------------------------


def test_no_identity_is_a_usage_error(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = run_cli("send", "invited-friend", *FAST)

    assert result.code == 2, result
    assert "--user-id, --email or --id" in result.stderr
    assert fake.requests == []


def test_unknown_option_is_a_usage_error(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = send(run_cli, "--frobnicate")
    assert result.code == 2, result
    assert "--frobnicate" in result.stderr
    assert fake.requests == []


def test_token_is_not_accepted_as_a_flag(run_cli: RunCli) -> None:
    result = send(run_cli, "--token", "tok_on_the_command_line", "--dry-run")
    assert result.code == 2, result


# -- exit 65: invalid data ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("-m", "plan"), "no '='"),
        (("-m", "a.b=1"), '"a.b"'),
        (("-m", "note=" + "x" * 256), '"note" is 256 characters'),
        (("-m", "seats:={bad"), '"seats"'),
        (("-m", "tags:=[1, 2]"), '"tags": arrays'),
        (("-m", "flag:=true"), '"flag"'),
        (("-m", 'price:={"amount": 29.99, "currency": "usd"}'), '"price"'),
        (("-m", 'link:={"url": "ftp://x", "value": "1"}'), '"link"'),
        (("-m", "when_date=soon"), '"when_date"'),
        (tuple(arg for i in range(11) for arg in ("-m", f"k{i}=v")), "11 keys"),
        (("--created-at", "yesterday"), "created_at"),
        (("--metadata-json", "[1]"), "--metadata-json"),
    ],
)
def test_invalid_data_exits_65_and_sends_nothing(
    run_cli: RunCli, fake: FakeIntercom, args: tuple[str, ...], named: str
) -> None:
    result = run_cli("send", "e", "--user-id", "1", *args, *FAST)

    assert result.code == 65, result
    assert named in result.stderr
    assert result.stderr.startswith("ievents: error:")
    assert fake.requests == []


@pytest.mark.parametrize("name", ["", "x" * 256, "line\nbreak"])
def test_invalid_event_name_exits_65(run_cli: RunCli, fake: FakeIntercom, name: str) -> None:
    result = run_cli("send", name, "--user-id", "1", *FAST)
    assert result.code == 65, result
    assert "event_name" in result.stderr
    assert fake.requests == []


def test_event_name_that_is_not_utf8_exits_65(run_cli: RunCli, fake: FakeIntercom) -> None:
    # The byte 0xff in argv (a Latin-1 script) reaches Python as the surrogate \udcff.
    result = run_cli("send", "caf\udcff", "--user-id", "1", *FAST)
    assert result.code == 65, result
    assert "not valid UTF-8" in result.stderr
    assert fake.requests == []


@pytest.mark.parametrize("status", [400, 422])
def test_api_rejection_exits_65_with_code_message_request_id_and_hint(
    run_cli: RunCli, fake: FakeIntercom, status: int
) -> None:
    fake.script(
        api_error(
            status,
            "parameter_invalid",
            "Cannot have more than 120 active event names",
            request_id="req-7f3a",
        )
    )

    result = send(run_cli, *ONE_RETRY)

    assert result.code == 65, result
    assert len(fake.posts()) == 1, "a 4xx is never retried"
    assert result.stdout == ""
    stderr = result.stderr
    assert f"{status} " in stderr
    assert "parameter_invalid" in stderr
    assert "Cannot have more than 120 active event names" in stderr
    assert "req-7f3a" in stderr
    assert "archive unused event names" in stderr


# -- exit 67: no such contact ------------------------------------------------------------------


def test_unknown_contact_exits_67_with_hint(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.unknown_contacts = {"314159"}

    result = send(run_cli, *ONE_RETRY)

    assert result.code == 67, result
    assert len(fake.posts()) == 1
    assert "404 Not Found" in result.stderr
    assert "not_found: User Not Found" in result.stderr
    assert "user_id 314159" in result.stderr
    assert "events do not create contacts" in result.stderr


# -- exit 75: temporary failures ---------------------------------------------------------------


def test_503_after_retries_exits_75(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script_repeat(api_error(503, "service_unavailable", "Try later", "req-503"), 2)

    result = send(run_cli, *ONE_RETRY)

    assert result.code == 75, result
    assert_identical_bodies(fake, 2)
    assert "503 Service Unavailable" in result.stderr
    assert "service_unavailable: Try later" in result.stderr
    assert "req-503" in result.stderr
    assert "gave up after 2 attempts (1 retry)" in result.stderr
    assert "try again in a few minutes" in result.stderr


def test_429_after_retries_exits_75_and_says_when_to_try_again(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    reset = str(int(time.time()) + 3600)
    fake.script(
        api_error(
            429,
            "rate_limit_exceeded",
            "Exceeded rate limit",
            headers={"X-RateLimit-Reset": reset, "X-RateLimit-Remaining": "0"},
        )
    )

    result = send(run_cli, *ONE_RETRY)

    assert result.code == 75, result
    # An hour's wait is not taken: it gives up at once and says when to come back.
    assert len(fake.posts()) == 1
    assert "429 Too Many Requests" in result.stderr
    assert "rate_limit_exceeded" in result.stderr
    assert "rate limit was reached" in result.stderr
    assert re.search(r"try again in 3[56]\d\d s", result.stderr), result.stderr


def test_dropped_connection_after_retries_exits_75(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script_repeat(Reply(drop=True), 2)

    result = send(run_cli, *ONE_RETRY, "--json")

    assert result.code == 75, result
    assert_identical_bodies(fake, 2)
    output = result.json()
    assert output["status"] is None
    assert output["attempts"] == 2
    assert output["error"]["code"] == "connection_error"
    assert "gave up after 2 attempts" in result.stderr


def test_timeout_exits_75(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(Reply(delay=1.5))

    result = send(run_cli, "--retries", "0", "--timeout", "0.2", "--json")

    assert result.code == 75, result
    output = result.json()
    host = fake.url.split("://", 1)[1]
    assert output["error"] == {
        "code": "timeout",
        "message": f"request to {host} timed out (0.2s)",
    }
    assert output["status"] is None
    assert "timed out (0.2s)" in result.stderr


def test_unreachable_server_exits_75(run_cli: RunCli, tmp_path: Path) -> None:
    with socket_that_refuses() as url:
        result = send(run_cli, *FAST, env={"INTERCOM_BASE_URL": url})
    assert result.code == 75, result
    assert "connection_error" in result.stderr


class socket_that_refuses:
    """A loopback URL with nothing listening (bound, then closed)."""

    def __enter__(self) -> str:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc_info: object) -> None:
        return None


def test_retry_then_success_sends_the_identical_body(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(Reply(status=503), Reply(drop=True))

    result = send(run_cli, "--retries", "2", "--timeout", "2", "-m", "plan=pro")

    assert result.code == 0, result
    assert_identical_bodies(fake, 3)
    assert fake.events_posted() == [expected_payload(metadata={"plan": "pro"})]
    assert "3 attempts" in result.stdout


def test_429_is_retried_after_the_rate_limit_reset(run_cli: RunCli, fake: FakeIntercom) -> None:
    reset = str(int(time.time()))  # this second: the wait is only the jitter
    fake.script(
        api_error(429, "rate_limit_exceeded", "slow down", headers={"X-RateLimit-Reset": reset})
    )

    result = send(run_cli, *ONE_RETRY)

    assert result.code == 0, result
    assert_identical_bodies(fake, 2)


def test_retry_after_is_honoured(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(Reply(status=503, headers={"Retry-After": "1"}))

    result = send(run_cli, *ONE_RETRY)

    assert result.code == 0, result
    first, second = fake.posts()
    # Without Retry-After the first backoff is at most 0.625 s.
    assert second.time - first.time >= 0.9


def test_retries_reuse_the_connection(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(Reply(status=503))
    result = send(run_cli, *ONE_RETRY)
    assert result.code == 0, result
    assert len({post.client_port for post in fake.posts()}) == 1


# -- exit 77: token rejected -------------------------------------------------------------------


def test_invalid_token_exits_77_with_hint(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = send(run_cli, *ONE_RETRY, env={"INTERCOM_ACCESS_TOKEN": "tok_wrong_one"})

    assert result.code == 77, result
    assert len(fake.posts()) == 1, "401 is never retried"
    stderr = result.stderr
    assert "401 Unauthorized" in stderr
    assert "unauthorized: Access Token Invalid" in stderr
    assert "INTERCOM_ACCESS_TOKEN" in stderr
    assert "write events" in stderr
    assert "--region eu" in stderr


def test_forbidden_exits_77(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(api_error(403, "token_unauthorized", "Not authorized to access resource"))
    result = send(run_cli, *ONE_RETRY)
    assert result.code == 77, result
    assert "403 Forbidden" in result.stderr
    assert "token_unauthorized" in result.stderr
    assert "--region" in result.stderr


# -- exit 78: configuration --------------------------------------------------------------------


def test_no_token_exits_78_naming_every_way_to_give_one(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    result = send(run_cli, env={"INTERCOM_ACCESS_TOKEN": None})

    assert result.code == 78, result
    for name in ("INTERCOM_ACCESS_TOKEN", "--token-file", "INTERCOM_ACCESS_TOKEN_FILE"):
        assert name in result.stderr
    assert fake.requests == []


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ((), {"INTERCOM_REGION": "uk"}, "INTERCOM_REGION"),
        (("--base-url", "http://api.intercom.io"), {}, "plain http"),
        ((), {"INTERCOM_BASE_URL": "http://10.1.2.3:8080"}, "INTERCOM_BASE_URL"),
        (("--base-url", "http://[::1"), {}, "not a valid URL"),
        (("--base-url", "http://127.0.0.1:99999"), {}, "not a valid URL"),
        (("--api-version", "2.14 beta"), {}, "API version"),
        ((), {"INTERCOM_ACCESS_TOKEN": "tök"}, "non-ASCII"),
        (("--env-file", "missing.env"), {}, "--env-file"),
    ],
)
def test_configuration_errors_exit_78(
    run_cli: RunCli,
    fake: FakeIntercom,
    args: tuple[str, ...],
    env: dict[str, str],
    named: str,
) -> None:
    result = send(run_cli, *args, *FAST, env={"INTERCOM_BASE_URL": None, **env})

    assert result.code == 78, result
    assert named in result.stderr
    assert fake.requests == []


def test_plain_http_on_loopback_is_allowed(run_cli: RunCli, fake: FakeIntercom) -> None:
    localhost = fake.url.replace("127.0.0.1", "localhost")
    result = send(run_cli, "--base-url", localhost, *FAST)
    assert result.code == 0, result


# -- exit 130: interrupted ---------------------------------------------------------------------


@pytest.mark.parametrize("extra", [(), ("--queue-on-failure", "--json")])
def test_ctrl_c_exits_130(fake: FakeIntercom, start_cli: StartCli, extra: tuple[str, ...]) -> None:
    fake.script(Reply(delay=120))  # no answer before the signal; the fake's stop ends it
    process = start_cli(
        "send",
        "e",
        "--user-id",
        "1",
        "--created-at",
        "1700000000",
        *extra,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(fake.posts, what="the request at the server")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert b"interrupted before Intercom answered" in stderr
    # How to re-send safely: the same created_at, which Intercom de-duplicates.
    assert b"--created-at 1700000000" in stderr
    if "--queue-on-failure" in extra:
        # Kept: it may not have arrived; flush re-sends it with the same created_at.
        assert b"kept in the outbox" in stderr
        body = json.loads(stdout)
        assert (body["ok"], body["queued"], body["error"]["code"]) == (False, True, "interrupted")
        assert body["outbox_id"] == 1
    assert_no_token(stdout.decode(), stderr.decode())


# -- configuration sources ---------------------------------------------------------------------


def dry_run_url(result: CliResult) -> str:
    assert result.code == 0, result
    return str(result.json()["url"])


def test_dotenv_beats_the_default(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "work" / ".env").write_text("INTERCOM_REGION=eu\n")
    result = send(run_cli, "--dry-run", "--json", env={"INTERCOM_BASE_URL": None})
    assert dry_run_url(result) == "https://api.eu.intercom.io/events"


def test_environment_beats_dotenv(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "work" / ".env").write_text("INTERCOM_REGION=eu\n")
    env = {"INTERCOM_BASE_URL": None, "INTERCOM_REGION": "au"}
    result = send(run_cli, "--dry-run", "--json", env=env)
    assert dry_run_url(result) == "https://api.au.intercom.io/events"


def test_flag_beats_environment(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "work" / ".env").write_text("INTERCOM_REGION=eu\n")
    env = {"INTERCOM_BASE_URL": None, "INTERCOM_REGION": "au"}
    result = send(run_cli, "--region", "us", "--dry-run", "--json", env=env)
    assert dry_run_url(result) == "https://api.intercom.io/events"


def test_env_file_is_read_instead_of_dotenv(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "work" / ".env").write_text("INTERCOM_REGION=eu\n")
    other = tmp_path / "prod.env"
    other.write_text("INTERCOM_REGION=au\n")
    result = send(
        run_cli, "--env-file", str(other), "--dry-run", "--json", env={"INTERCOM_BASE_URL": None}
    )
    assert dry_run_url(result) == "https://api.au.intercom.io/events"


def test_token_and_base_url_from_dotenv(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    (tmp_path / "work" / ".env").write_text(
        f"INTERCOM_ACCESS_TOKEN={TOKEN}\nINTERCOM_BASE_URL={fake.url}\n"
    )
    result = send(run_cli, *FAST, env={"INTERCOM_ACCESS_TOKEN": None, "INTERCOM_BASE_URL": None})
    assert result.code == 0, result
    assert fake.posts()[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_token_in_environment_beats_dotenv(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    (tmp_path / "work" / ".env").write_text("INTERCOM_ACCESS_TOKEN=tok_stale_from_dotenv\n")
    result = send(run_cli, *FAST)
    assert result.code == 0, result


def test_token_file_flag(run_cli: RunCli, fake: FakeIntercom, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}  \nignored second line\n")
    # The flag beats a (wrong) token in the environment.
    result = send(
        run_cli, "--token-file", str(path), *FAST, env={"INTERCOM_ACCESS_TOKEN": "tok_wrong"}
    )
    assert result.code == 0, result
    assert fake.posts()[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_token_file_from_environment(run_cli: RunCli, fake: FakeIntercom, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\n")
    env = {"INTERCOM_ACCESS_TOKEN": None, "INTERCOM_ACCESS_TOKEN_FILE": str(path)}
    result = send(run_cli, *FAST, env=env)
    assert result.code == 0, result
    assert fake.posts()[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_token_file_in_environment_beats_a_token_in_dotenv(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\n")
    (tmp_path / "work" / ".env").write_text("INTERCOM_ACCESS_TOKEN=tok_stale_from_dotenv\n")
    env = {"INTERCOM_ACCESS_TOKEN": None, "INTERCOM_ACCESS_TOKEN_FILE": str(path)}
    result = send(run_cli, *FAST, env=env)
    assert result.code == 0, result


@pytest.mark.parametrize("via", ["flag", "env"])
def test_missing_token_file_exits_78(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path, via: str
) -> None:
    missing = str(tmp_path / "no-such-token")
    if via == "flag":
        result = send(run_cli, "--token-file", missing, *FAST)
    else:
        env = {"INTERCOM_ACCESS_TOKEN": None, "INTERCOM_ACCESS_TOKEN_FILE": missing}
        result = send(run_cli, *FAST, env=env)
    assert result.code == 78, result
    assert "no-such-token" in result.stderr
    assert "does not exist" in result.stderr
    assert fake.requests == []


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ((), {}, "2.14"),
        (("--api-version", "2.11"), {}, "2.11"),
        ((), {"INTERCOM_API_VERSION": "Unstable"}, "Unstable"),
        (("--api-version", "2.13"), {"INTERCOM_API_VERSION": "Unstable"}, "2.13"),
    ],
)
def test_intercom_version_header(
    run_cli: RunCli,
    fake: FakeIntercom,
    args: tuple[str, ...],
    env: dict[str, str],
    expected: str,
) -> None:
    result = send(run_cli, *args, *FAST, env=env)
    assert result.code == 0, result
    assert fake.posts()[0].headers["intercom-version"] == expected


def test_request_headers(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = send(run_cli, *FAST)
    assert result.code == 0, result
    headers = fake.posts()[0].headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "application/json"
    assert headers["user-agent"].startswith(f"ievents/{__version__}")


# -- --json ------------------------------------------------------------------------------------


def test_json_on_success(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = send(run_cli, "--json", "-m", "seats:=3", *FAST)

    assert result.code == 0, result
    assert result.stderr == ""
    assert len(result.stdout.splitlines()) == 1
    assert result.json() == {
        "ok": True,
        "exit_code": 0,
        "delivered": True,
        "queued": False,
        "status": 202,
        "attempts": 1,
        "request_id": None,
        "event": expected_payload(metadata={"seats": 3}),
        "error": None,
    }


def test_json_on_api_failure(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(api_error(422, "parameter_invalid", "Cannot have more than 120 active event names"))

    result = send(run_cli, "--json", *FAST)

    assert result.code == 65, result
    assert result.json() == {
        "ok": False,
        "exit_code": 65,
        "delivered": False,
        "queued": False,
        "status": 422,
        "attempts": 1,
        "request_id": "req-123",
        "event": expected_payload(),
        "error": {
            "code": "parameter_invalid",
            "message": "Cannot have more than 120 active event names",
        },
    }


def test_json_after_retries(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script_repeat(api_error(503, "service_unavailable", "down", request_id="req-9"), 2)
    result = send(run_cli, "--json", *ONE_RETRY)
    assert result.code == 75, result
    output = result.json()
    assert set(output) == JSON_KEYS
    assert (output["ok"], output["status"], output["attempts"]) == (False, 503, 2)
    assert output["request_id"] == "req-9"
    assert output["error"] == {"code": "service_unavailable", "message": "down"}


@pytest.mark.parametrize(
    ("args", "env", "code"),
    [
        (("-m", "a.b=1"), {}, 65),
        ((), {"INTERCOM_ACCESS_TOKEN": None}, 78),
    ],
)
def test_json_on_local_failure(
    run_cli: RunCli, args: tuple[str, ...], env: dict[str, str | None], code: int
) -> None:
    result = send(run_cli, "--json", *args, *FAST, env=env)

    assert result.code == code, result
    output = result.json()
    assert set(output) == JSON_KEYS
    assert output["ok"] is False
    assert output["delivered"] is False
    assert output["status"] is None
    assert output["attempts"] == 0
    assert set(output["error"]) == {"code", "message", "hint"}
    assert output["error"]["message"] and output["exit_code"] == code


def test_json_without_identity(run_cli: RunCli) -> None:
    result = run_cli("send", "e", "--json")
    assert result.code == 2, result
    output = result.json()
    assert output["ok"] is False
    assert output["event"] is None


# -- --dry-run ---------------------------------------------------------------------------------


def test_dry_run_shows_the_request_and_sends_nothing(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = send(run_cli, "--dry-run", "-m", "plan=pro")

    assert result.code == 0, result
    assert fake.requests == []
    head, _, body = result.stdout.partition("\n\n")
    lines = head.splitlines()
    assert lines[0] == f"POST {fake.url}/events"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers == {
        "Authorization": "Bearer ***",
        "Accept": "application/json",
        "Content-Type": "application/json",
        "Intercom-Version": "2.14",
        "User-Agent": headers["User-Agent"],
    }
    assert headers["User-Agent"].startswith(f"ievents/{__version__}")
    assert json.loads(body) == expected_payload(metadata={"plan": "pro"})


def test_dry_run_works_without_a_token(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = send(run_cli, "--dry-run", env={"INTERCOM_ACCESS_TOKEN": None})
    assert result.code == 0, result
    assert "Bearer ***" in result.stdout
    assert "INTERCOM_ACCESS_TOKEN" in result.stderr
    assert fake.requests == []


def test_dry_run_of_invalid_data_exits_65(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = send(run_cli, "--dry-run", "-m", "a$b=1")
    assert result.code == 65, result
    assert result.stdout == ""
    assert fake.requests == []


def test_dry_run_json_shape(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = send(run_cli, "--dry-run", "--json", "-m", "seats:=3")

    assert result.code == 0, result
    assert result.json() == {
        "ok": True,
        "dry_run": True,
        "method": "POST",
        "url": f"{fake.url}/events",
        "event": expected_payload(metadata={"seats": 3}),
    }
    assert fake.requests == []


# -- quiet and verbose -------------------------------------------------------------------------


def test_quiet_success_prints_nothing(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = send(run_cli, "-q", *FAST)
    assert result.code == 0, result
    assert (result.stdout, result.stderr) == ("", "")
    assert len(fake.events_posted()) == 1


def test_quiet_failure_still_reports_on_stderr(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.unknown_contacts = {"314159"}
    result = send(run_cli, "--quiet", *FAST)
    assert result.code == 67, result
    assert result.stdout == ""
    assert "events do not create contacts" in result.stderr


def test_quiet_local_error_still_reports(run_cli: RunCli) -> None:
    result = send(run_cli, "-q", "-m", "nokey")
    assert result.code == 65, result
    assert "no '='" in result.stderr


def test_verbose_logs_one_line_per_attempt(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(Reply(status=503, headers={"X-RateLimit-Remaining": "41"}))

    result = send(run_cli, "-v", *ONE_RETRY)

    assert result.code == 0, result
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    url = re.escape(f"{fake.url}/events")
    assert re.fullmatch(
        rf"POST {url} -> 503 Service Unavailable in \d+ ms "
        r"\(attempt 1, rate limit remaining 41\)",
        lines[0],
    ), lines[0]
    assert re.fullmatch(
        rf"POST {url} -> 202 Accepted in \d+ ms \(attempt 2, rate limit remaining 9999\)",
        lines[1],
    ), lines[1]
    assert "delivered" in result.stdout


def test_verbose_logs_network_failures(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(Reply(drop=True))
    result = send(run_cli, "--verbose", *FAST)
    assert result.code == 75, result
    assert re.search(
        rf"POST {re.escape(fake.url)}/events -> .+ in \d+ ms \(attempt 1\)", result.stderr
    )


# -- colour ------------------------------------------------------------------------------------


def test_no_ansi_codes_when_not_a_terminal(run_cli: RunCli, fake: FakeIntercom) -> None:
    ok = send(run_cli, "-v", *FAST)
    fake.unknown_contacts = {"314159"}
    failed = send(run_cli, "-v", *FAST)
    for result in (ok, failed):
        assert ANSI not in result.stdout
        assert ANSI not in result.stderr
    assert failed.code == 67


def run_in_terminal(
    tmp_path: Path, fake: FakeIntercom, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return (code, output)."""
    (tmp_path / "work").mkdir(exist_ok=True)
    full_env = {**base_env(tmp_path, fake.url), "TERM": "xterm-256color", **(env or {})}
    ran = run_on_terminal(args, env=full_env, cwd=tmp_path / "work")
    return ran.code, ran.screen


def test_colour_on_a_terminal(tmp_path: Path, fake: FakeIntercom) -> None:
    code, output = run_in_terminal(tmp_path, fake, "send", "e", "--user-id", "1", *FAST)
    assert code == 0, output
    assert "\x1b[32mdelivered e for user_id 1" in output

    fake.unknown_contacts = {"1"}
    code, output = run_in_terminal(tmp_path, fake, "send", "e", "--user-id", "1", *FAST)
    assert code == 67, output
    assert "\x1b[31merror:\x1b[0m" in output


@pytest.mark.parametrize(
    ("args", "env"),
    [(("--no-color",), {}), ((), {"NO_COLOR": "1"}), ((), {"TERM": "dumb"})],
)
def test_no_colour_on_a_terminal_when_asked(
    tmp_path: Path, fake: FakeIntercom, args: tuple[str, ...], env: dict[str, str]
) -> None:
    fake.script(Reply(status=503))
    code, output = run_in_terminal(
        tmp_path, fake, "send", "e", "--user-id", "1", "-v", *ONE_RETRY, *args, env=env
    )
    assert code == 0, output
    assert "delivered e" in output
    assert ANSI not in output

    fake.unknown_contacts = {"1"}
    code, output = run_in_terminal(
        tmp_path, fake, "send", "e", "--user-id", "1", *FAST, *args, env=env
    )
    assert code == 67, output
    assert "error:" in output
    assert ANSI not in output


@pytest.mark.parametrize("args", [(), ("--json",), ("-m", "a.b=ü")])
def test_a_stream_that_cannot_encode_the_output_does_not_fail_the_command(
    run_cli: RunCli, fake: FakeIntercom, args: tuple[str, ...]
) -> None:
    # An ASCII (or Latin-1) stdout must not turn a delivered event into exit 1, which
    # would make a cron job send it again.
    result = run_cli(
        "send", "café-日本", "--user-id", "1", *args, *FAST, env={"PYTHONIOENCODING": "ascii"}
    )
    if "-m" in args:
        assert result.code == 65, result
        assert "a.b" in result.stderr
        return
    assert result.code == 0, result
    assert len(fake.events_posted()) == 1
    if args == ("--json",):
        assert result.json()["event"]["event_name"] == "café-日本"
    else:
        assert "caf\\xe9-\\u65e5\\u672c" in result.stdout


# -- the token never leaks ---------------------------------------------------------------------


def test_a_server_echoing_the_token_does_not_make_it_leak(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    echo = f"Token {TOKEN} is not valid for this workspace"
    fake.script(
        api_error(401, "unauthorized", echo, request_id=f"req-{TOKEN}"),
        api_error(401, "unauthorized", echo, request_id=f"req-{TOKEN}"),
    )
    human = send(run_cli, "-v", "--debug", *FAST)
    as_json = send(run_cli, "--json", *FAST)

    for result in (human, as_json):  # run_cli also checks each run for the whole token
        assert result.code == 77, result
    assert "Token *** is not valid" in human.stderr
    assert as_json.json()["error"]["message"] == "Token *** is not valid for this workspace"


@pytest.mark.parametrize("padding", [170, 185, 195])
def test_a_token_cut_by_a_shortened_error_text_does_not_leak(
    run_cli: RunCli, fake: FakeIntercom, padding: int
) -> None:
    fake.script(Reply(status=401, body="x" * padding + f" Authorization: Bearer {TOKEN} refused"))
    result = send(run_cli, "--json", *FAST)
    assert result.code == 77, result
    assert TOKEN[:10] not in result.stdout + result.stderr


def test_the_token_is_not_in_verbose_or_dry_run_output(run_cli: RunCli, fake: FakeIntercom) -> None:
    for args in (("-v", "--debug"), ("--dry-run", "-v"), ("--dry-run", "--json")):
        result = send(run_cli, *args, *FAST)  # run_cli asserts the token is absent
        assert result.code == 0, result


# -- version, help, library --------------------------------------------------------------------


def test_version(run_cli: RunCli) -> None:
    result = run_cli("--version")
    assert result.code == 0, result
    assert result.stdout.strip() == f"ievents {__version__}"


def option_names(command: str | None) -> list[str]:
    """Every option name the command declares (so options added later are covered too)."""
    import typer.main

    from intercom_events_cli.cli import app

    group = typer.main.get_command(app)
    target = group.commands[command] if command else group  # type: ignore[attr-defined]
    return [name for param in target.params for name in param.opts if name.startswith("-")]


def test_main_help_lists_options_commands_example_and_exit_codes(run_cli: RunCli) -> None:
    result = run_cli("--help", env={"COLUMNS": "200"})
    assert result.code == 0, result
    for name in option_names(None):
        assert name in result.stdout, name
    assert "send" in result.stdout
    assert "ievents send invited-friend --user-id 314159" in result.stdout
    for code in ("65", "67", "75", "77", "78"):
        assert code in result.stdout


def test_send_help_lists_every_option_with_an_example(run_cli: RunCli) -> None:
    result = run_cli("send", "--help", env={"COLUMNS": "200"})
    assert result.code == 0, result
    names = option_names("send")
    for expected in (
        "--user-id",
        "--email",
        "--id",
        "--created-at",
        "-m",
        "--metadata-json",
        "--dry-run",
        "--token-file",
        "--env-file",
        "--region",
        "--base-url",
        "--api-version",
        "--timeout",
        "--retries",
        "--json",
        "-q",
        "-v",
        "--no-color",
        "--debug",
    ):
        assert expected in names
    for name in names:
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", result.stdout), name
    assert "Examples:\n  ievents send invited-friend --user-id 314159" in result.stdout
    # The exit codes are listed once, in the top-level help (and the docs).
    assert "67 contact not found" in " ".join(run_cli("--help").stdout.split())


def test_library_import_does_not_load_the_cli_stack(fake: FakeIntercom) -> None:
    program = f"""
import json, sys
from intercom_events_cli import Event, EventsClient, Settings
heavy = {{"typer", "rich", "click", "httpx"}}
loaded = lambda: sorted({{m.split(".")[0] for m in sys.modules}} & heavy)
on_import = loaded()
settings = Settings(token={TOKEN!r}, base_url={fake.url!r}, retries=0)
with EventsClient(settings) as client:
    outcome = client.send(Event.create("from-library", user_id="42"))
report = {{"on_import": on_import, "after_send": loaded(), "delivered": outcome.delivered}}
print(json.dumps(report))
"""
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["on_import"] == []
    assert report["after_send"] == ["httpx"], "sending needs httpx, never typer or rich"
    assert report["delivered"] is True
    assert fake.events_posted()[0]["event_name"] == "from-library"


def test_a_redirect_is_not_followed_and_is_a_configuration_error(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    """A 3xx would carry the token elsewhere: never followed, exit 78, hint at the URL."""
    fake.script(Reply(status=307, headers={"Location": "https://elsewhere.example/events"}))

    result = send(run_cli, *ONE_RETRY)

    assert result.code == 78, result
    assert len(fake.requests) == 1  # not retried, not followed
    assert "307 Temporary Redirect" in result.stderr
    assert "--base-url" in result.stderr


def test_a_base_url_with_a_password_is_refused_without_echoing_it(run_cli: RunCli) -> None:
    result = send(run_cli, "--base-url", "https://user:hunter2secret@proxy.example")

    assert result.code == 78, result
    assert "user name or password" in result.stderr
    assert "hunter2secret" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("args", "env", "code", "error_code"),
    [
        (("--metadata", "a.b=1"), {}, 65, "invalid_event"),
        ((), {"INTERCOM_ACCESS_TOKEN": None}, 78, "config_error"),
        (("--email", ""), {}, 65, "invalid_event"),
    ],
)
def test_json_error_codes_of_local_failures_are_snake_case(
    run_cli: RunCli,
    args: tuple[str, ...],
    env: dict[str, str | None],
    code: int,
    error_code: str,
) -> None:
    result = send(run_cli, "--json", *args, env=env)

    assert result.code == code, result
    body = result.json()
    assert body["ok"] is False
    assert body["error"]["code"] == error_code


def test_help_text_is_wrapped_to_the_terminal_not_at_source_line_breaks(run_cli: RunCli) -> None:
    """At 80 columns no help line is a stub left by a source line break."""
    from intercom_events_cli.cli import reflow_help

    assert reflow_help("Title.\n\n    One\n    two.\n    Example: x\n    - a\n    b") == (
        "Title.\n\nOne two.\nExample: x\n- a b"
    )
    result = run_cli("list", "--help", env={"COLUMNS": "80"})
    assert result.code == 0, result
    assert "List a contact's events (Intercom keeps the last 90 days), newest first." in (
        result.stdout
    )
    assert "\n one\n" not in result.stdout and not re.search(r"\n\s*one\s*\n", result.stdout)


def test_retries_beyond_100_is_a_usage_error(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = send(run_cli, "--retries", "1000000")
    assert result.code == 2, result
    assert "--retries" in result.stderr
    assert fake.requests == []
