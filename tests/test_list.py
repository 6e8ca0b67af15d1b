"""``ievents list``: a contact's events from the fake Intercom; formats, pages, limits, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TOKEN, RunCli, base_env, make_runner
from fake_intercom import FakeIntercom, Reply, api_error
from helpers import run_on_terminal, seed_fake

from intercom_events_cli.http.lookup import origin_text, same_origin

T0 = 1_700_000_000


def event_gets(fake: FakeIntercom) -> list[dict[str, str]]:
    return [r.query for r in fake.requests if r.method == "GET" and r.path == "/events"]


def test_round_trip_send_three_then_list(run_cli: RunCli, fake: FakeIntercom) -> None:
    sends = [
        ("signed-up", T0, ["-m", "plan=pro"]),
        ("invited-friend", T0 + 60, ["-m", "seats:=3"]),
        ("ordered", T0 + 120, ["-m", 'price:={"amount":34999,"currency":"eur"}']),
    ]
    for name, when, metadata in sends:
        sent = run_cli("send", name, "--user-id", "314159", "--created-at", str(when), *metadata)
        assert sent.code == 0, sent
    fake.requests.clear()

    result = run_cli("list", "--user-id", "314159")

    assert result.code == 0, result
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert lines == [
        ["ordered", "2023-11-14T22:15:20Z", '{"price":{"amount":34999,"currency":"eur"}}'],
        ["invited-friend", "2023-11-14T22:14:20Z", '{"seats":3}'],
        ["signed-up", "2023-11-14T22:13:20Z", '{"plan":"pro"}'],
    ]
    assert event_gets(fake) == [{"type": "user", "user_id": "314159"}]
    assert fake.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_json_is_one_event_object_per_line(run_cli: RunCli, fake: FakeIntercom) -> None:
    seed_fake(fake, 3)

    result = run_cli("list", "--user-id", "u-1", "--json")

    assert result.code == 0, result
    events = result.json_lines()
    assert len(result.stdout.splitlines()) == 3
    assert [e["event_name"] for e in events] == ["seeded-2", "seeded-1", "seeded-0"]
    assert all(e["type"] == "event" and e["user_id"] == "u-1" for e in events)


def test_json_with_no_events_prints_nothing(run_cli: RunCli) -> None:
    result = run_cli("list", "--user-id", "nobody", "--json")

    assert result.code == 0, result
    assert result.stdout == ""
    assert "no events for user_id nobody" in result.stderr


def test_list_by_email_is_url_encoded(run_cli: RunCli, fake: FakeIntercom) -> None:
    email = "ada+tag@example.org"
    assert run_cli("send", "logged-in", "--email", email).code == 0
    fake.requests.clear()

    result = run_cli("list", "--email", email, "--json")

    assert result.code == 0, result
    assert [e["event_name"] for e in result.json_lines()] == ["logged-in"]
    (request,) = [r for r in fake.requests if r.path == "/events"]
    assert request.query == {"type": "user", "email": email}  # '+' arrived as '+'


def test_list_by_intercom_user_id(run_cli: RunCli, fake: FakeIntercom) -> None:
    assert run_cli("send", "lead-visited", "--id", "6762f22b1bb69f9f2193bc12").code == 0
    fake.requests.clear()

    result = run_cli("list", "--id", "6762f22b1bb69f9f2193bc12", "--json")

    assert result.code == 0, result
    assert [e["event_name"] for e in result.json_lines()] == ["lead-visited"]
    assert event_gets(fake) == [{"type": "user", "intercom_user_id": "6762f22b1bb69f9f2193bc12"}]


def test_pages_are_followed_on_the_same_host(run_cli: RunCli, fake: FakeIntercom) -> None:
    seed_fake(fake, 5)

    result = run_cli("list", "--user-id", "u-1", "--per-page", "2", "--json")

    assert result.code == 0, result
    names = [e["event_name"] for e in result.json_lines()]
    assert names == [f"seeded-{i}" for i in (4, 3, 2, 1, 0)]
    assert [q.get("page", "1") for q in event_gets(fake)] == ["1", "2", "3"]
    assert all(q["per_page"] == "2" and q["user_id"] == "u-1" for q in event_gets(fake))
    assert "warning" not in result.stderr


def test_limit_stops_early(run_cli: RunCli, fake: FakeIntercom) -> None:
    seed_fake(fake, 5)

    result = run_cli("list", "--user-id", "u-1", "--per-page", "2", "--limit", "3", "--json")

    assert result.code == 0, result
    assert [e["event_name"] for e in result.json_lines()] == ["seeded-4", "seeded-3", "seeded-2"]
    assert len(event_gets(fake)) == 2  # the third page is never asked for
    assert "there are more" in result.stderr


def test_limit_within_one_page(run_cli: RunCli, fake: FakeIntercom) -> None:
    seed_fake(fake, 3)

    result = run_cli("list", "--user-id", "u-1", "--limit", "1")

    assert result.code == 0, result
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == ["seeded-2"]
    assert len(event_gets(fake)) == 1


def test_foreign_next_page_is_not_followed(run_cli: RunCli, fake: FakeIntercom) -> None:
    seed_fake(fake, 3)
    fake.next_page_override = "http://evil.example/events?type=user&user_id=u-1&page=2"

    result = run_cli("list", "--user-id", "u-1", "--per-page", "1", "--json")

    assert result.code == 0, result
    assert [e["event_name"] for e in result.json_lines()] == ["seeded-2"]
    assert "ievents: warning: stopped after 1 page" in result.stderr
    assert "http://evil.example" in result.stderr
    assert "never sends the token to another host" in result.stderr
    assert len(event_gets(fake)) == 1


def test_next_page_on_another_loopback_port_gets_no_request(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    seed_fake(fake, 3)
    with FakeIntercom() as other:
        fake.next_page_override = f"{other.url}/events?type=user&user_id=u-1&per_page=1&page=2"

        result = run_cli("list", "--user-id", "u-1", "--per-page", "1")

        assert other.requests == []  # the token never went there
    assert result.code == 0, result
    assert len(result.stdout.splitlines()) == 1
    assert f"the next page is on {other.url}" in result.stderr


def test_next_page_with_another_scheme_is_not_followed(run_cli: RunCli, fake: FakeIntercom) -> None:
    seed_fake(fake, 2)
    fake.next_page_override = f"https://127.0.0.1:{fake.port}/events?page=2"

    result = run_cli("list", "--user-id", "u-1", "--per-page", "1")

    assert result.code == 0, result
    assert "warning: stopped after 1 page" in result.stderr
    assert len(event_gets(fake)) == 1


def test_relative_next_page_is_followed(run_cli: RunCli, fake: FakeIntercom) -> None:
    seed_fake(fake, 3)
    fake.next_page_override = "/events?type=user&user_id=u-1&per_page=2&page=2"

    result = run_cli("list", "--user-id", "u-1", "--per-page", "2", "--json")

    assert result.code == 0, result
    assert len(result.json_lines()) == 3
    assert [q.get("page", "1") for q in event_gets(fake)] == ["1", "2"]


def test_next_page_pointing_back_stops(run_cli: RunCli, fake: FakeIntercom) -> None:
    seed_fake(fake, 3)
    fake.next_page_override = f"{fake.url}/events?type=user&user_id=u-1&per_page=1"

    result = run_cli("list", "--user-id", "u-1", "--per-page", "1")

    assert result.code == 0, result
    assert len(result.stdout.splitlines()) == 1
    assert "points back at a page already read" in result.stderr
    assert len(event_gets(fake)) == 1


def test_summary(run_cli: RunCli, fake: FakeIntercom) -> None:
    seed_fake(fake, 2, name="ordered")
    seed_fake(fake, 1, name="ordered")  # ordered-0 twice now

    result = run_cli("list", "--user-id", "u-1", "--summary")

    assert result.code == 0, result
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows == [
        ["ordered-1", "1", "2023-11-14T22:13:21.000Z", "2023-11-14T22:13:21.000Z"],
        ["ordered-0", "2", "2023-11-14T22:13:20.000Z", "2023-11-14T22:13:20.000Z"],
    ]
    assert event_gets(fake) == [{"type": "user", "user_id": "u-1", "summary": "true"}]


def test_summary_json(run_cli: RunCli, fake: FakeIntercom) -> None:
    seed_fake(fake, 3)

    result = run_cli("list", "--user-id", "u-1", "--summary", "--json", "--limit", "2")

    assert result.code == 0, result
    summaries = result.json_lines()
    assert len(summaries) == 2
    assert all({"name", "count", "first", "last"} <= s.keys() for s in summaries)


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("--json",),
        ("--user-id", "1", "--email", "a@example.org"),
        ("--email", "a@example.org", "--id", "x"),
        ("--user-id", " "),
    ],
)
def test_exactly_one_contact_is_required(
    run_cli: RunCli, fake: FakeIntercom, args: tuple[str, ...]
) -> None:
    result = run_cli("list", *args)

    assert result.code == 2, result
    assert fake.requests == []


def test_unknown_contact_exits_67(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(api_error(404, "not_found", "User Not Found", path="/events", method="GET"))

    result = run_cli("list", "--user-id", "ghost")

    assert result.code == 67, result
    assert "User Not Found" in result.stderr
    assert "no contact with user_id ghost" in result.stderr


def test_refused_request_exits_65(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(api_error(400, "parameter_invalid", "email is invalid", path="/events"))

    result = run_cli("list", "--email", "not-an-email")

    assert result.code == 65, result
    assert "email is invalid" in result.stderr


def test_rejected_token_exits_77(tmp_path: Path, fake: FakeIntercom) -> None:
    run = make_runner(tmp_path, fake.url)

    result = run("list", "--user-id", "1", env={"INTERCOM_ACCESS_TOKEN": "tok_other"})

    assert result.code == 77, result
    assert "token was rejected" in result.stderr


def test_missing_token_exits_78(run_cli: RunCli, fake: FakeIntercom) -> None:
    result = run_cli("list", "--user-id", "1", env={"INTERCOM_ACCESS_TOKEN": None})

    assert result.code == 78, result
    assert fake.requests == []


def test_failure_on_a_later_page_keeps_what_was_printed(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    # Page 1 arrives; page 2 is answered 500, and so is its one retry.
    fake.script(
        Reply(status=200, body=_page(fake, ["a", "b"], page=2), path="/events"),
        *(Reply(status=500, path="/events") for _ in range(2)),
    )

    result = run_cli("list", "--user-id", "u-1", "--json", "--retries", "1")

    assert result.code == 75, result
    assert [e["event_name"] for e in result.json_lines()] == ["a", "b"]
    assert "500 Internal Server Error" in result.stderr
    assert [q.get("page", "1") for q in event_gets(fake)] == ["1", "2", "2"]


def _page(fake: FakeIntercom, names: list[str], page: int) -> dict[str, Any]:
    events = [
        {"type": "event", "event_name": n, "created_at": T0, "user_id": "u-1", "metadata": {}}
        for n in names
    ]
    next_url = f"{fake.url}/events?type=user&user_id=u-1&page={page}"
    return {"type": "event.list", "events": events, "pages": {"next": next_url}}


def test_help_mentions_the_90_day_window(run_cli: RunCli) -> None:
    result = run_cli("list", "--help", env={"COLUMNS": "200"})

    assert result.code == 0
    assert "last 90 days" in result.stdout


def test_table_on_a_terminal(tmp_path: Path, fake: FakeIntercom) -> None:
    """On a terminal the events are a table (rich), with metadata as key=value."""
    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        body = {
            "event_name": "[bold]ordered[/bold]",
            "created_at": T0,
            "user_id": "u-1",
            "metadata": {"plan": "pro", "seats": 3},
        }
        assert c.post("/events", json=body).status_code == 202
    env = base_env(tmp_path, fake.url)
    env.update({"COLUMNS": "120", "NO_COLOR": "1", "TERM": "xterm"})
    (tmp_path / "work").mkdir()
    ran = run_on_terminal(
        ["list", "--user-id", "u-1"], env=env, cwd=tmp_path / "work", stderr_on_terminal=False
    )
    screen, stderr = ran.screen, ran.stderr

    assert ran.code == 0, (screen, stderr)
    assert TOKEN not in screen and TOKEN not in stderr
    assert "1 event for user_id u-1, newest first" in screen
    assert "created_at (UTC)" in screen and "metadata" in screen
    assert "[bold]ordered[/bold]" in screen  # data is shown as is, never read as markup
    assert "2023-11-14T22:13:20Z" in screen
    assert "plan=pro" in screen and "seats=3" in screen
    assert "\t" not in screen


def test_unreachable_exits_75(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = make_runner(tmp_path, f"http://127.0.0.1:{port}")

    result = run("list", "--user-id", "1", "--retries", "0", "--timeout", "2")

    assert result.code == 75, result
    assert "after 1 attempt" in result.stderr


# -- the same-host rule, without a network -----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "base", "same"),
    [
        ("https://api.intercom.io/events?page=2", "https://api.intercom.io", True),
        ("https://api.intercom.io:443/events", "https://api.intercom.io", True),
        ("https://API.intercom.io/events", "https://api.intercom.io", True),
        ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080/proxy", True),
        ("http://api.intercom.io/events", "https://api.intercom.io", False),
        ("https://api.intercom.io:8443/events", "https://api.intercom.io", False),
        ("https://api.intercom.io.evil.example/events", "https://api.intercom.io", False),
        ("https://api.intercom.io@evil.example/events", "https://api.intercom.io", False),
        ("http://127.0.0.1:8080\\@evil.example/", "http://127.0.0.1:8080", False),
        ("http://localhost:8080/events", "http://127.0.0.1:8080", False),
        ("not a url", "https://api.intercom.io", False),
    ],
)
def test_same_origin(url: str, base: str, same: bool) -> None:
    assert same_origin(url, base) is same


def test_origin_text_hides_path_and_query() -> None:
    assert origin_text("https://evil.example/events?token=x") == "https://evil.example"
    assert origin_text("http://127.0.0.1:9/events") == "http://127.0.0.1:9"
    assert json.dumps(origin_text("https://api.intercom.io:443/x")) == '"https://api.intercom.io"'


def test_an_answer_that_is_not_json_exits_75(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(Reply(status=200, body="<html>maintenance</html>", path="/events"))

    result = run_cli("list", "--user-id", "1", "--json")

    assert result.code == 75, result
    # --json: one object on every exit, the error included.
    (error,) = result.json_lines()
    assert error["ok"] is False and error["error"]["code"] == "unexpected_response"
    assert "not the JSON object Intercom sends" in result.stderr
