"""Transport-level bounds: one deadline per HTTP attempt, and a cap on any response body.

httpx's timeouts are per socket operation: a server that sends one byte every half
second never trips a 2 s read timeout and can keep an attempt busy for minutes. Here
every socket operation of an attempt (connect, TLS handshake, writes, reading the
headers and the body) is given at most what is left of one deadline for the whole
attempt, by wrapping httpcore's network backend. The deadline is per thread, set by
:func:`attempt_deadline` around one request.

Response bodies are read raw and decompressed here, never by httpx, at most
:data:`MAX_BODY_BYTES` of decoded bytes: Intercom's error JSON is a few hundred bytes,
and a gzip bomb or an endless chunked answer must not cost more than that cap.

Both need httpx's and httpcore's internals: three private attributes, reached in one
function, :func:`private`, which raises :class:`~.errors.IncompatibleHttpLibrary` (naming
both versions) when an upgrade has taken one away.

Imported only by :mod:`intercom_events_cli.http.client` and :mod:`.connections`, once httpx is
needed.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpcore

from ..errors import IncompatibleHttpLibrary

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = [
    "HTTPCORE_REQUIREMENT",
    "HTTPX_REQUIREMENT",
    "MAX_BODY_BYTES",
    "attempt_deadline",
    "bound_by_deadline",
    "install_deadlines",
    "private",
    "read_bounded",
    "replace_transport",
]

# The releases ievents is tested with (pyproject.toml declares the same; a test checks
# it): the private attributes below are not part of either library's API, so a minor
# release may move them. The HTTP tests ran on httpx 0.27.0, 0.28.1 and 0.29.0, httpcore
# 1.0.0 and 1.0.9.
HTTPX_REQUIREMENT = "httpx>=0.27,<0.30"
HTTPCORE_REQUIREMENT = "httpcore>=1.0,<2"

# The most decoded bytes of a response body ievents reads (64 KiB): far more than any
# Intercom answer, small enough that a hostile answer costs nothing. The rest is dropped.
MAX_BODY_BYTES = 64 * 1024

_local = threading.local()


@contextmanager
def attempt_deadline(seconds: float) -> Iterator[None]:
    """Every socket operation on this thread, within the block, ends by ``seconds`` from now."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = time.monotonic() + seconds
    try:
        yield
    finally:
        _local.deadline = previous


def _left(timeout: float | None, expired: type[Exception]) -> float | None:
    """The socket timeout to use now: the smaller of ``timeout`` and the deadline's rest."""
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation is bounded by the thread's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's socket backend, its connections bounded by the thread's deadline."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host,
            port,
            _left(timeout, httpcore.ConnectTimeout),
            local_address=local_address,
            socket_options=socket_options,
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(
            path, _left(timeout, httpcore.ConnectTimeout), socket_options=socket_options
        )
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


# -- httpx's and httpcore's internals: reached here, in private(), and nowhere else ----------
# httpx.Client._transport     the transport a client made itself (proxies excepted)
# httpx.Client._mounts        the transports of the proxies in the environment
# httpx.HTTPTransport._pool   the httpcore connection pool of a transport
# httpcore.ConnectionPool._network_backend   where that pool opens its sockets
_KEEP = object()


def private(owner: object, name: str, replacement: object = _KEEP) -> Any:
    """``owner``'s private attribute ``name`` (replaced by ``replacement`` when given: the
    value before is returned): the one place ievents reaches inside httpx or httpcore.

    Raises :class:`~.errors.IncompatibleHttpLibrary` when the attribute is not there (an
    httpx or httpcore release that ievents was not tested with), naming both versions.
    """
    try:
        value = getattr(owner, name)
    except AttributeError:
        import httpx

        raise IncompatibleHttpLibrary(
            f"this ievents cannot work with httpx {httpx.__version__} and httpcore "
            f"{httpcore.__version__}: {type(owner).__module__}.{type(owner).__qualname__} "
            f"has no {name} any more",
            hint=f"install the versions it was tested with: pip install "
            f"'{HTTPX_REQUIREMENT}' '{HTTPCORE_REQUIREMENT}'",
        ) from None
    if replacement is not _KEEP:
        setattr(owner, name, replacement)
    return value


def replace_transport(client: httpx.Client, transport: httpx.BaseTransport) -> httpx.BaseTransport:
    """Put ``transport`` in place of the one ``client`` made (which is returned); the
    proxies of the environment, mounted apart, stay."""
    replaced: httpx.BaseTransport = private(client, "_transport", transport)
    return replaced


def install_deadlines(client: httpx.Client) -> None:
    """Bound the sockets of ``client``'s own transports (and proxy mounts) by the deadline.

    A transport given by the caller (a test's MockTransport) has no sockets and is left
    alone.
    """
    mounts: dict[Any, Any] = private(client, "_mounts")
    for transport in [private(client, "_transport"), *mounts.values()]:
        bound_by_deadline(transport)


def bound_by_deadline(transport: object) -> None:
    """Bound the sockets of one ``httpx.HTTPTransport`` by the thread's deadline, through
    its httpcore pool's network backend; anything else (a MockTransport, a
    :class:`~.connections.ConnectionShelf`, None) is left as it is."""
    import httpx

    if not isinstance(transport, httpx.HTTPTransport):
        return
    pool = private(transport, "_pool")
    backend = private(pool, "_network_backend")
    if not isinstance(backend, _DeadlineBackend):
        private(pool, "_network_backend", _DeadlineBackend(backend))


def _decoder(content_encoding: str) -> Any:
    """A zlib decompressor for the answer's encoding; None for identity or unknown ones."""
    encoding = content_encoding.strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header
    return None


def read_bounded(response: httpx.Response, limit: int = MAX_BODY_BYTES) -> bytes:
    """At most ``limit`` decoded bytes of a streamed response's body; the rest is not read.

    gzip and deflate are decoded here with a bounded output, so a small compressed answer
    cannot expand in memory. A body in another encoding (ievents asks for none) is
    dropped: it is not needed to classify the answer, which goes by its status. A body
    cut short (the attempt's deadline, a dropped connection) is returned as read so far.
    """
    encoding = response.headers.get("content-encoding", "identity")
    decoder = _decoder(encoding) if encoding.strip().lower() != "identity" else None
    if decoder is None and encoding.strip().lower() not in ("", "identity"):
        return b""
    import httpx

    if response.is_stream_consumed:
        # Already in memory (a test's MockTransport builds answers from bytes).
        return response.content[:limit]
    out = bytearray()
    try:
        for chunk in response.iter_raw(16 * 1024):
            if decoder is None:
                out += chunk[: limit - len(out)]
            else:
                out += decoder.decompress(chunk, limit - len(out))
            if len(out) >= limit:
                break
    except (httpx.TransportError, zlib.error):
        # The status is in: a body cut by the deadline or garbled changes nothing about it.
        pass
    return bytes(out)
