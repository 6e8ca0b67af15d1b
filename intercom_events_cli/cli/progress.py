"""Batch progress: two bars on a terminal (records read; events delivered, with rate and
ETA), or the same numbers as a ``-v`` line every 10 s for logs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Protocol, cast

from .output import Output

if TYPE_CHECKING:
    from ..delivery.batch import BatchRun


class BatchDisplay(Protocol):
    """What the bars show of ``batch``'s display (``cli/batch.py``, which imports this
    module: named here by what it offers, not imported back)."""

    failed: int  # events that failed so far


# How often -v prints the progress line (a test shortens it).
VERBOSE_PROGRESS_EVERY_S = 10.0


@dataclass
class Progress:
    """What the two bars and the ``-v`` line show: reading, and delivery with rate and ETA."""

    read: int
    read_fraction: float | None  # None when the input's size is unknown (a pipe)
    done: int  # delivered (or stored, or checked: see ``done_label``)
    done_label: str
    expected: int | None  # events to deliver in all, projected while still reading
    rate: float  # done per second
    eta_s: float | None


def measure(run: BatchRun, started: float) -> Progress:
    """The numbers of a batch run so far."""
    report = run.report
    elapsed = max(time.monotonic() - started, 1e-9)
    size = run.source.size
    position = run.source.position()
    fraction = min(1.0, position / size) if size and position is not None else None
    from ..delivery.batch import BatchMode

    if run.mode is BatchMode.DELIVER:
        done, label, target = run.live_delivered, "delivered", report.queued
    elif run.mode is BatchMode.QUEUE:
        done, label, target = report.queued, "stored", report.queued
    else:
        done, label, target = report.valid, "checked", report.valid
    expected: int | None = target
    if fraction is not None and 0 < fraction < 1:
        expected = max(target, round(target / fraction))  # projected from what was read
    elif fraction is None:
        expected = None if run.mode is not BatchMode.DELIVER else target
    rate = done / elapsed
    eta = (
        (expected - done) / rate if expected is not None and rate > 0 and expected >= done else None
    )
    return Progress(report.read, fraction, done, label, expected, rate, eta)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    whole = int(seconds + 0.5)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def progress_line(run: BatchRun, started: float) -> str:
    """``read 1200 (40%), stored 1200, ..., delivered 800 of ~3000, 160 events/s, ETA 0:00:14``."""
    report = run.report
    now = measure(run, started)
    percent = f" ({now.read_fraction:.0%})" if now.read_fraction is not None else ""
    of = f" of ~{now.expected}" if now.expected is not None else ""
    return (
        f"read {report.read}{percent}, stored {report.queued}, skipped {report.skipped}, "
        f"invalid {report.invalid}, {now.done_label} {now.done}{of}, "
        f"{now.rate:.0f} events/s, ETA {_clock(now.eta_s)}"
    )


@contextmanager
def progress_reporting(ui: Output, run: BatchRun, display: BatchDisplay) -> Iterator[None]:
    """Two rich bars on a terminal (read; delivered, with rate and ETA); ``-v`` lines every
    10 s elsewhere; else nothing."""
    started = time.monotonic()
    if not ui.quiet and ui.stderr_isatty:
        with progress_bars(ui, run, display, started):
            yield
    elif ui.verbose:

        def report() -> None:
            ui.info(f"batch: {progress_line(run, started)}")

        with ticking(VERBOSE_PROGRESS_EVERY_S, report):
            yield
    else:
        yield


@contextmanager
def ticking(every_s: float, tick: Callable[[], None]) -> Iterator[None]:
    """Call ``tick`` every ``every_s`` seconds, on a thread of its own, while the block runs."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(every_s):
            tick()

    ticker = threading.Thread(target=loop, daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()


@contextmanager
def progress_bars(
    ui: Output, run: BatchRun, display: BatchDisplay, started: float
) -> Iterator[None]:
    """The two bars on the terminal (stderr), refreshed five times a second."""
    from rich.file_proxy import FileProxy
    from rich.progress import BarColumn, TextColumn
    from rich.progress import Progress as Bars

    bars = Bars(
        TextColumn("{task.description:>9}"),
        BarColumn(bar_width=28),
        TextColumn("{task.fields[stats]}"),
        console=ui.rich_console(stderr=True),
        transient=True,
    )
    reading = bars.add_task("read", total=run.source.size or None, stats="")
    delivering = bars.add_task("delivered", total=None, stats="")

    def refresh() -> None:
        now = measure(run, started)
        report = run.report
        extra = f", {report.invalid} invalid" if report.invalid else ""
        percent = f" ({now.read_fraction:.0%})" if now.read_fraction is not None else ""
        bars.update(
            reading,
            completed=run.source.position() or 0,
            stats=f"{report.read} records{percent}{extra}",
        )
        failed = f", {display.failed} failed" if display.failed else ""
        of = f" of ~{now.expected}" if now.expected is not None else ""
        bars.update(
            delivering,
            description=now.done_label,
            total=now.expected or None,
            completed=now.done,
            stats=f"{now.done}{of}, {now.rate:.0f}/s, ETA {_clock(now.eta_s)}{failed}",
        )

    with bars:
        # Messages written while the bars show (bad records, dead letters) go above them
        # through rich; written straight to the terminal, the next refresh would draw
        # the bars over them.
        terminal_stderr = ui.stderr
        proxy = FileProxy(bars.console, terminal_stderr)
        ui.stderr = cast("IO[str]", proxy)  # a TextIOBase: a text stream as IO[str] is
        try:
            with ticking(0.2, refresh):
                yield
        finally:
            proxy.flush()
            ui.stderr = terminal_stderr
