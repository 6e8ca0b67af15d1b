"""EventsClient: one HTTP client per run, headers, retries, typed results.

httpx is imported when a client is built, not when this module is imported, so that
paths that send nothing (``--dry-run``, ``--queue``) never pay for it.
"""

from __future__ import annotations

import dataclasses
import json
import random as _random
import re
import socket
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from ..config.redaction import redact
from ..config.settings import Settings
from ..event import Event
from ..frozen import frozen
from ..outcome import (
    CODE_CONNECTION,
    CODE_TIMEOUT,
    Outcome,
    OutcomeKind,
    classify_exception,
    classify_status,
    unexpected_answer,
)
from ..textsafe import sanitize
from .retry import parse_rate_limit_remaining, retry_decision, server_requested_delay

if TYPE_CHECKING:
    import httpx

EVENTS_PATH = "/events"
# Intercom answers a data event with 202 and nothing else: another 2xx is not a delivery.
EVENTS_ACCEPTED = frozenset({202})
_MAX_ERROR_TEXT = 200


@frozen
class AttemptLog:
    """One HTTP attempt, for ``--verbose`` logs (never holds the token)."""

    method: str
    url: str
    attempt: int
    status: int | None
    elapsed_ms: float
    rate_limit_remaining: int | None
    error: str | None = None
    kind: OutcomeKind | None = None  # the classification of this attempt's answer
    error_code: str | None = None


class Pacer(Protocol):
    """Rate-limit pacing hook: ``acquire`` before each request, ``observe`` each answer."""

    def acquire(self) -> None:
        """Block until a request may be sent."""

    def observe(self, status: int | None, headers: Mapping[str, str]) -> None:
        """Learn from an answer's status and ``X-RateLimit-*`` headers."""

    def close(self) -> None:
        """Refuse further requests and wake every waiting thread (the run is stopping)."""


@frozen
class Exchange:
    """The final answer to a request after retries (or the network failure)."""

    status: int | None
    attempts: int
    elapsed_s: float
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retry_after_s: float | None = None
    # Set by the client (a TLS failure, an unexpected 2xx); None: from the status alone.
    verdict: OutcomeKind | None = None

    @property
    def kind(self) -> OutcomeKind:
        """The outcome class of the final answer."""
        return self.verdict if self.verdict is not None else classify_status(self.status)

    def outcome_for(self, event: Event) -> Outcome:
        """This answer as the outcome of delivering ``event``."""
        return Outcome(
            event=event,
            kind=self.kind,
            status=self.status,
            attempts=self.attempts,
            elapsed_s=self.elapsed_s,
            request_id=self.request_id,
            error_code=self.error_code,
            error_message=self.error_message,
            retry_after_s=self.retry_after_s,
        )


