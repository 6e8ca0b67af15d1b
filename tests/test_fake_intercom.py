"""Tests for the fake Intercom server used by the test-suite and benchmarks."""

from __future__ import annotations

import json
import math
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_intercom import FakeIntercom, Reply, api_error  # noqa: E402
from helpers import event_body

AUTH = {"Authorization": "Bearer tok-123", "Accept": "application/json"}


@pytest.fixture
def fake() -> Iterator[FakeIntercom]:
    with FakeIntercom() as server:
        yield server


@pytest.fixture
def client(fake: FakeIntercom) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, headers=AUTH, timeout=5) as c:
        yield c


def test_url_and_port(fake: FakeIntercom) -> None:
    assert fake.url == f"http://127.0.0.1:{fake.port}"
    assert fake.port > 0
    assert not fake.url.endswith("/")


def test_default_post_is_accepted_and_recorded(fake: FakeIntercom, client: httpx.Client) -> None:
    body = event_body(metadata={"order_id": 7})
    r = client.post("/events?x=1", json=body)
    assert r.status_code == 202
    assert r.content == b""
    assert r.headers["content-length"] == "0"
    assert r.headers["x-ratelimit-limit"] == "10000"
    assert "x-ratelimit-remaining" in r.headers
    assert int(r.headers["x-ratelimit-reset"]) > time.time()

    (rec,) = fake.requests
    assert rec.method == "POST"
    assert rec.path == "/events"
    assert rec.query == {"x": "1"}
    assert rec.headers["authorization"] == "Bearer tok-123"
    assert rec.json() == body
    assert json.loads(rec.body) == body
    assert rec.status == 202
    assert rec.time <= time.monotonic()
    assert fake.events_posted() == [body]
    assert fake.posts() == [rec]

    fake.reset()
    assert fake.requests == [] and fake.events_posted() == [] and fake.stored_events() == []


