"""ievents: submit Intercom data events, reliably, from scripts and cron jobs.

The data path, a step a line, with its module (CONTRIBUTING.md: the layers and their rules)::

    input -> Event        readers.py (files, streams), event.py (validation)
    Event -> outbox       outbox/ (store.py: the protocol; sqlite.py; pg_outbox.py)
    outbox -> Intercom    delivery.py (the engine), batch.py (a batch run), client.py
    answer -> Outcome     outcome.py (classification), retry.py (waits and backoff)
    Outcome -> the user   cli/render.py (words), cli/output.py (streams), errors.py (exit codes)

Library use (no typer or rich is imported)::

    from intercom_events_cli import Event, EventsClient, Settings

    settings = Settings.load()
    with EventsClient(settings) as client:
        outcome = client.send(Event.create("invited-friend", user_id="314159"))
    outcome.raise_for_failure()

The names are loaded lazily so that ``import intercom_events_cli`` stays cheap: the
HTTP stack is imported only by code that sends something.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ApiError",
    "ConfigError",
    "Event",
    "EventsClient",
    "ExitCode",
    "IeventsError",
    "Outcome",
    "Settings",
    "ValidationError",
    "__version__",
]

if TYPE_CHECKING:
    from .client import EventsClient
    from .config import Settings
    from .errors import ApiError, ConfigError, ExitCode, IeventsError, ValidationError
    from .event import Event
    from .outcome import Outcome

_LAZY = {
    "EventsClient": "client",
    "Settings": "config",
    "ApiError": "errors",
    "ConfigError": "errors",
    "ExitCode": "errors",
    "IeventsError": "errors",
    "ValidationError": "errors",
    "Event": "event",
    "Outcome": "outcome",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module = importlib.import_module(f".{module_name}", __name__)
    return getattr(module, name)
