"""A fake Intercom REST API server for tests and benchmarks (standard library only).

Library use::

    with FakeIntercom() as fake:
        fake.script(api_error(429, "rate_limit_exceeded", "slow down"), Reply(status=202))
        ...  # point the client at fake.url
        assert fake.events_posted() == [...]

Standalone use (benchmarks)::

    python tests/fake_intercom.py --port 0 --latency 0.05 --rate-limit 200 --window 2

prints exactly one line ``READY http://127.0.0.1:PORT`` on stdout once listening and serves
until SIGTERM/SIGINT.  ``--stats-file PATH`` writes ``{"posts", "accepted", "count_429"}`` JSON
on shutdown.

Scripted replies (``fake.script``) take precedence over everything else: they bypass the
authorization check, validation and the rate limiter, and never store events.  Without a
matching scripted reply the server behaves like a small subset of the real API (see
``FakeIntercom._default``).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import signal
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

__all__ = ["FakeIntercom", "RecordedRequest", "Reply", "api_error", "main"]

JSONBody = dict[str, Any] | list[Any] | str | bytes | None

_NO_BODY_STATUSES = frozenset({204, 304})
_CONTACT_KEYS = ("user_id", "email", "id")


@dataclass
class Reply:
    """A scripted answer.  ``path``/``method`` (if set) restrict which requests consume it.

    A reply without a path never answers ``GET /me``: flush and the relay ask it once per
    new token (to learn its workspace) before any event, and a script of event answers
    must not be spent on that. A reply for ``GET /me`` says ``path="/me"``.
    """

    status: int = 202
    body: JSONBody = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    path: str | None = None
    method: str | None = None
    # An answer held until the test sets this event (or the fake stops), after ``delay``.
    hold: threading.Event | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.path is None and path.rstrip("/") == "/me":
            return False
        if self.path is not None and self.path != path:
            return False
        return self.method is None or self.method.upper() == method.upper()


@dataclass
class RecordedRequest:
    """One request as seen by the server.  ``status`` is the answer (None: dropped/pending)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    time: float
    client_port: int
    status: int | None = None

    def json(self) -> Any:
        """The parsed JSON body, or None when the body is empty or not valid JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def api_error(
    status: int,
    code: str,
    message: str,
    request_id: str = "req-123",
    **reply_kwargs: Any,
) -> Reply:
    """A Reply carrying Intercom's ``error.list`` body (extra kwargs go to ``Reply``)."""
    return Reply(status=status, body=_error_body(code, message, request_id), **reply_kwargs)


def _error_body(code: str, message: str, request_id: str = "req-123") -> dict[str, Any]:
    return {
        "type": "error.list",
        "request_id": request_id,
        "errors": [{"code": code, "message": message}],
    }


def _iso8601(ts: int | float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # StreamRequestHandler sets TCP_NODELAY in setup()
    server: FakeIntercom

    def setup(self) -> None:
        super().setup()
        self.server._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # -- internals ---------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)  # CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        fake = self.server
        arrived = time.monotonic()
        body = self._read_body()
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        rec = RecordedRequest(
            method=self.command,
            path=split.path or "/",
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            time=arrived,
            client_port=int(self.client_address[1]),
        )
        fake._record(rec)

        reply = fake._take_reply(rec.method, rec.path)
        if reply is None and rec.method == "POST" and rec.path.rstrip("/") == "/events":
            reply = fake._fault()
        latency = fake.me_latency if rec.path.rstrip("/") == "/me" else fake.latency
        if reply is not None:
            fake._sleep(latency + reply.delay)
            if reply.hold is not None:
                fake._hold(reply.hold)
            if reply.drop:
                self._drop()
                return
            status, payload, headers = reply.status, reply.body, dict(reply.headers)
        else:
            fake._sleep(latency)
            status, payload, headers = fake._default(rec, split.query)
        self._send(rec, status, payload, headers)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()

    def _send(
        self, rec: RecordedRequest, status: int, payload: JSONBody, headers: dict[str, str]
    ) -> None:
        content_type: str | None = None
        if payload is None:
            data = b""
        elif isinstance(payload, bytes):
            data, content_type = payload, "application/octet-stream"
        elif isinstance(payload, str):
            data, content_type = payload.encode(), "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(payload).encode(), "application/json; charset=utf-8"
        lowered = {k.lower() for k in headers}
        if content_type is not None and "content-type" not in lowered:
            headers["Content-Type"] = content_type
        no_body = status in _NO_BODY_STATUSES or status < 200
        if no_body:
            data = b""
        rec.status = status
        self.server._count_status(status)
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        if not no_body:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)


