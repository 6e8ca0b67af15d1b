"""What became of one event: delivered, or why not, and the exit code that follows."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from http import HTTPStatus
from typing import Any

from .errors import ApiError, ExitCode
from .event import Event


class OutcomeKind(str, Enum):
    """The classes of result a delivery attempt can end in."""

    DELIVERED = "delivered"
    INVALID = "invalid"  # 400, 422 and other non-retryable 4xx: the data is wrong
    NO_CONTACT = "no_contact"  # 404: events do not create contacts
    AUTH = "auth"  # 401/403: the token is wrong or lacks permission
    CONFIG = "config"  # 3xx: the base URL points somewhere that redirects (never followed)
    TEMPORARY = "temporary"  # network, timeout, 429, 5xx past the retries


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


def exit_code_for(kind: OutcomeKind) -> ExitCode:
    """The exit code an outcome of this kind calls for."""
    return _EXIT_CODES[kind]


def classify_status(status: int | None) -> OutcomeKind:
    """Map an HTTP status (``None`` for a network failure) to an outcome kind."""
    if status is None:
        return OutcomeKind.TEMPORARY
    if 200 <= status < 300:
        return OutcomeKind.DELIVERED
    if status in (401, 403):
        return OutcomeKind.AUTH
    if 300 <= status < 400:
        return OutcomeKind.CONFIG
    if status == 404:
        return OutcomeKind.NO_CONTACT
    if status in (408, 429) or status >= 500:
        return OutcomeKind.TEMPORARY
    return OutcomeKind.INVALID


@dataclass(frozen=True)
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
