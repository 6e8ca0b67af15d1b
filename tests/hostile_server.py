"""A misbehaving HTTP server on 127.0.0.1, written on raw sockets, one mode per misdeed.

Unlike ``fake_intercom.py`` (a well-behaved Intercom), this server does what a proxy, a
captive portal or a broken API may do: trickle a body, ask for absurd waits, answer with a
gzip bomb or an endless chunked body, echo control characters. Every request is counted
(``requests``, ``event_posts``) so that tests can check nothing was lost or duplicated.

Modes (``HostileServer(mode)``):

- ``trickle``: a 202 with a 100-byte body sent one byte every 0.5 s;
- ``trickle_headers``: a 503's header lines sent one byte every 0.2 s;
- ``retry_after_long``: 429 with ``Retry-After: 3600``;
- ``reset_far``: 202 with ``X-RateLimit-Remaining: 0`` and a reset one day ahead;
- ``reset_ms``: 429, then 202, with ``X-RateLimit-Reset`` in milliseconds;
- ``gzip_bomb``: 500 whose gzip body expands to 256 MiB;
- ``huge_chunked``: 500 with a chunked body of up to 4 GiB;
- ``control_chars``: ``/me`` names with ANSI escapes, CR and NUL; errors the same;
- ``hang``: reads the request, never answers.
"""

from __future__ import annotations

import functools
import json
import socket
import threading
import time
import zlib
from typing import Any

MODES = (
    "trickle",
    "trickle_headers",
    "retry_after_long",
    "reset_far",
    "reset_ms",
    "gzip_bomb",
    "huge_chunked",
    "control_chars",
    "hang",
)

NASTY = "Evil\x1b[31mRED\x1b[0m\rOVERWRITTEN\x00nul\x07bell\x9bcsi"


@functools.cache
def _gzip_bomb(size: int) -> bytes:
    """A gzip stream of ``size`` zero bytes (about size/1000 bytes long), made once."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b"\0" * (1 << 20)
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    parts.append(compressor.flush())
    return b"".join(parts)


class HostileServer:
    """The server; use as a context manager. ``url`` is its base URL."""

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.requests = 0
        self.event_posts: list[Any] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._stopping = threading.Event()
        self._bomb = _gzip_bomb(256 << 20) if mode == "gzip_bomb" else b""
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        """The base URL to give ievents."""
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                while True:
                    request = _read_request(conn)
                    if request is None:
                        return
                    method, path, body = request
                    with self._lock:
                        self.requests += 1
                        number = self.requests
                        if method == "POST" and path.startswith("/events"):
                            self.event_posts.append(json.loads(body))
                    if not self._answer(conn, method, path, number):
                        return
            except OSError:
                return

    def _answer(self, conn: socket.socket, method: str, path: str, number: int) -> bool:
        """Answer one request; False when the connection is done."""
        mode = self.mode
        if mode == "trickle":
            conn.sendall(_head(202, {"Content-Length": "100"}))
            for _ in range(100):
                if self._stopping.is_set():
                    return False
                conn.sendall(b" ")
                # A byte every 3 s: 300 s for the body. Stopping the server ends it.
                self._stopping.wait(3)
            return True
        if mode == "trickle_headers":
            for byte in _head(503, {"X-Padding": "p" * 200, "Content-Length": "0"}):
                if self._stopping.is_set():
                    return False
                conn.sendall(bytes([byte]))
                # A byte a second: minutes for the head. Stopping the server ends it.
                self._stopping.wait(1)
            return True
        if mode == "retry_after_long":
            conn.sendall(_head(429, {"Retry-After": "3600", "Content-Length": "0"}))
            return True
        if mode == "reset_far":
            reset = str(int(time.time()) + 86400)
            headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "100"}
            headers |= {"X-RateLimit-Reset": reset, "Content-Length": "0"}
            conn.sendall(_head(202, headers))
            return True
        if mode == "reset_ms":
            reset_ms = str(int((time.time() + 1) * 1000))
            status = 429 if number == 1 else 202
            headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "100"}
            headers |= {"X-RateLimit-Reset": reset_ms, "Content-Length": "0"}
            conn.sendall(_head(status, headers))
            return True
        if mode == "gzip_bomb":
            headers = {"Content-Encoding": "gzip", "Content-Length": str(len(self._bomb))}
            headers["Content-Type"] = "application/json"
            conn.sendall(_head(500, headers) + self._bomb)
            return True
        if mode == "huge_chunked":
            conn.sendall(_head(500, {"Transfer-Encoding": "chunked"}))
            chunk = b"%x\r\n%s\r\n" % (1 << 20, b"x" * (1 << 20))
            for _ in range(4096):  # 4 GiB unless the client hangs up, as it should
                conn.sendall(chunk)
            conn.sendall(b"0\r\n\r\n")
            return True
        if mode == "hang":
            self._stopping.wait(120)
            return False
        # control_chars
        if path.startswith("/me"):
            body = json.dumps({"type": "admin", "name": NASTY, "email": "a@example.com"})
            status = 200
        else:
            body = f"<html>{NASTY}</html>"
            status = 400
        data = body.encode()
        conn.sendall(_head(status, {"Content-Length": str(len(data))}) + data)
        return True


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_request(conn: socket.socket) -> tuple[str, str, bytes] | None:
    """(method, path, body) of the next request on ``conn``; None at its end."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        rest += chunk
    return method, path, rest[:length]
