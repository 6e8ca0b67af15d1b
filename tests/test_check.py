"""``ievents check``: GET /me against the fake Intercom; output, --json, region, exit codes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from conftest import TOKEN, RunCli, make_runner
from fake_intercom import FakeIntercom, Reply, api_error

from intercom_events_cli.http.lookup import TokenOwner, region_from_report, region_of_base_url


def me_requests(fake: FakeIntercom) -> list[str]:
    return [r.path for r in fake.requests if r.method == "GET" and r.path == "/me"]


def test_check_prints_admin_app_region_and_api(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = run_cli("check")

    assert result.code == 0, result
    out = result.stdout
    assert "Ada Lovelace <ada@example.org>" in out
    assert "Example App (id_code abc123xy)" in out
    assert "region:  US" in out
    assert f"{fake.url} (Intercom-Version 2.14)" in out
    assert "warning" not in result.stderr
    (request,) = fake.requests
    assert (request.method, request.path) == ("GET", "/me")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["intercom-version"] == "2.14"


def test_check_json_shape(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = run_cli("check", "--json", "--api-version", "2.11")

    assert result.code == 0, result
    assert result.json() == {
        "ok": True,
        "admin": {"name": "Ada Lovelace", "email": "ada@example.org"},
        "app": {"name": "Example App", "id_code": "abc123xy", "region": "US"},
        "api_base": fake.url,
        "api_version": "2.11",
        "warnings": [],
        "token": {"last4": "..." + TOKEN[-4:], "source": "variable INTERCOM_ACCESS_TOKEN"},
        "proxy": None,
    }
    assert fake.requests[0].headers["intercom-version"] == "2.11"


def test_quiet_check_prints_nothing_on_success(run_cli: RunCli) -> None:
    result = run_cli("check", "-q")

    assert result.code == 0, result
    assert result.stdout == ""
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("reported", "fix"),
    [("Europe", "--region eu"), ("EU", "--region eu"), ("Australia", "--region au")],
)
def test_region_mismatch_warns_with_the_fix(
    run_cli: RunCli, fake: FakeIntercom, reported: str, fix: str
) -> None:
    fake.app_region = reported

    result = run_cli("check")

    assert result.code == 0, result
    assert f"region:  {reported}" in result.stdout
    assert "ievents: warning: the workspace is in" in result.stderr
    assert fix in result.stderr
    assert "set up for US" in result.stderr


def test_region_mismatch_in_json(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.app_region = "Europe"

    result = run_cli("check", "--json")

    assert result.code == 0, result
    data = result.json()
    assert data["ok"] is True
    assert data["app"]["region"] == "Europe"
    (warning,) = data["warnings"]
    assert "Europe" in warning and "--region eu" in warning
    assert "--region eu" in result.stderr  # also told on stderr, stdout stays one object


def test_matching_region_does_not_warn(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.app_region = "Europe"

    # Both named on the command line: --base-url wins over --region, as documented.
    result = run_cli("check", "--region", "eu", "--base-url", fake.url, "--json")

    assert result.code == 0, result
    assert result.json()["warnings"] == []
    assert "warning" not in result.stderr


def test_unknown_reported_region_is_shown_without_a_warning(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    fake.app_region = "Atlantis"

    result = run_cli("check")

    assert result.code == 0, result
    assert "region:  Atlantis" in result.stdout
    assert "warning" not in result.stderr


def test_rejected_token_exits_77(tmp_path: Path, fake: FakeIntercom) -> None:
    run = make_runner(tmp_path, fake.url)

    result = run("check", env={"INTERCOM_ACCESS_TOKEN": "tok_wrong_one"})

    assert result.code == 77, result
    assert "401 Unauthorized" in result.stderr
    assert "token was rejected" in result.stderr
    assert result.stdout == ""
    assert len(me_requests(fake)) == 1  # 401 is not retried


def test_forbidden_json_failure(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(api_error(403, "forbidden", "Token lacks scope", path="/me"))

    result = run_cli("check", "--json")

    assert result.code == 77, result
    data = result.json()
    assert data["ok"] is False
    assert data["status"] == 403
    assert "Token lacks scope" in data["error"]["message"]
    assert data["api_base"] == fake.url


def test_missing_token_exits_78_without_a_request(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = run_cli("check", env={"INTERCOM_ACCESS_TOKEN": None})

    assert result.code == 78, result
    assert "no access token" in result.stderr
    assert fake.requests == []


def test_not_found_means_a_wrong_base_url(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(api_error(404, "not_found", "Resource Not Found", path="/me"))

    result = run_cli("check")

    assert result.code == 78, result
    assert "--base-url" in result.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_exits_75_after_the_retries(tmp_path: Path) -> None:
    run = make_runner(tmp_path, f"http://127.0.0.1:{free_port()}")

    result = run("check", "--retries", "1", "--timeout", "2")

    assert result.code == 75, result
    assert "after 2 attempts" in result.stderr
    assert "try again" in result.stderr


def test_server_error_is_retried(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(Reply(status=503, path="/me"))

    result = run_cli("check", "--retries", "1", "--json")

    assert result.code == 0, result
    assert result.json()["ok"] is True
    assert len(me_requests(fake)) == 2


def test_verbose_logs_the_request_without_the_token(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = run_cli("check", "-v")

    assert result.code == 0, result
    assert f"GET {fake.url}/me -> 200 OK" in result.stderr


# -- the region rules, without a network ------------------------------------------------------


def owner(reported: str | None, api_base: str, configured: str = "us") -> TokenOwner:
    host_region = region_of_base_url(api_base)
    return TokenOwner(
        admin_name="A",
        admin_email="a@example.org",
        app_name="App",
        app_id_code="x1",
        reported_region=reported,
        api_base=api_base,
        api_version="2.14",
        configured_region=configured,
        expected_region=host_region or configured,
        base_is_intercom=host_region is not None,
    )


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://api.intercom.io", "us"),
        ("https://api.eu.intercom.io", "eu"),
        ("https://API.AU.intercom.io:443", "au"),
        ("http://api.intercom.io", None),  # another scheme is another place
        ("http://127.0.0.1:8080", None),
        ("https://proxy.example.org", None),
    ],
)
def test_region_of_base_url(url: str, region: str | None) -> None:
    assert region_of_base_url(url) == region


@pytest.mark.parametrize(
    ("value", "code"),
    [("US", "us"), ("Europe", "eu"), (" eu ", "eu"), ("Australia", "au"), ("AU", "au")],
)
def test_region_from_report(value: str, code: str) -> None:
    assert region_from_report(value) == code


@pytest.mark.parametrize("value", [None, "", "Mars", 3])
def test_region_from_report_unknown(value: object) -> None:
    assert region_from_report(value) is None


def test_intercom_host_mismatch_says_use_region() -> None:
    me = owner("Europe", "https://api.intercom.io")
    assert me.region_mismatch
    assert me.region_fix() == "use --region eu (or set INTERCOM_REGION=eu)"


def test_explicit_intercom_base_url_mismatch_says_use_base_url() -> None:
    # Configured region eu, but the base URL was set to the US host explicitly.
    me = owner("Europe", "https://api.intercom.io", configured="eu")
    assert me.region_mismatch
    fix = me.region_fix()
    assert fix is not None and "--base-url https://api.eu.intercom.io" in fix


def test_host_region_wins_over_the_configured_region() -> None:
    me = owner("Australia", "https://api.au.intercom.io", configured="us")
    assert not me.region_mismatch
    assert me.warnings() == []


def test_custom_base_url_compares_the_configured_region() -> None:
    assert owner("US", "http://127.0.0.1:9", configured="us").warnings() == []
    (warning,) = owner("US", "http://127.0.0.1:9", configured="au").warnings()
    assert "--region us" in warning and "forwards to https://api.intercom.io" in warning


def test_an_answer_that_is_not_intercoms_is_a_configuration_error(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    fake.script(Reply(status=200, body="<html>captive portal</html>", path="/me"))

    result = run_cli("check")

    assert result.code == 78, result
    assert "not the JSON object Intercom sends" in result.stderr
    assert "--base-url" in result.stderr
