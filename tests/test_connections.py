"""ConnectionShelf (connections.py): the client's transport, one connection per request in
flight, against the real fake Intercom on 127.0.0.1 (connections told apart by the
client's port the server saw)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from conftest import TOKEN
from fake_intercom import FakeIntercom

from intercom_events_cli.config.redaction import register_secret
from intercom_events_cli.config.settings import Settings
from intercom_events_cli.event import Event
from intercom_events_cli.http.client import EVENTS_PATH, EventsClient
from intercom_events_cli.http.connections import ConnectionShelf


@pytest.fixture(autouse=True)
def _register_token() -> None:
    register_secret(TOKEN)


def client_for(fake: FakeIntercom, **kwargs: object) -> EventsClient:
    settings = Settings(token=TOKEN, base_url=fake.url, retries=0, timeout=5.0)
    return EventsClient(settings, **kwargs)  # type: ignore[arg-type]


def ports(fake: FakeIntercom) -> set[int]:
    return {post.client_port for post in fake.posts()}


class Counting:
    """Makes real one-connection transports and counts them and their closes."""

    def __init__(self) -> None:
        self.made: list[httpx.HTTPTransport] = []
        self.closed = 0

    def __call__(self) -> httpx.BaseTransport:
        counter = self
        made = httpx.HTTPTransport()

        class Closing(httpx.BaseTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                return made.handle_request(request)

            def close(self) -> None:
                counter.closed += 1
                made.close()

        self.made.append(made)
        return Closing()


@pytest.fixture
def counting() -> Iterator[Counting]:
    yield Counting()


def shelf_of(client: EventsClient) -> ConnectionShelf:
    transport = client._http._transport
    assert isinstance(transport, ConnectionShelf)  # the client's own transport
    return transport


def test_one_thread_reuses_one_connection(fake: FakeIntercom) -> None:
    with client_for(fake) as client:
        for n in range(5):
            assert client.send(Event.create("reuse", user_id=str(n))).delivered
            assert shelf_of(client).sizes() == (0, 1)  # given back after each answer
    assert len(fake.posts()) == 5 and len(ports(fake)) == 1


def test_threads_at_once_use_no_more_connections_than_the_limit(fake: FakeIntercom) -> None:
    fake.latency = 0.2
    with client_for(fake, max_connections=3) as client:
        results: list[bool] = []

        def send(n: int) -> None:
            results.append(client.send(Event.create("many", user_id=str(n))).delivered)

        threads = [threading.Thread(target=send, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert shelf_of(client).sizes()[0] == 0 and shelf_of(client).sizes()[1] <= 3
    assert results == [True] * 12
    assert len(fake.posts()) == 12
    # Waiting for a free connection, not opening a fourth; and reusing them (12 requests
    # with a 0.2 s answer: at least two were on the wire at once).
    assert 2 <= len(ports(fake)) <= 3


def test_a_request_waits_for_a_free_connection_at_most_its_pool_timeout(
    fake: FakeIntercom, counting: Counting
) -> None:
    shelf = ConnectionShelf(counting, max_connections=1)
    with httpx.Client(base_url=fake.url, transport=shelf) as http:
        held = http.send(http.build_request("GET", "/me"), stream=True)
        with pytest.raises(httpx.PoolTimeout):
            http.get("/me", timeout=httpx.Timeout(5.0, pool=0.2))
        held.close()  # back on the shelf: the next request takes it
        assert http.get("/me").status_code in (200, 401)
    assert len(counting.made) == 1


def test_a_connection_idle_past_the_keepalive_expiry_is_closed_not_reused(
    fake: FakeIntercom, counting: Counting
) -> None:
    now = [100.0]
    shelf = ConnectionShelf(counting, max_connections=4, keepalive_expiry=5.0, clock=lambda: now[0])
    with httpx.Client(base_url=fake.url, transport=shelf) as http:
        http.get("/me")
        now[0] += 4.9
        http.get("/me")
        assert (len(counting.made), counting.closed) == (1, 0)
        now[0] += 5.1
        http.get("/me")
        assert (len(counting.made), counting.closed) == (2, 1)
    assert counting.closed == 2  # the client's close closed the last one
    assert len({r.client_port for r in fake.requests}) == 2


def test_closing_closes_busy_and_idle_connections_and_refuses_new_requests(
    fake: FakeIntercom, counting: Counting
) -> None:
    shelf = ConnectionShelf(counting, max_connections=4)
    http = httpx.Client(base_url=fake.url, transport=shelf)
    busy = http.send(http.build_request("GET", "/me"), stream=True)
    http.get("/me")  # a second connection, idle again after this
    assert len(counting.made) == 2
    http.close()
    assert counting.closed == 2
    busy.close()  # a response closed after the client: nothing is shelved again
    assert counting.closed == 3  # closing twice is harmless for a transport
    with pytest.raises(RuntimeError):
        shelf.handle_request(httpx.Request("GET", f"{fake.url}/me"))


def test_a_failed_request_gives_its_connection_back(counting: Counting) -> None:
    shelf = ConnectionShelf(counting, max_connections=1)
    with httpx.Client(transport=shelf) as http:
        for _ in range(3):  # with the connection lost, the second would wait for ever
            with pytest.raises(httpx.ConnectError):
                http.get("http://127.0.0.1:9/", timeout=httpx.Timeout(2.0, pool=1.0))
    assert len(counting.made) == 1


def test_events_go_through_the_shelf_and_the_body_is_read(fake: FakeIntercom) -> None:
    with client_for(fake) as client:
        exchange = client.request("POST", EVENTS_PATH, content=b"{}", expect=frozenset({202}))
        # The fake answers an event without a name 400 with an error list: the body was
        # read through the shelf's stream, and the connection given back.
        assert exchange.status == 400 and exchange.error_message
        assert shelf_of(client).sizes() == (0, 1)
