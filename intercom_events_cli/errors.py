"""Exit codes and the exception tree of ievents.

::

    IeventsError                 every error ievents raises on purpose
    ├── UsageError (2)           the command line is wrong (e.g. no contact identity)
    ├── ValidationError (65)     event data refused locally, before anything is sent
    ├── ConfigError (78)         no token, bad region, plain http off loopback, ...
    │   └── MissingExtra (78)    an extra (postgres, metrics) is not installed
    ├── OutboxError (78)         the outbox cannot be used: unreadable, corrupt, foreign
    │   ├── OutboxBusy (75)      another process holds it past the busy timeout
    │   ├── OutboxUnavailable (75)  its database cannot be reached now
    │   └── OutboxMissing (78)   a command that creates nothing found no outbox there
    ├── Interrupted (130)        Ctrl-C or SIGTERM at a moment worth explaining;
    │                            ``outbox_id``: where the interrupted event was kept
    ├── IncompatibleHttpLibrary (1)  an httpx or httpcore release ievents cannot work with
    └── ApiError                 Intercom (or the network) answered with a failure
                                 exit code from the status: 65, 67, 75 or 77

Every error carries ``exit_code``; the command line turns it into a message and an exit
status in one place (``cli``).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit statuses (sysexits, which cron wrappers already understand)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    DATA = 65  # EX_DATAERR: invalid event data, locally or per the API (400/422)
    NO_CONTACT = 67  # EX_NOUSER: the contact does not exist (404)
    TEMPORARY = 75  # EX_TEMPFAIL: network, timeout, 429, 5xx outlasted the retries
    AUTH = 77  # EX_NOPERM: token rejected (401/403)
    CONFIG = 78  # EX_CONFIG: no token, bad region, insecure base URL, bad outbox
    INTERRUPTED = 130  # Ctrl-C


# When several events end differently, the most severe wins, in this order.
SEVERITY_ORDER: tuple[ExitCode, ...] = (
    ExitCode.CONFIG,
    ExitCode.AUTH,
    ExitCode.DATA,
    ExitCode.NO_CONTACT,
    ExitCode.TEMPORARY,
    ExitCode.OK,
)


def most_severe(codes: list[ExitCode] | set[ExitCode]) -> ExitCode:
    """Return the most severe of ``codes`` (78, 77, 65, 67, 75, then 0); 0 when empty."""
    present = set(codes)
    for code in SEVERITY_ORDER:
        if code in present:
            return code
    # Codes outside the table (1, 2, 130) are decided by the caller, never merged.
    return ExitCode.OK


class IeventsError(Exception):
    """Base of every error ievents raises on purpose; ``exit_code`` says how it ends."""

    exit_code: ExitCode = ExitCode.INTERNAL
    # Machine-readable kind, for --json error objects.
    code: str = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(IeventsError):
    """The command line is wrong (exit 2)."""

    exit_code = ExitCode.USAGE
    code = "usage_error"


class ValidationError(IeventsError):
    """Event data that Intercom would refuse or silently mangle (exit 65)."""

    exit_code = ExitCode.DATA
    code = "invalid_event"

    def __init__(self, message: str, field: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.field = field


class ConfigError(IeventsError):
    """Configuration that cannot work: no token, bad region, insecure URL (exit 78)."""

    exit_code = ExitCode.CONFIG
    code = "config_error"


class MissingExtra(ConfigError):
    """An optional dependency is not installed (exit 78): ``extra`` names the extra.

    The command that installs it depends on how ievents was installed
    (:func:`intercom_events_cli.extras.extra_install_command`); the CLI adds it as the hint.
    """

    code = "missing_extra"

    def __init__(self, message: str, extra: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.extra = extra


class OutboxError(IeventsError):
    """The outbox file cannot be used: unreadable, corrupt (exit 78)."""

    exit_code = ExitCode.CONFIG
    code = "outbox_error"


class OutboxBusy(OutboxError):
    """Another process (an ievents, a SQLite tool) holds the outbox for longer than the
    busy timeout: the same operation may succeed when tried again (exit 75, as for any
    temporary failure; ``--json`` keeps the code ``outbox_error``)."""

    exit_code = ExitCode.TEMPORARY


class OutboxUnavailable(OutboxError):
    """The outbox's database cannot be reached now (down, restarting): try later (exit 75)."""

    exit_code = ExitCode.TEMPORARY
    code = "outbox_unavailable"


class OutboxMissing(OutboxError):
    """There is no outbox at the location, and the caller asked not to create one (exit 78
    when nothing handles it: the read-only commands say so and exit 0)."""

    code = "no_outbox"


class Interrupted(IeventsError):
    """Ctrl-C (or SIGTERM) at a moment worth explaining (exit 130).

    ``outbox_id``: the outbox row the interrupted event was kept in, or None (not kept).
    """

    exit_code = ExitCode.INTERRUPTED
    code = "interrupted"

    def __init__(
        self, message: str, hint: str | None = None, *, outbox_id: int | None = None
    ) -> None:
        super().__init__(message, hint)
        self.outbox_id = outbox_id


class IncompatibleHttpLibrary(IeventsError):
    """The installed httpx or httpcore lacks an internal ievents relies on (exit 1): the
    message names both versions, the hint the ones ievents was tested with."""

    code = "incompatible_http_library"


class ApiError(IeventsError):
    """Intercom refused the request, or the network failed past the retries."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        code: str | None,
        request_id: str | None = None,
        exit_code: ExitCode = ExitCode.TEMPORARY,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.code = code or "api_error"
        self.request_id = request_id
        self.exit_code = exit_code
