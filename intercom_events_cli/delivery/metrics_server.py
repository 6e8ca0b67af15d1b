"""The relay's ``/metrics`` endpoint, at a bounded cost to delivery however hard it is hit.

prometheus-client's own server renders the registry for every request, on a thread per
request: eight scrapers in tight loops made the relay answer 600-750 scrapes a second,
and the Python work of answering them (the GIL) took a third of delivery's pace on
PostgreSQL. Here:

- the text is rendered at most once every :data:`RENDER_EVERY_S`, and the same bytes are
  sent to every scrape in between;
- answers go out one at a time, at most one every :data:`MIN_INTERVAL_S`: a storm waits
  its turn (sleeping, which costs nothing) instead of taking CPU from delivery.

Prometheus scrapes every 15 s or so; neither bound is ever felt by it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .timings import METRICS_RENDER_S

RENDER_EVERY_S = METRICS_RENDER_S
MIN_INTERVAL_S = 0.01  # at most 100 answers a second


class ThrottledMetrics:
    """The rendered text (refreshed at most every ``render_every_s``) and the pace of answers."""

    def __init__(
        self,
        render: Callable[[], bytes],
        *,
        render_every_s: float = RENDER_EVERY_S,
        min_interval_s: float = MIN_INTERVAL_S,
    ) -> None:
        self.render = render
        self.render_every_s = render_every_s
        self.min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self._text = b""
        self._rendered_at = -float("inf")
        self._answered_at = -float("inf")

    def body(self) -> bytes:
        """The text to send now (waiting for this answer's turn first)."""
        with self._lock:
            wait = self._answered_at + self.min_interval_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            now = time.monotonic()
            if now - self._rendered_at >= self.render_every_s:
                self._text = self.render()
                self._rendered_at = now
            self._answered_at = time.monotonic()
            return self._text


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def serve(host: str, port: int, metrics: ThrottledMetrics, content_type: str) -> Any:
    """Serve ``/metrics`` (and ``/``) on ``host:port`` from a thread; returns the server.

    Raises :class:`OSError` when the address cannot be bound.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            if self.path.split("?", 1)[0] not in ("/", "/metrics"):
                self.send_error(404)
                return
            body = metrics.body()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape is not news

    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    server_class = type("MetricsServer", (_Server,), {"address_family": family})
    server = server_class((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="ievents-metrics", daemon=True).start()
    return server