def _error_details(
    response: httpx.Response, content: bytes
) -> tuple[str | None, str | None, str | None, Any]:
    """(code, message, request_id, parsed body) from an Intercom answer and its body."""
    # Every part is redacted, not only the message: the code and request id are stored in
    # the outbox and the rejects file, which are read later without the token registered.
    request_id = _redacted_text(
        response.headers.get("x-request-id") or response.headers.get("request-id")
    )
    body: Any = None
    text = content.decode("utf-8", "replace")
    if content:
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            body = None
    if 200 <= response.status_code < 300:
        return None, None, request_id, body
    code: str | None = None
    message: str | None = None
    if isinstance(body, dict):
        request_id = _redacted_text(body.get("request_id")) or request_id
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            codes = [str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")]
            messages = [
                str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")
            ]
            code = codes[0] if codes else None
            message = "; ".join(messages) or None
        elif isinstance(body.get("message"), str):
            message = body["message"]
    if message is None:
        # Redact before cutting: a cut through the token would leave its start unredacted.
        shown = redact(" ".join(text.split()))[:_MAX_ERROR_TEXT] if content else ""
        message = shown or response.reason_phrase or f"HTTP {response.status_code}"
    if code is None:
        code = f"http_{response.status_code}"
    # Sanitised at the source: the message is stored in the outbox and shown in tables.
    return sanitize(redact(code)), sanitize(redact(message)), request_id, body


def _redacted_text(value: object) -> str | None:
    """A header or JSON value as redacted text; None when absent or empty."""
    return sanitize(redact(str(value))) if value else None


class EventsClient:
    """Sends events to Intercom over one reused ``httpx.Client``.

    ``send`` never raises for an API or network failure: it returns an :class:`Outcome`
    (call ``outcome.raise_for_failure()`` for an exception). The clock, sleep and random
    source are injectable for tests; ``pacer`` spreads requests under a rate limit.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 20,
        on_attempt: Callable[[AttemptLog], None] | None = None,
        pacer: Pacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
        max_wait_s: float = 60.0,
    ) -> None:
        import httpx

        from .connections import connection_shelf, tls_verification
        from .transport import install_deadlines, replace_transport

        self.settings = settings
        self._httpx = httpx
        self._on_attempt = on_attempt
        self._pacer = pacer
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self._max_wait_s = max_wait_s
        verify = tls_verification(settings.base_url)
        self._http = httpx.Client(
            base_url=settings.base_url,
            # Only encodings ievents decodes itself, with a bounded output (transport.py).
            headers={**settings.headers(), "Accept-Encoding": "gzip, deflate"},
            timeout=httpx.Timeout(settings.timeout),
            transport=transport,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            # A redirect could carry the token to another host: never follow one.
            follow_redirects=False,
            verify=verify,
        )
        if transport is None:
            # In place of httpx's one pool for all threads (connections.py). Set after the
            # client is made so that httpx still mounts the proxies of the environment.
            replace_transport(self._http, connection_shelf(verify, max_connections)).close()
        install_deadlines(self._http)

    def __enter__(self) -> EventsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def send(self, event: Event) -> Outcome:
        """POST the event, retrying temporary failures with the identical body."""
        return self.request(
            "POST", EVENTS_PATH, content=event.body(), expect=EVENTS_ACCEPTED
        ).outcome_for(event)

    def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        expect: Collection[int] | None = None,
        max_body_bytes: int | None = None,
    ) -> Exchange:
        """Send one request with the retry policy; return the final answer.

        ``url`` is a path under the base URL or an absolute URL (the caller checks that
        an absolute URL points at the configured host before handing it over).
        ``expect``: the success statuses (None: any 2xx). Every answer and every httpx
        exception is classified by :mod:`~intercom_events_cli.outcome`; an exception that
        is not httpx's (a bug) propagates, after the pacer is told the request ended.
        ``max_body_bytes``: the most of the answer's body read (decoded); by default
        ``transport.MAX_BODY_BYTES`` (64 KiB), enough for any error or ``POST`` answer.
        """
        headers = {"Content-Type": "application/json"} if content is not None else None
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            finished, unresolved = self._exchange(
                method,
                url,
                attempt,
                started,
                content=content,
                params=params,
                headers=headers,
                expect=expect,
                max_body_bytes=max_body_bytes,
            )
            kind = finished.verdict
            if kind is OutcomeKind.DELIVERED:
                return finished
            if unresolved:
                # A name that does not resolve will not resolve a second later: retrying it
                # for 8 s only delays the answer. The outcome stays temporary (75, queued).
                return finished
            decision = retry_decision(
                attempt=attempt,
                max_retries=self.settings.retries,
                status=finished.status,
                headers=finished.headers,
                now=self._clock(),
                random=self._random,
                max_wait_s=self._max_wait_s,
                retryable=kind is OutcomeKind.TEMPORARY,
            )
            if not decision.retry:
                if finished.kind is OutcomeKind.TEMPORARY:
                    delay = server_requested_delay(
                        finished.status, finished.headers, self._clock(), lambda: 0.0
                    )
                    return dataclasses.replace(finished, retry_after_s=delay)
                return finished
            self._sleep(decision.delay_s)

    def _exchange(
        self,
        method: str,
        url: str,
        attempt: int,
        started: float,
        *,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        expect: Collection[int] | None,
        max_body_bytes: int | None,
    ) -> tuple[Exchange, bool]:
        """One attempt, paced, classified and logged: (its answer, the host did not resolve)."""
        if self._pacer is not None:
            self._pacer.acquire()
        sent_at = time.monotonic()
        status: int | None = None
        response_headers: Mapping[str, str] = {}
        body: Any = None
        request_id: str | None = None
        shown_url = self._shown_url(url)
        unresolved = False
        try:
            status, response_headers, shown_url, details = self._attempt(
                method,
                url,
                content=content,
                params=params,
                headers=headers,
                max_body_bytes=max_body_bytes,
            )
            code, message, request_id, body = details
            kind = classify_status(status, expect)
            if kind is OutcomeKind.TEMPORARY and 200 <= status < 300:
                unexpected = unexpected_answer(status)
                code, message = unexpected.code, unexpected.message
        except Exception as exc:
            failure = classify_exception(exc, self.settings.timeout)
            if failure is None:
                raise  # a bug, not a failure of the request
            status, response_headers = None, {}
            kind, code = failure.kind, failure.code
            message, unresolved = self._failure_message(exc, failure.message, code, shown_url)
        finally:
            # Always, even for a bug: the pacer counts requests in flight.
            if self._pacer is not None:
                self._pacer.observe(status, response_headers)
        if self._on_attempt is not None:
            self._on_attempt(
                AttemptLog(
                    method=method,
                    url=shown_url,
                    attempt=attempt,
                    status=status,
                    elapsed_ms=(time.monotonic() - sent_at) * 1000,
                    rate_limit_remaining=parse_rate_limit_remaining(response_headers),
                    error=None if status is not None else message,
                    kind=kind,
                    error_code=code,
                )
            )
        return Exchange(
            status=status,
            attempts=attempt,
            elapsed_s=time.monotonic() - started,
            headers=response_headers,
            body=body,
            request_id=request_id,
            error_code=code,
            error_message=message,
            verdict=kind,
        ), unresolved

    def _failure_message(
        self, exc: Exception, message: str | None, code: str | None, shown_url: str
    ) -> tuple[str | None, bool]:
        """A network error's message naming the host; and whether the name did not resolve."""
        if code == CODE_TIMEOUT:
            return f"request to {host_of(shown_url)} timed out ({self.settings.timeout:g}s)", False
        if code == CODE_CONNECTION:
            unresolved = is_dns_failure(exc)
            return transport_message(exc, shown_url, unresolved), unresolved
        return message, False

    def _attempt(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        max_body_bytes: int | None,
    ) -> tuple[int, Mapping[str, str], str, tuple[str | None, str | None, str | None, Any]]:
        """One HTTP exchange: (status, headers, URL shown, error details).

        One deadline bounds the whole attempt (connect, headers, body), not each read. The
        status is kept even when the body cannot be read (a proxy's broken gzip, a
        connection dropped mid-body): a 202 with an unreadable body is still a delivery.
        """
        from .transport import MAX_BODY_BYTES, attempt_deadline, read_bounded

        request = self._http.build_request(
            method, url, content=content, params=params, headers=headers
        )
        with attempt_deadline(self.settings.timeout):
            response = self._http.send(request, stream=True)
            try:
                answer = read_bounded(response, max_body_bytes or MAX_BODY_BYTES)
            finally:
                response.close()
        return (
            response.status_code,
            response.headers,
            str(request.url),
            _error_details(response, answer),
        )

    def _shown_url(self, url: str) -> str:
        return url if "://" in url else self.settings.base_url + url


_DNS_TEXTS = (
    "name or service not known",
    "nodename nor servname",
    "no address associated with hostname",
    "temporary failure in name resolution",
    "getaddrinfo failed",
)


def is_dns_failure(exc: BaseException) -> bool:
    """Whether a transport error is a host name that did not resolve (socket.gaierror)."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain httpx -> httpcore -> socket is short; never loop for ever
        if seen is None:
            break
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return any(text in str(exc).lower() for text in _DNS_TEXTS)


def host_of(url: str) -> str:
    """``host[:port]`` of a URL, for messages (the path and query say nothing useful)."""
    try:
        return urlsplit(url).netloc.rsplit("@", 1)[-1] or url
    except ValueError:
        return url


def transport_message(exc: BaseException, url: str, unresolved: bool) -> str:
    """A network error that names the host it could not reach."""
    reason = redact(str(exc) or type(exc).__name__)
    host = host_of(url)
    if unresolved:
        return f"cannot resolve {host} (DNS: {reason}; not retried)"
    return f"cannot reach {host}: {reason}"


def proxy_for(url: str) -> str | None:
    """The proxy httpx will use for ``url`` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY).

    The same variables httpx reads (it trusts the environment); a user name and password in
    the proxy URL are left out of the answer, which is shown to the user.
    """
    import urllib.request

    proxies = urllib.request.getproxies_environment()
    # Not in typeshed, but in CPython's urllib.request since 2.x: NO_PROXY as httpx reads it.
    bypass: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or not parts.hostname:
        return None
    if bypass(parts.hostname, proxies):
        return None
    shown = proxy if "://" in proxy else f"http://{proxy}"
    return re.sub(r"://[^/@]*@", "://", shown)


def events_url(settings: Settings) -> str:
    """The URL events are posted to."""
    return settings.base_url + EVENTS_PATH
