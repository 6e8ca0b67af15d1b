"""ievents: submit Intercom data events, reliably, from scripts and cron jobs.

The data path, a step a line, with the package or module that holds it: each stage is a
package of its own (CONTRIBUTING.md: the layout, the layers and their rules)::

    input -> Event        input/ (readers, records, csv_rows, rejects), event.py (fields.py,
                          metadata.py); config/ the settings every step reads
    Event -> outbox       capture.py (one event), outbox/ (store.py: the protocol and the
                          backend registry; sql_store.py, sqlite.py, pg_outbox.py)
    outbox -> Intercom    delivery/ (engine.py, settle.py, batch.py, relay.py), http/
                          (client.py, transport.py, retry.py: waits and backoff, pacing.py)
    answer -> Outcome     outcome.py (classification), errors.py (the exception tree)
    Outcome -> the user   cli/ (render.py: words, output.py: streams, runner.py: a run)

Library use (no typer or rich is imported)::

    from intercom_events_cli import Event, EventsClient, Settings

    settings = Settings.load()
    with EventsClient(settings) as client:
        outcome = client.send(Event.create("invited-friend", user_id="314159"))
    outcome.raise_for_failure()

Public names (everything else is private to the package and may change)::

    Event               one validated Intercom data event (event.py)
    EventsClient        sends events over HTTP with the retry policy (http/client.py)
    Settings            token, region, base URL and timeouts, resolved (config/settings.py)
    Outcome             what became of one event sent (outcome.py)
    OutboxStore         the storage protocol every outbox meets (outbox/store.py)
    open_store          opens the outbox at a file path or postgresql:// URI (outbox/store.py)
    State               where an event is in the outbox: pending ... dead (outbox/rows.py)
    ExitCode            the process exit statuses, one enum (errors.py)
    IeventsError        the base of every error raised on purpose; carries exit_code
    UsageError          the command line is wrong (2)
    ValidationError     event data refused before anything is sent (65)
    ConfigError         no token, bad region, insecure base URL (78)
    ApiError            Intercom or the network answered with a failure (65/67/75/77)
    OutboxError         the outbox is locked, unreadable, corrupt or foreign (78)
    OutboxUnavailable   the outbox's database cannot be reached now (75)

The names are loaded lazily so that ``import intercom_events_cli`` stays cheap: the
HTTP stack is imported only by code that sends something, psycopg only for a
PostgreSQL outbox.
"""

from __future__ import annotations

# Not ``from typing import TYPE_CHECKING``: typing takes ~40 ms to import on a cold start,
# all of it before ``ievents`` handles Ctrl-C (see early_signals.py); type checkers
# treat this name as true.
TYPE_CHECKING = False

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "ConfigError",
    "Event",
    "EventsClient",
    "ExitCode",
    "IeventsError",
    "Outcome",
    "OutboxError",
    "OutboxStore",
    "OutboxUnavailable",
    "Settings",
    "State",
    "UsageError",
    "ValidationError",
    "__version__",
    "open_store",
]

if TYPE_CHECKING:
    from typing import Any

    from .config.settings import Settings
    from .errors import (
        ApiError,
        ConfigError,
        ExitCode,
        IeventsError,
        OutboxError,
        OutboxUnavailable,
        UsageError,
        ValidationError,
    )
    from .event import Event
    from .http.client import EventsClient
    from .outbox.rows import State
    from .outbox.store import OutboxStore, open_store
    from .outcome import Outcome

# Each public name and the private module that defines it.
_LAZY = {
    "EventsClient": "http.client",
    "Settings": "config.settings",
    "ApiError": "errors",
    "ConfigError": "errors",
    "ExitCode": "errors",
    "IeventsError": "errors",
    "OutboxError": "errors",
    "OutboxUnavailable": "errors",
    "UsageError": "errors",
    "ValidationError": "errors",
    "Event": "event",
    "State": "outbox.rows",
    "OutboxStore": "outbox.store",
    "open_store": "outbox.store",
    "Outcome": "outcome",
}


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f".{module_name}", __name__)
    return getattr(module, name)
