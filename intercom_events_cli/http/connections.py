"""How the client connects: its TLS context, and a shelf of one-connection transports.

httpcore's connection pool looks at every connection it holds, twice per request: is it
closed, expired (a ``poll()`` on its socket), idle, and how many others are idle. With
the 16 or 32 sender threads of ``flush`` and ``batch`` that is hundreds of calls and
dozens of system calls per event, more CPU than the request itself (3,000 events at
``-c 32`` on loopback: 5.9 s of CPU, 3.4 s at ``-c 8``).

:class:`ConnectionShelf` is the client's transport instead: a stack of idle
single-connection ``httpx.HTTPTransport`` objects. A request takes the one used last (its
connection is the most likely to be alive), and puts it back when its response is
closed. Taking and putting back cost the same whatever the concurrency. Each one still
handles its own connection as httpx does (keep-alive, a dropped connection reconnected on
its next request, the deadline backend of :mod:`.transport`).

Imported only by :mod:`intercom_events_cli.http.client`, once httpx is needed.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx

from .transport import bound_by_deadline

__all__ = ["ConnectionShelf", "connection_shelf", "tls_verification"]


def tls_verification(base_url: str) -> ssl.SSLContext:
    """What the client verifies TLS with: the CA store for https, nothing trusted for http.

    The https context is httpx's (certifi's store, or ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR``), made once per client and shared by all its connections: loading
    the store costs about 15 ms of CPU. A plain-http base URL (a local relay, a test
    server) never makes a TLS handshake: redirects are not followed and a proxy's own TLS
    has its own context. Should one happen all the same, a context with no CA
    certificate, certificates required and host names checked fails it: nothing is ever
    trusted unverified.
    """
    if urlsplit(base_url).scheme != "http":
        return httpx.create_ssl_context(verify=True, trust_env=True)
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def connection_shelf(verify: ssl.SSLContext, max_connections: int) -> ConnectionShelf:
    """The client's transport: one connection per request in flight, each bounded by the
    attempt's deadline (:mod:`.transport`)."""

    def one_connection() -> httpx.BaseTransport:
        transport = httpx.HTTPTransport(
            verify=verify, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1)
        )
        bound_by_deadline(transport)
        return transport

    return ConnectionShelf(one_connection, max_connections=max_connections)


class _ReleasingStream(httpx.SyncByteStream):
    """A response body that puts its transport back on the shelf when it is closed."""

    def __init__(self, inner: httpx.SyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


class ConnectionShelf(httpx.BaseTransport):
    """At most ``max_connections`` one-connection transports, made by ``make_transport``.

    When all of them are busy a request waits for one, at most its pool timeout, as
    httpx's own pool does (then ``httpx.PoolTimeout``). An idle one unused for longer than
    ``keepalive_expiry`` is closed: its connection would not be reused anyway.
    """

    def __init__(
        self,
        make_transport: Callable[[], httpx.BaseTransport],
        *,
        max_connections: int,
        keepalive_expiry: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make_transport = make_transport
        self._max = max(1, max_connections)
        self._expiry = keepalive_expiry
        self._clock = clock
        self._idle: list[tuple[httpx.BaseTransport, float]] = []  # the last put back on top
        self._busy: set[httpx.BaseTransport] = set()
        self._changed = threading.Condition()
        self._closed = False

    def sizes(self) -> tuple[int, int]:
        """How many connections are in use and how many idle, now."""
        with self._changed:
            return len(self._busy), len(self._idle)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        transport = self._take(request)
        try:
            response = transport.handle_request(request)
        except BaseException:
            self._put_back(transport)
            raise
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _ReleasingStream(response.stream, lambda: self._put_back(transport))
        return response

    def close(self) -> None:
        with self._changed:
            self._closed = True
            transports = [transport for transport, _ in self._idle] + list(self._busy)
            self._idle.clear()
            self._busy.clear()
            self._changed.notify_all()
        for transport in transports:
            transport.close()

    def _take(self, request: httpx.Request) -> httpx.BaseTransport:
        timeout = request.extensions.get("timeout", {}).get("pool")
        deadline = None if timeout is None else self._clock() + timeout
        expired: list[httpx.BaseTransport] = []
        try:
            with self._changed:
                while True:
                    if self._closed:
                        # As httpx's Client does when used after close(): a caller's bug.
                        raise RuntimeError("Cannot send a request: the connections are closed.")
                    expired += self._drop_expired()
                    if self._idle:
                        transport, _ = self._idle.pop()
                        break
                    if len(self._busy) < self._max:
                        transport = self._make_transport()
                        break
                    left = None if deadline is None else deadline - self._clock()
                    if left is not None and left <= 0:
                        raise httpx.PoolTimeout("no connection came free in time")
                    self._changed.wait(left)
                self._busy.add(transport)
            return transport
        finally:
            for old in expired:
                old.close()

    def _drop_expired(self) -> list[httpx.BaseTransport]:
        """Remove the idle transports unused for too long (the bottom of the stack)."""
        oldest_kept = self._clock() - self._expiry
        count = 0
        while count < len(self._idle) and self._idle[count][1] < oldest_kept:
            count += 1
        expired = [transport for transport, _ in self._idle[:count]]
        del self._idle[:count]
        return expired

    def _put_back(self, transport: httpx.BaseTransport) -> None:
        with self._changed:
            self._busy.discard(transport)
            if not self._closed:
                self._idle.append((transport, self._clock()))
                self._changed.notify()
                return
        transport.close()
