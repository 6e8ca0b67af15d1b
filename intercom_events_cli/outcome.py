"""What became of one event: delivered, or why not, and the exit code that follows."""

from __future__ import annotations

from collections.abc import Collection
from enum import Enum
from http import HTTPStatus
from typing import Any

from .errors import ApiError, ExitCode
from .event import Event
from .frozen import frozen


class OutcomeKind(str, Enum):
    """The classes of result a delivery attempt can end in."""

    DELIVERED = "delivered"
    INVALID = "invalid"  # 400, 422 and other non-retryable 4xx: the data is wrong
    NO_CONTACT = "no_contact"  # 404: events do not create contacts
    AUTH = "auth"  # 401/403: the token is wrong or lacks permission
    CONFIG = "config"  # 3xx (never followed), TLS verification, unusable URL: fix the setup
    TEMPORARY = "temporary"  # network, timeout, 408, 429, any 5xx, unexpected 2xx


_EXIT_CODES = {
    OutcomeKind.DELIVERED: ExitCode.OK,
    OutcomeKind.INVALID: ExitCode.DATA,
    OutcomeKind.NO_CONTACT: ExitCode.NO_CONTACT,
    OutcomeKind.AUTH: ExitCode.AUTH,
    OutcomeKind.CONFIG: ExitCode.CONFIG,
    OutcomeKind.TEMPORARY: ExitCode.TEMPORARY,
}


def status_text(status: int | None) -> str:
    """``404 Not Found`` for a status; ``no response`` for None."""
    if status is None:
        return "no response"
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def api_error_text(code: str | None, message: str | None) -> str:
    """An API error as one phrase: ``code: message`` (either may be missing; "" for none)."""
    return ": ".join(part for part in (code, message) if part)


def exit_code_for(kind: OutcomeKind) -> ExitCode:
    """The exit code an outcome of this kind calls for."""
    return _EXIT_CODES[kind]


def classify_status(status: int | None, expected: Collection[int] | None = None) -> OutcomeKind:
    """Map an HTTP status (``None`` for a network failure) to an outcome kind.

    The one definition used by the client's retries, the exit codes, the outbox state and
    the JSON error codes. Every 5xx, 408 and 429 is temporary. ``expected`` names the
    success statuses of the request (202 for ``POST /events``): any other 2xx is an
    unexpected answer, such as a captive portal's 200 page, so it is temporary, not
    delivered. None accepts every 2xx.
    """
    if status is None:
        return OutcomeKind.TEMPORARY
    if 200 <= status < 300:
        if expected is None or status in expected:
            return OutcomeKind.DELIVERED
        return OutcomeKind.TEMPORARY
    if status in (401, 403):
        return OutcomeKind.AUTH
    if 300 <= status < 400:
        return OutcomeKind.CONFIG
    if status == 404:
        return OutcomeKind.NO_CONTACT
    if status in (408, 429) or status >= 500:
        return OutcomeKind.TEMPORARY
    return OutcomeKind.INVALID


def dead_letter_kind(status: int | None) -> OutcomeKind:
    """Why a dead letter was refused for good, from its last status: no such contact
    (404), else invalid data (a row is dead only when Intercom refused it for good)."""
    kind = classify_status(status)
    return kind if kind is OutcomeKind.NO_CONTACT else OutcomeKind.INVALID


def is_retryable(status: int | None, expected: Collection[int] | None = None) -> bool:
    """True when an answer (``None``: a network failure) is worth trying again."""
    return classify_status(status, expected) is OutcomeKind.TEMPORARY


# The error codes of failures without an HTTP answer (one vocabulary for the outbox,
# ``--json`` and the messages).
CODE_TIMEOUT = "timeout"
CODE_CONNECTION = "connection_error"
CODE_TLS = "tls_error"
CODE_BAD_URL = "invalid_url"
CODE_UNEXPECTED = "unexpected_response"


@frozen
class Failure:
    """How a request that got no usable answer failed: the kind, error code and message."""

    kind: OutcomeKind
    code: str
    message: str


def classify_exception(exc: BaseException, timeout_s: float | None = None) -> Failure | None:
    """Classify an exception raised while sending a request; None for one that is no httpx error.

    A certificate that cannot be verified is a configuration error (retrying will not
    fix it); a URL httpx cannot use too. Everything else (refused or dropped
    connections, protocol errors, proxies, a body that cannot be decoded) is a temporary
    ``connection_error``; timeouts are a temporary ``timeout``.
    """
    import httpx  # the caller got here through httpx: the import is already paid for

    if not isinstance(exc, (httpx.RequestError, httpx.InvalidURL, httpx.CookieConflict)):
        return None
    if isinstance(exc, httpx.TimeoutException):
        shown = f" ({timeout_s:g}s)" if timeout_s is not None else ""
        return Failure(OutcomeKind.TEMPORARY, CODE_TIMEOUT, f"request timed out{shown}")
    if _tls_verification_failed(exc):
        return Failure(
            OutcomeKind.CONFIG,
            CODE_TLS,
            f"the server's TLS certificate could not be verified ({_reason(exc)})",
        )
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return Failure(OutcomeKind.CONFIG, CODE_BAD_URL, f"unusable URL ({_reason(exc)})")
    return Failure(OutcomeKind.TEMPORARY, CODE_CONNECTION, _reason(exc))


def unexpected_answer(status: int) -> Failure:
    """A 2xx that is not the request's success status (a proxy or captive portal)."""
    return Failure(
        OutcomeKind.TEMPORARY,
        CODE_UNEXPECTED,
        f"unexpected answer {status_text(status)} where Intercom answers 202 Accepted: "
        "a proxy or captive portal may be answering instead of Intercom",
    )


def _tls_verification_failed(exc: BaseException) -> bool:
    import ssl

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _reason(exc: BaseException) -> str:
    from .config.redaction import redact

    return redact(str(exc) or type(exc).__name__)


@frozen
class Outcome:
    """The result of sending one event (after every retry)."""

    event: Event
    kind: OutcomeKind
    status: int | None
    attempts: int
    elapsed_s: float
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    # When a temporary failure ended because the server asked for a long wait: how long.
    retry_after_s: float | None = None

    @property
    def delivered(self) -> bool:
        """True when Intercom accepted the event (202)."""
        return self.kind is OutcomeKind.DELIVERED

    @property
    def exit_code(self) -> ExitCode:
        """The process exit code this outcome calls for."""
        return exit_code_for(self.kind)

    @property
    def stops_run(self) -> bool:
        """True when no other event of the run can fare better: the token was rejected
        (401/403) or the setup cannot work (base URL, TLS). A flush, ``batch`` or relay
        stops delivering at once and keeps every row pending for after the fix."""
        return self.kind is OutcomeKind.AUTH or self.kind is OutcomeKind.CONFIG

    def error(self) -> dict[str, Any] | None:
        """``{"code", "message"}`` of the failure, or None when delivered."""
        if self.delivered:
            return None
        return {"code": self.error_code, "message": self.error_message}

    def raise_for_failure(self) -> None:
        """Raise :class:`ApiError` unless the event was delivered."""
        if not self.delivered:
            raise ApiError(
                self.error_message or "delivery failed",
                status=self.status,
                code=self.error_code,
                request_id=self.request_id,
                exit_code=self.exit_code,
            )
