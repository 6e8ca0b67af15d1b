"""Unit tests of EventsClient with httpx.MockTransport (the CLI tests cover the same
behaviours end to end against the fake server, see test_send_cli.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fake_intercom import FakeIntercom, Reply  # tests/ is on sys.path (conftest.py)

from intercom_events_cli import __version__
from intercom_events_cli.config.redaction import register_secret
from intercom_events_cli.config.settings import Settings
from intercom_events_cli.errors import ApiError, ExitCode
from intercom_events_cli.event import Event
from intercom_events_cli.http.client import AttemptLog, EventsClient, events_url
from intercom_events_cli.outcome import OutcomeKind

TOKEN = "tok_CLIENT_unit_5e6f7a8b9c0d1e2f"
BASE_URL = "https://api.example.test"
NOW = 1_700_000_000.0

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def _register_token() -> None:
    # Settings.load registers the token; these tests build Settings directly.
    register_secret(TOKEN)


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"token": TOKEN, "base_url": BASE_URL, "retries": 2, "timeout": 0.5}
    values.update(overrides)
    return Settings(**values)


def make_event() -> Event:
    return Event.create(
        "invited-friend",
        user_id="314159",
        created_at=1_704_067_200,
        metadata={"plan": "pro", "seats": 3},
        clock=lambda: NOW,
    )


class Recorder:
    """Answers requests from a list of replies and records what it received."""

    def __init__(self, *replies: httpx.Response | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Iterator[Callable[..., EventsClient]]:
    clients: list[EventsClient] = []

    def build(handler: Handler, settings: Settings | None = None, **kwargs: Any) -> EventsClient:
        client = EventsClient(
            settings or make_settings(),
            transport=httpx.MockTransport(handler),
            sleep=sleeps.append,
            clock=lambda: NOW,
            random=lambda: 0.5,
            **kwargs,
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def error_list(code: str, message: str, request_id: str = "req-abc") -> dict[str, Any]:
    return {
        "type": "error.list",
        "request_id": request_id,
        "errors": [{"code": code, "message": message}],
    }


# -- the request -------------------------------------------------------------------------------


def test_posts_the_event_body_with_every_header(make_client: Callable[..., EventsClient]) -> None:
    recorder = Recorder(httpx.Response(202))
    event = make_event()
    outcome = make_client(recorder).send(event)

    assert outcome.delivered
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE_URL}/events" == events_url(make_settings())
    assert request.content == event.body()
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Intercom-Version"] == "2.14"
    assert request.headers["User-Agent"].startswith(f"ievents/{__version__} ")


def test_api_version_is_sent_as_intercom_version(make_client: Callable[..., EventsClient]) -> None:
    recorder = Recorder(httpx.Response(202))
    make_client(recorder, make_settings(api_version="Unstable")).send(make_event())
    assert recorder.requests[0].headers["Intercom-Version"] == "Unstable"


def test_delivered_outcome(make_client: Callable[..., EventsClient]) -> None:
    recorder = Recorder(httpx.Response(202, headers={"X-Request-Id": "req-202"}))
    outcome = make_client(recorder).send(make_event())
    assert outcome.kind is OutcomeKind.DELIVERED
    assert outcome.status == 202
    assert outcome.attempts == 1
    assert outcome.request_id == "req-202"
    assert outcome.error() is None
    assert outcome.exit_code is ExitCode.OK
    outcome.raise_for_failure()


def test_redirects_are_not_followed(make_client: Callable[..., EventsClient]) -> None:
    # Following a redirect could carry the token to another host.
    recorder = Recorder(httpx.Response(302, headers={"Location": "https://evil.test/steal"}))
    outcome = make_client(recorder).send(make_event())
    assert len(recorder.requests) == 1
    assert not outcome.delivered


# -- retries -----------------------------------------------------------------------------------


def test_retries_send_the_identical_body(
    make_client: Callable[..., EventsClient], sleeps: list[float]
) -> None:
    recorder = Recorder(
        httpx.Response(503),
        httpx.ConnectError("connection refused"),
        httpx.Response(202),
    )
    outcome = make_client(recorder).send(make_event())
    assert outcome.delivered
    assert outcome.attempts == 3
    bodies = {request.content for request in recorder.requests}
    assert bodies == {make_event().body()}
    assert sleeps == [0.5, 1.0]  # backoff with the jitter factor at exactly 1


def test_retry_after_is_honoured(
    make_client: Callable[..., EventsClient], sleeps: list[float]
) -> None:
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(202))
    assert make_client(recorder).send(make_event()).delivered
    assert sleeps == [2.0]


def test_429_waits_for_the_rate_limit_reset(
    make_client: Callable[..., EventsClient], sleeps: list[float]
) -> None:
    reset = {"X-RateLimit-Reset": str(int(NOW) + 3), "X-RateLimit-Remaining": "0"}
    recorder = Recorder(httpx.Response(429, headers=reset), httpx.Response(202))
    assert make_client(recorder).send(make_event()).delivered
    assert sleeps == [pytest.approx(3.125)]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_4xx_are_not_retried(
    make_client: Callable[..., EventsClient], sleeps: list[float], status: int
) -> None:
    recorder = Recorder(httpx.Response(status, json=error_list("x", "no")))
    outcome = make_client(recorder).send(make_event())
    assert outcome.attempts == 1
    assert len(recorder.requests) == 1
    assert sleeps == []


def test_retries_exhausted_report_when_to_try_again(
    make_client: Callable[..., EventsClient], sleeps: list[float]
) -> None:
    reset = {"X-RateLimit-Reset": str(int(NOW) + 20)}
    recorder = Recorder(*[httpx.Response(429, headers=reset) for _ in range(3)])
    outcome = make_client(recorder, max_wait_s=60).send(make_event())
    assert outcome.kind is OutcomeKind.TEMPORARY
    assert outcome.attempts == 3  # the first attempt and --retries 2
    assert len(sleeps) == 2
    assert outcome.retry_after_s == pytest.approx(20)
    assert outcome.exit_code is ExitCode.TEMPORARY


def test_a_wait_longer_than_the_limit_ends_the_retries_at_once(
    make_client: Callable[..., EventsClient], sleeps: list[float]
) -> None:
    recorder = Recorder(httpx.Response(503, headers={"Retry-After": "3600"}))
    outcome = make_client(recorder, max_wait_s=60).send(make_event())
    assert outcome.attempts == 1
    assert sleeps == []
    assert outcome.retry_after_s == 3600


# -- failures ----------------------------------------------------------------------------------


def test_error_list_gives_code_message_and_request_id(
    make_client: Callable[..., EventsClient],
) -> None:
    body = error_list("parameter_invalid", "Cannot have more than 120 active event names", "r-422")
    outcome = make_client(Recorder(httpx.Response(422, json=body))).send(make_event())
    assert outcome.kind is OutcomeKind.INVALID
    assert outcome.status == 422
    assert outcome.request_id == "r-422"
    assert outcome.error() == {
        "code": "parameter_invalid",
        "message": "Cannot have more than 120 active event names",
    }
    with pytest.raises(ApiError) as caught:
        outcome.raise_for_failure()
    assert caught.value.exit_code is ExitCode.DATA
    assert caught.value.code == "parameter_invalid"
    assert caught.value.request_id == "r-422"


def test_several_errors_are_joined(make_client: Callable[..., EventsClient]) -> None:
    body = {
        "type": "error.list",
        "errors": [{"code": "a", "message": "first"}, {"code": "b", "message": "second"}],
    }
    response = httpx.Response(400, json=body, headers={"X-Request-Id": "r-hdr"})
    outcome = make_client(Recorder(response)).send(make_event())
    assert outcome.error() == {"code": "a", "message": "first; second"}
    assert outcome.request_id == "r-hdr"


@pytest.mark.parametrize(
    ("response", "code", "message"),
    [
        (httpx.Response(400, json={"message": "bad thing"}), "http_400", "bad thing"),
        (httpx.Response(400, text="plain   text\nerror"), "http_400", "plain text error"),
        (httpx.Response(400), "http_400", "Bad Request"),
        (httpx.Response(400, json=[1, 2]), "http_400", "[1,2]"),
        (httpx.Response(400, json={"errors": "nope"}), "http_400", '{"errors":"nope"}'),
    ],
)
def test_error_bodies_of_other_shapes(
    make_client: Callable[..., EventsClient], response: httpx.Response, code: str, message: str
) -> None:
    outcome = make_client(Recorder(response)).send(make_event())
    assert outcome.error() == {"code": code, "message": message}


@pytest.mark.parametrize(
    ("status", "kind", "exit_code"),
    [
        (401, OutcomeKind.AUTH, ExitCode.AUTH),
        (403, OutcomeKind.AUTH, ExitCode.AUTH),
        (404, OutcomeKind.NO_CONTACT, ExitCode.NO_CONTACT),
        (400, OutcomeKind.INVALID, ExitCode.DATA),
        (422, OutcomeKind.INVALID, ExitCode.DATA),
        (503, OutcomeKind.TEMPORARY, ExitCode.TEMPORARY),
    ],
)
def test_status_classes(
    make_client: Callable[..., EventsClient], status: int, kind: OutcomeKind, exit_code: ExitCode
) -> None:
    settings = make_settings(retries=0)
    outcome = make_client(Recorder(httpx.Response(status)), settings).send(make_event())
    assert outcome.kind is kind
    assert outcome.exit_code is exit_code


def test_timeout(make_client: Callable[..., EventsClient], sleeps: list[float]) -> None:
    recorder = Recorder(*[httpx.ReadTimeout("slow") for _ in range(3)])
    outcome = make_client(recorder).send(make_event())
    assert outcome.kind is OutcomeKind.TEMPORARY
    assert outcome.status is None
    assert outcome.attempts == 3
    assert outcome.error() == {
        "code": "timeout",
        "message": "request to api.example.test timed out (0.5s)",
    }
    assert len(recorder.requests) == 3
    assert {r.content for r in recorder.requests} == {make_event().body()}


@pytest.mark.parametrize(
    "exception",
    [httpx.ConnectError("refused"), httpx.RemoteProtocolError("Server disconnected")],
)
def test_connection_errors(make_client: Callable[..., EventsClient], exception: Exception) -> None:
    outcome = make_client(Recorder(exception), make_settings(retries=0)).send(make_event())
    assert outcome.status is None
    assert outcome.error() == {
        "code": "connection_error",
        "message": f"cannot reach api.example.test: {exception}",
    }
    assert outcome.exit_code is ExitCode.TEMPORARY


def test_a_token_echoed_in_an_error_is_redacted(
    make_client: Callable[..., EventsClient],
) -> None:
    body = error_list("unauthorized", f"Token {TOKEN} is not valid")
    outcome = make_client(Recorder(httpx.Response(401, json=body))).send(make_event())
    assert TOKEN not in json.dumps(outcome.error())
    assert "Token *** is not valid" in str(outcome.error_message)


@pytest.mark.parametrize("padding", [180, 190, 195, 199])
def test_a_token_cut_by_truncation_of_a_long_error_text_does_not_leak(
    make_client: Callable[..., EventsClient], padding: int
) -> None:
    # The text of a non-JSON error body is shortened; the token must be redacted first,
    # or a cut through the token would leave its beginning in the message.
    text = "x" * padding + f" Bearer {TOKEN} was refused"
    outcome = make_client(Recorder(httpx.Response(401, text=text))).send(make_event())
    assert TOKEN[:10] not in str(outcome.error_message)


def test_a_token_in_a_connection_error_is_redacted(
    make_client: Callable[..., EventsClient],
) -> None:
    recorder = Recorder(httpx.ConnectError(f"proxy said no to {TOKEN}"))
    outcome = make_client(recorder, make_settings(retries=0)).send(make_event())
    assert TOKEN not in str(outcome.error_message)


# -- attempt logs (for --verbose) --------------------------------------------------------------


def test_every_attempt_is_logged_without_the_token(
    make_client: Callable[..., EventsClient],
) -> None:
    logs: list[AttemptLog] = []
    recorder = Recorder(
        httpx.Response(503, headers={"X-RateLimit-Remaining": "7"}),
        httpx.ReadTimeout("slow"),
        httpx.Response(202, headers={"X-RateLimit-Remaining": "5"}),
    )
    make_client(recorder, on_attempt=logs.append).send(make_event())
    assert [(log.attempt, log.status) for log in logs] == [(1, 503), (2, None), (3, 202)]
    assert {log.method for log in logs} == {"POST"}
    assert {log.url for log in logs} == {f"{BASE_URL}/events"}
    assert [log.rate_limit_remaining for log in logs] == [7, None, 5]
    assert logs[1].error == "request to api.example.test timed out (0.5s)"
    assert all(log.elapsed_ms >= 0 for log in logs)
    assert TOKEN not in repr(logs)


def test_settings_repr_hides_the_token() -> None:
    assert TOKEN not in repr(make_settings())
    assert make_settings().headers(redacted=True)["Authorization"] == "Bearer ***"


# -- one connection, reused, against a real socket ---------------------------------------------


def test_retries_reuse_one_connection() -> None:
    with FakeIntercom(expected_token=TOKEN) as fake:
        fake.script(Reply(status=503), Reply(status=503))
        settings = make_settings(base_url=fake.url, retries=2, timeout=5)
        with EventsClient(settings, sleep=lambda _s: None) as client:
            first = client.send(make_event())
            second = client.send(make_event())
        assert first.delivered and first.attempts == 3
        assert second.delivered and second.attempts == 1
        posts = fake.posts()
        assert len(posts) == 4
        assert len({post.client_port for post in posts}) == 1
        assert {post.body for post in posts} == {make_event().body()}