def test_missing_or_wrong_auth_is_401(fake: FakeIntercom) -> None:
    with httpx.Client(base_url=fake.url) as c:
        r = c.post("/events", json=event_body())
        assert r.status_code == 401
        assert r.json()["type"] == "error.list"
        assert r.json()["errors"][0]["code"] == "unauthorized"
        fake.expected_token = "right"
        r = c.post("/events", json=event_body(), headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = c.post("/events", json=event_body(), headers={"Authorization": "Bearer right"})
        assert r.status_code == 202
    assert len(fake.posts()) == 3
    assert len(fake.events_posted()) == 1


def test_invalid_event_is_400(client: httpx.Client) -> None:
    for bad in (
        {"created_at": 1, "user_id": "u"},
        {"event_name": "x", "user_id": "u"},
        {"event_name": "x", "created_at": "1", "user_id": "u"},
        {"event_name": "x", "created_at": 1},
        [1, 2],
    ):
        r = client.post("/events", json=bad)
        assert r.status_code == 400, bad
        assert r.json()["errors"][0]["code"] == "parameter_invalid"
    r = client.post("/events", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_script_fifo_with_path_filter(fake: FakeIntercom, client: httpx.Client) -> None:
    fake.script(
        Reply(status=500, body="boom"),
        Reply(status=200, body={"only": "me"}, path="/me"),
        Reply(status=503, headers={"Retry-After": "1"}, path="/events", method="POST"),
    )
    fake.script_repeat(Reply(status=502, body=b"<html>bad gateway</html>"), 2)

    r = client.get("/events", params={"user_id": "1"})  # head of the queue: any path...
    assert (r.status_code, r.text) == (500, "boom")
    assert r.headers["content-type"].startswith("text/plain")
    r = client.post("/events", json=event_body())  # skips the /me reply
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    r = client.post("/events", json=event_body())
    assert r.status_code == 502 and r.content == b"<html>bad gateway</html>"
    fake.script(Reply(status=500, body="not for /me"))
    r = client.get("/me")  # ...but GET /me: only a reply that names it
    assert r.status_code == 200 and r.json() == {"only": "me"}
    r = client.get("/me")
    assert r.status_code == 200 and r.json()["app"]["id_code"] == "abc123xy"
    r = client.post("/events", json=event_body())
    assert r.status_code == 502
    r = client.post("/events", json=event_body())
    assert r.status_code == 500
    r = client.post("/events", json=event_body())  # queue empty: default behaviour
    assert r.status_code == 202
    assert fake.pending_script() == []
    assert [p.status for p in fake.posts()] == [503, 502, 502, 500, 202]
    assert len(fake.events_posted()) == 1


def test_api_error_body_shape(fake: FakeIntercom, client: httpx.Client) -> None:
    reply = api_error(422, "parameter_invalid", "Cannot have more than 120 active event names")
    assert reply.status == 422
    assert reply.body == {
        "type": "error.list",
        "request_id": "req-123",
        "errors": [
            {"code": "parameter_invalid", "message": "Cannot have more than 120 active event names"}
        ],
    }
    fake.script(api_error(401, "unauthorized", "Access Token Invalid", request_id="r-9"))
    r = client.post("/events", json=event_body())
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {
        "type": "error.list",
        "request_id": "r-9",
        "errors": [{"code": "unauthorized", "message": "Access Token Invalid"}],
    }


def test_drop_closes_connection_without_answer(fake: FakeIntercom) -> None:
    fake.script(Reply(drop=True))
    with httpx.Client(base_url=fake.url, headers=AUTH, timeout=5) as c:
        with pytest.raises(httpx.TransportError) as info:
            c.post("/events", json=event_body())
        assert isinstance(info.value, (httpx.RemoteProtocolError, httpx.ReadError))
        assert c.post("/events", json=event_body()).status_code == 202  # server still fine
    assert [p.status for p in fake.posts()] == [None, 202]


def test_delay_causes_read_timeout(fake: FakeIntercom) -> None:
    fake.script(Reply(delay=60))  # the fake's stop ends the wait
    t0 = time.monotonic()
    with httpx.Client(base_url=fake.url, headers=AUTH, timeout=0.2) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.post("/events", json=event_body())
    assert time.monotonic() - t0 < 60 / 2  # the client's timeout, not the delay


def test_latency_is_not_serialised(fake: FakeIntercom) -> None:
    import concurrent.futures

    fake.me_latency = 1.0
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(
            pool.map(lambda _: httpx.get(f"{fake.url}/me", headers=AUTH).status_code, range(16))
        )
    assert codes == [200] * 16
    # Side by side: half of the 16 s one after the other would take (idle: 1.1 s).
    assert time.monotonic() - t0 < 16 * 1.0 / 2


def test_rate_limit_fixed_window(fake: FakeIntercom, client: httpx.Client) -> None:
    window = 2.0
    fake.set_rate_limit(3, window)
    now = 1_700_000_000.5  # the fake's clock, set: half a second into a window
    fake.clock = lambda: now
    expected_reset = math.ceil(math.floor(now / window) * window + window)

    answers = [client.post("/events", json=event_body()) for _ in range(4)]
    assert [r.status_code for r in answers] == [202, 202, 202, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in answers] == ["2", "1", "0", "0"]
    for r in answers:
        assert r.headers["x-ratelimit-limit"] == "3"
        assert int(r.headers["x-ratelimit-reset"]) == expected_reset
    err = answers[-1].json()
    assert err["type"] == "error.list"
    assert err["errors"][0] == {
        "code": "rate_limit_exceeded",
        "message": "Exceeded rate limit of 3 in 2 seconds",
    }
    assert fake.count_429 == 1
    assert fake.stats() == {"posts": 4, "accepted": 3, "count_429": 1}

    now = expected_reset + 0.02  # the next window
    r = client.post("/events", json=event_body())
    assert r.status_code == 202 and r.headers["x-ratelimit-remaining"] == "2"


def test_unknown_contact_is_404(fake: FakeIntercom, client: httpx.Client) -> None:
    fake.unknown_contacts = {"ghost", "ghost@example.org"}
    r = client.post("/events", json=event_body(user_id="ghost"))
    assert r.status_code == 404
    assert r.json()["errors"] == [{"code": "not_found", "message": "User Not Found"}]
    r = client.post("/events", json=event_body(email="ghost@example.org"))
    assert r.status_code == 404
    assert client.post("/events", json=event_body(user_id="alive")).status_code == 202
    assert fake.events_posted() == [event_body(user_id="alive")]


def test_me_shape_and_region(fake: FakeIntercom, client: httpx.Client) -> None:
    me = client.get("/me").json()
    assert me["type"] == "admin"
    assert me["email"] == "ada@example.org"
    assert me["app"]["type"] == "app"
    assert me["app"]["id_code"] == "abc123xy"
    assert me["app"]["region"] == "US"
    fake.app_region = "EU"
    assert client.get("/me").json()["app"]["region"] == "EU"


def test_unknown_path_is_404(client: httpx.Client) -> None:
    r = client.get("/contacts")
    assert r.status_code == 404
    assert r.json()["errors"][0]["code"] == "not_found"
    assert client.post("/events/summaries", json={}).json() == {}


def test_list_events_pagination(fake: FakeIntercom, client: httpx.Client) -> None:
    for i in range(5):
        client.post("/events", json=event_body(f"e{i}", 1_700_000_000 + i, user_id="u1", id="ic1"))
    client.post("/events", json=event_body("other", 1_800_000_000, user_id="u2"))

    params = {"type": "user", "user_id": "u1", "per_page": "2"}
    r = client.get("/events", params=params)
    assert r.status_code == 200
    page = r.json()
    assert page["type"] == "event.list"
    names = [e["event_name"] for e in page["events"]]
    assert names == ["e4", "e3"]  # newest first
    first = page["events"][0]
    assert first["type"] == "event" and first["id"]
    assert first["user_id"] == "u1" and first["intercom_user_id"] == "ic1"
    assert first["created_at"] == 1_700_000_004 and first["metadata"] == {}

    while "next" in page["pages"]:
        nxt = page["pages"]["next"]
        assert nxt.startswith(f"{fake.url}/events?")
        assert "user_id=u1" in nxt and "per_page=2" in nxt
        page = client.get(nxt).json()
        names += [e["event_name"] for e in page["events"]]
    assert names == ["e4", "e3", "e2", "e1", "e0"]

    by_id = client.get("/events", params={"type": "user", "intercom_user_id": "ic1"}).json()
    assert len(by_id["events"]) == 5 and by_id["pages"] == {}

    assert client.get("/events", params={"user_id": "u1"}).status_code == 400
    assert client.get("/events", params={"type": "user"}).status_code == 400


def test_list_events_by_email_and_summary(client: httpx.Client) -> None:
    for ts in (1_700_000_000, 1_700_000_100, 1_700_000_050):
        client.post("/events", json=event_body("login", ts, email="a@example.org"))
    client.post("/events", json=event_body("logout", 1_700_000_200, email="a@example.org"))

    listed = client.get("/events", params={"type": "user", "email": "a@example.org"}).json()
    assert [e["created_at"] for e in listed["events"]] == [
        1_700_000_200,
        1_700_000_100,
        1_700_000_050,
        1_700_000_000,
    ]

    params = {"type": "user", "email": "a@example.org", "summary": "true"}
    summary = client.get("/events", params=params).json()
    assert summary["type"] == "event.summary"
    assert summary["email"] == "a@example.org"
    by_name = {s["name"]: s for s in summary["events"]}
    assert by_name["login"]["count"] == 3
    assert by_name["login"]["first"] == "2023-11-14T22:13:20.000Z"
    assert by_name["login"]["last"] == "2023-11-14T22:15:00.000Z"
    assert by_name["login"]["description"] == ""
    assert by_name["logout"]["count"] == 1


def test_next_page_override(fake: FakeIntercom, client: httpx.Client) -> None:
    client.post("/events", json=event_body())
    fake.next_page_override = "https://evil.example.com/events?page=2"
    page = client.get("/events", params={"type": "user", "user_id": "u1"}).json()
    assert page["pages"]["next"] == "https://evil.example.com/events?page=2"


def test_keep_alive_reuses_connection(fake: FakeIntercom, client: httpx.Client) -> None:
    assert client.get("/me").status_code == 200
    assert client.post("/events", json=event_body()).status_code == 202
    ports = {r.client_port for r in fake.requests}
    assert len(fake.requests) == 2 and len(ports) == 1


def test_standalone_mode(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    script = Path(__file__).parent / "fake_intercom.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--rate-limit", "100", "--window", "2"]
        + ["--stats-file", str(stats)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=60), "no READY line within 60 s"
        line = proc.stdout.readline()
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split()[1]
        r = httpx.post(f"{url}/events", json=event_body(), headers=AUTH)
        assert r.status_code == 202
        assert r.headers["x-ratelimit-limit"] == "100"

        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out == ""
        assert json.loads(stats.read_text()) == {"posts": 1, "accepted": 1, "count_429": 0}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