class FakeIntercom(ThreadingHTTPServer):
    """Threaded fake Intercom API on 127.0.0.1.  Use as a context manager or start()/stop().

    Configuration attributes (change any time): ``expected_token`` (None: any bearer token
    accepted), ``unknown_contacts`` (user_id/email/id values answered 404), ``latency``
    (seconds added before every answer but GET /me's), ``me_latency`` (the same for GET /me:
    flush, check and the relay ask it once at their start, so a test that slows deliveries
    does not also stall every start), ``app_region`` (GET /me), ``next_page_override``
    (replaces ``pages.next`` of the first GET /events page), ``workspaces`` (token ->
    workspace id: when not empty only these tokens are accepted, and GET /me answers each
    one's ``app.id_code``; two tokens of one workspace model a rotation), ``revoked``
    (tokens answered 401 even when listed in ``workspaces``).
    """

    daemon_threads = True
    block_on_close = False  # never wait for (possibly sleeping) handler threads on close
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        expected_token: str | None = None,
        latency: float = 0.0,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.host = host
        self.expected_token = expected_token
        self.latency = latency
        self.me_latency = 0.0
        self.unknown_contacts: set[str] = set()
        self.app_region = "US"
        self.workspaces: dict[str, str] = {}
        self.revoked: set[str] = set()
        self.next_page_override: str | None = None
        self.requests: list[RecordedRequest] = []
        self.count_429 = 0
        self.rate_limit: int | None = None
        self.rate_window: float = 10.0
        # The clock of the rate-limit windows: a test may set its own (no waiting for one).
        self.clock: Callable[[], float] = time.time
        self._lock = threading.Lock()
        self._script: list[Reply] = []
        self._events: list[dict[str, Any]] = []
        self._event_seq = 0
        self._window_start = 0.0
        self._window_count = 0
        self._conns: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._faults: tuple[float, float, random.Random, str | None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def server_bind(self) -> None:
        # HTTPServer.server_bind() calls socket.getfqdn(), which can stall on a DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeIntercom:
        if self._thread is None:
            self._stopped.clear()
            self._thread = threading.Thread(
                target=self.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fake-intercom-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections and close the listening socket."""
        self._stopped.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()

    def __enter__(self) -> FakeIntercom:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ValueError)):
            return  # client went away, socket closed under us, garbage request: stay quiet
        super().handle_error(request, client_address)

    # -- scripting and inspection --------------------------------------------------------------

    def script(self, *responses: Reply) -> None:
        """Queue replies (FIFO); each is consumed by the first matching request."""
        with self._lock:
            self._script.extend(responses)

    def script_repeat(self, reply: Reply, times: int) -> None:
        self.script(*(replace(reply, headers=dict(reply.headers)) for _ in range(times)))

    def clear_script(self) -> None:
        """Drop the scripted replies not consumed yet (the defaults answer from now)."""
        with self._lock:
            self._script.clear()

    def pending_script(self) -> list[Reply]:
        """Scripted replies not consumed yet."""
        with self._lock:
            return list(self._script)

    def set_rate_limit(self, limit: int | None, window_s: float = 10.0) -> None:
        """Fixed-window limit on POST /events (windows aligned to multiples of window_s)."""
        with self._lock:
            self.rate_limit = limit
            self.rate_window = float(window_s)
            self._window_start = 0.0
            self._window_count = 0

    def posts(self) -> list[RecordedRequest]:
        """All POST /events requests, whatever the answer."""
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path == "/events"]

    def events_posted(self) -> list[Any]:
        """Parsed JSON bodies of POST /events requests that were answered 202."""
        out = []
        for rec in self.posts():
            if rec.status == 202:
                parsed = rec.json()
                if parsed is not None:
                    out.append(parsed)
        return out

    def events_for(self, workspace_id: str) -> list[Any]:
        """Bodies answered 202 to a token of ``workspace_id`` (see ``workspaces``)."""
        out = []
        for rec in self.posts():
            token = rec.headers.get("authorization", "").partition(" ")[2].strip()
            if rec.status == 202 and self.workspaces.get(token) == workspace_id:
                out.append(rec.json())
        return out

    def stored_events(self) -> list[dict[str, Any]]:
        """Events accepted by the default POST /events handler (oldest first)."""
        with self._lock:
            return [dict(e) for e in self._events]

    def stats(self) -> dict[str, int]:
        posts = self.posts()
        return {
            "posts": len(posts),
            "accepted": sum(1 for r in posts if r.status == 202),
            "count_429": self.count_429,
        }

    def reset(self) -> None:
        """Forget requests, scripted replies, stored events, 429 count and rate-window state.

        Configuration (expected_token, unknown_contacts, latency, rate limit...) is kept.
        """
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self._events.clear()
            self.count_429 = 0
            self._window_start = 0.0
            self._window_count = 0

    # -- internals used by the handler -------------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)

    def _count_status(self, status: int) -> None:
        if status == 429:
            with self._lock:
                self.count_429 += 1

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopped.wait(seconds)

    def _hold(self, gate: threading.Event) -> None:
        while not gate.wait(0.05) and not self._stopped.is_set():
            pass

    def set_faults(
        self, error_rate: float, drop_rate: float, seed: int = 0, retry_after: str | None = None
    ) -> None:
        """Answer this share of POST /events with a random 5xx, and drop that share
        (before anything is stored); a fixed seed gives the same sequence of draws.
        ``retry_after`` goes with each 5xx as its ``Retry-After`` (a dropped connection
        has none, so the client's own backoff still runs for those)."""
        self._faults = (error_rate, drop_rate, random.Random(seed), retry_after)

    def _fault(self) -> Reply | None:
        with self._lock:
            if self._faults is None:
                return None
            error_rate, drop_rate, draw, retry_after = self._faults
            roll = draw.random()
            status = draw.choice((500, 501, 502, 503, 504, 505, 507))
        if roll < error_rate:
            headers = {} if retry_after is None else {"Retry-After": retry_after}
            return Reply(
                status=status, body=_error_body("server_error", "try again"), headers=headers
            )
        if roll < error_rate + drop_rate:
            return Reply(drop=True)
        return None

    def _take_reply(self, method: str, path: str) -> Reply | None:
        with self._lock:
            for i, reply in enumerate(self._script):
                if reply.matches(method, path):
                    return self._script.pop(i)
        return None

    def _default(
        self, rec: RecordedRequest, raw_query: str
    ) -> tuple[int, JSONBody, dict[str, str]]:
        auth = rec.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return 401, _error_body("unauthorized", "Access Token Required"), {}
        if self.expected_token is not None and token != self.expected_token:
            return 401, _error_body("unauthorized", "Access Token Invalid"), {}
        if token in self.revoked or (self.workspaces and token not in self.workspaces):
            return 401, _error_body("unauthorized", "Access Token Invalid"), {}

        route = (rec.method, rec.path.rstrip("/") or "/")
        if route == ("POST", "/events"):
            return self._post_event(rec)
        if route == ("POST", "/events/summaries"):
            return 200, {}, {}
        if route == ("GET", "/events"):
            status, body = self._list_events(rec.query, raw_query)
            return status, body, {}
        if route == ("GET", "/me"):
            return 200, self._me(self.workspaces.get(token, "abc123xy")), {}
        return 404, _error_body("not_found", "Resource Not Found"), {}

    def _me(self, workspace_id: str) -> dict[str, Any]:
        return {
            "type": "admin",
            "id": "991267464",
            "email": "ada@example.org",
            "name": "Ada Lovelace",
            "email_verified": True,
            "app": {
                "type": "app",
                "id_code": workspace_id,
                "name": "Example App",
                "region": self.app_region,
                "timezone": "Europe/London",
                "created_at": 1671465577,
                "identity_verification": False,
            },
            "avatar": {"type": "avatar", "image_url": None},
            "has_inbox_seat": True,
        }

    def _rate_check(self) -> tuple[bool, dict[str, str]]:
        """Count one POST /events; return (allowed, rate-limit headers)."""
        now = self.clock()
        with self._lock:
            limit, window = self.rate_limit, self.rate_window
            if limit is None:
                headers = {
                    "X-RateLimit-Limit": "10000",
                    "X-RateLimit-Remaining": "9999",
                    "X-RateLimit-Reset": str(math.ceil(now + 10)),
                }
                return True, headers
            start = math.floor(now / window) * window
            if start != self._window_start:
                self._window_start, self._window_count = start, 0
            self._window_count += 1
            allowed = self._window_count <= limit
            remaining = max(0, limit - self._window_count)
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(math.ceil(start + window)),
        }
        return allowed, headers

    def _post_event(self, rec: RecordedRequest) -> tuple[int, JSONBody, dict[str, str]]:
        allowed, headers = self._rate_check()
        if not allowed:
            window = f"{self.rate_window:g}"
            msg = f"Exceeded rate limit of {self.rate_limit} in {window} seconds"
            return 429, _error_body("rate_limit_exceeded", msg), headers

        payload = rec.json()
        problem: str | None = None
        if not isinstance(payload, dict):
            problem = "Request body must be a JSON object"
        elif not isinstance(payload.get("event_name"), str) or not payload["event_name"]:
            problem = "event_name is required"
        elif not isinstance(payload.get("created_at"), int) or isinstance(
            payload["created_at"], bool
        ):
            problem = "created_at must be an integer timestamp"
        elif not any(payload.get(k) not in (None, "") for k in _CONTACT_KEYS):
            problem = "One of user_id, email or id is required"
        elif "metadata" in payload and not isinstance(payload["metadata"], (dict, type(None))):
            problem = "metadata must be an object"
        if problem is not None:
            return 400, _error_body("parameter_invalid", problem), headers
        assert isinstance(payload, dict)

        contacts = {str(payload[k]) for k in _CONTACT_KEYS if payload.get(k) not in (None, "")}
        with self._lock:
            unknown = bool(contacts & {str(c) for c in self.unknown_contacts})
            if not unknown:
                self._event_seq += 1
                stored = dict(payload)
                stored["_event_id"] = f"{0x5F0000000000 + self._event_seq:x}"
                stored["_seq"] = self._event_seq
                self._events.append(stored)
        if unknown:
            return 404, _error_body("not_found", "User Not Found"), headers
        return 202, None, headers

    def _list_events(self, query: dict[str, str], raw_query: str) -> tuple[int, JSONBody]:
        if query.get("type") != "user":
            return 400, _error_body("parameter_invalid", "type must be 'user'")
        key_map = {"user_id": "user_id", "email": "email", "intercom_user_id": "id"}
        selector = next(((q, f) for q, f in key_map.items() if query.get(q)), None)
        if selector is None:
            msg = "One of user_id, email or intercom_user_id is required"
            return 400, _error_body("parameter_invalid", msg)
        qkey, fkey = selector
        wanted = query[qkey]
        try:
            per_page = int(query.get("per_page", "50"))
            page = int(query.get("page", "1"))
        except ValueError:
            return 400, _error_body("parameter_invalid", "per_page and page must be integers")
        if per_page < 1 or page < 1:
            return 400, _error_body("parameter_invalid", "per_page and page must be positive")

        with self._lock:
            matching = [dict(e) for e in self._events if str(e.get(fkey, "")) == wanted]
        matching.sort(key=lambda e: (e["created_at"], e["_seq"]), reverse=True)
        first = matching[0] if matching else {}
        ident = {
            "email": first.get("email", query.get("email")),
            "intercom_user_id": first.get("id", query.get("intercom_user_id")),
            "user_id": first.get("user_id", query.get("user_id")),
        }

        if query.get("summary", "").lower() == "true":
            return 200, {"type": "event.summary", **ident, "events": _summarise(matching)}

        chunk = matching[(page - 1) * per_page : page * per_page]
        pages: dict[str, Any] = {}
        if page * per_page < len(matching):
            params = [(k, v) for k, v in parse_qsl(raw_query, keep_blank_values=True)]
            params = [(k, v) for k, v in params if k != "page"] + [("page", str(page + 1))]
            pages["next"] = f"{self.url}/events?{urlencode(params)}"
        if page == 1 and self.next_page_override is not None:
            pages["next"] = self.next_page_override
        events = [
            {
                "type": "event",
                "id": e["_event_id"],
                "event_name": e["event_name"],
                "created_at": e["created_at"],
                "user_id": e.get("user_id"),
                "email": e.get("email"),
                "intercom_user_id": e.get("id", query.get("intercom_user_id")),
                "metadata": e.get("metadata") or {},
            }
            for e in chunk
        ]
        return 200, {"type": "event.list", "events": events, "pages": pages}


def _summarise(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[str, list[int]] = {}
    for e in events:
        groups.setdefault(e["event_name"], []).append(e["created_at"])
    summary = [
        {
            "name": name,
            "first": _iso8601(min(times)),
            "last": _iso8601(max(times)),
            "count": len(times),
            "description": "",
        }
        for name, times in groups.items()
    ]
    summary.sort(key=lambda s: (s["last"], s["name"]), reverse=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake Intercom REST API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--rate-limit", type=int, default=None, help="POST /events per window")
    parser.add_argument("--window", type=float, default=10.0, help="rate-limit window (s)")
    parser.add_argument("--token", default=None, help="only accept this bearer token")
    parser.add_argument("--stats-file", type=Path, default=None)
    args = parser.parse_args(argv)

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    fake = FakeIntercom(args.port, host=args.host, expected_token=args.token, latency=args.latency)
    if args.rate_limit is not None:
        fake.set_rate_limit(args.rate_limit, args.window)
    fake.start()
    print(f"READY {fake.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        fake.stop()
        if args.stats_file is not None:
            args.stats_file.write_text(json.dumps(fake.stats()) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
