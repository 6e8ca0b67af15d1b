"""``ievents batch``: bulk files and streams, paced, resumable, nothing lost."""

from __future__ import annotations

import threading
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import ExitCode, IeventsError, UsageError
from ..outcome import api_error_text, status_text
from .common import open_outbox, reporting, stop_on_signals
from .environment import current
from .options import DELIVERY, OUTPUT, OUTPUTS, SETTINGS, Options, finite, shared
from .output import Output
from .progress import progress_reporting
from .render import agree, plural, seconds, setup_cause, stop_cause, timing, waiting_elsewhere_text
from .render_json import summary_json

if TYPE_CHECKING:
    from ..delivery.batch import BatchMode, BatchReport
    from ..delivery.engine import Delivery
    from ..input.readers import InputSource, Record

INPUT = "Input"
MAX_PROBLEM_LINES = 10


class BatchDisplay:
    """What the user sees while a batch runs: problems, dead letters, progress."""

    def __init__(self, ui: Output, rejects_path: str | None) -> None:
        self.ui = ui
        self.rejects_path = rejects_path
        self.problems_shown = 0
        self.problems = 0
        self.dead_shown = 0
        self.failed = 0
        self.delivery_stopped = False
        self._lock = threading.Lock()

    def invalid(self, record: Record) -> None:
        """A record refused locally: the first ten go to stderr without --rejects."""
        with self._lock:
            self.problems += 1
            if self.rejects_path is None and self.problems_shown < MAX_PROBLEM_LINES:
                self.problems_shown += 1
                self.ui.error(record.describe())

    def result(self, delivery: Delivery) -> None:
        """A delivery result: dead letters are shown (the first ten)."""
        from ..outbox import State

        outcome = delivery.outcome
        if outcome is not None and outcome.stops_run:
            with self._lock:
                if not self.delivery_stopped:
                    # Said now, not only in the summary: on a long pipe the run goes on
                    # storing the rest of the input until it ends (or Ctrl-C).
                    self.delivery_stopped = True
                    self.ui.error(
                        f"delivery stopped: {status_text(outcome.status)} "
                        f"({setup_cause(outcome)}); "
                        "the rest of the input is still stored in the outbox for ievents flush "
                        "(Ctrl-C stops reading; nothing read is lost)"
                    )
            return
        if delivery.state is not State.DEAD or outcome is None:
            return
        with self._lock:
            self.failed += 1
            if self.dead_shown >= MAX_PROBLEM_LINES:
                return
            self.dead_shown += 1
            row = delivery.row
            where = f"line {row.source_line}" if row.source_line else f"outbox id {row.id}"
            detail = api_error_text(outcome.error_code, outcome.error_message)
            self.ui.error(
                f"{where}: {row.event_name} for {row.event().contact} rejected by Intercom "
                f"({status_text(outcome.status)}{': ' + detail if detail else ''})"
            )


def print_summary(
    ui: Output, report: BatchReport, display: BatchDisplay, rejects: str | None, mode: BatchMode
) -> None:
    """Human summary on stderr: what was read, what became of it, what to do next."""
    from ..delivery.batch import BatchMode

    print_problems_left(ui, report, display, rejects)
    read = f"read {plural(report.read, 'record')}: {report.valid} valid, {report.invalid} invalid"
    if mode is BatchMode.DRY_RUN:
        ui.info(f"batch --dry-run: {read}; nothing stored or sent ({seconds(report.elapsed_s)})")
        return
    stored = f"{report.queued} stored, {report.skipped} already in the outbox (skipped)"
    if mode is BatchMode.QUEUE:
        ui.info(
            f"batch --queue: {read}; {stored}; ievents flush delivers them "
            f"({timing(report.elapsed_s, report.events_per_s, 'records')})"
        )
    else:
        ui.info(
            f"batch: {read}; {stored}; {report.delivered} delivered, {report.dead} rejected, "
            f"{report.pending} pending ({timing(report.elapsed_s, report.events_per_s, 'events')})",
            style="green" if report.exit_code == ExitCode.OK else None,
        )
    if rejects is not None and (report.invalid or report.rejected_lines):
        ui.info(
            f"rejects: {report.invalid + report.rejected_lines} written to {rejects}; fix them "
            f"and replay with: ievents batch {rejects}"
        )
    if report.without_created_at and report.queued:
        one = report.without_created_at == 1
        ui.info(
            f"note: {plural(report.without_created_at, 'record')} had no created_at and "
            f"{'was' if one else 'were'} stamped now: running this file again would send "
            f"{'it' if one else 'them'} again; give created_at to make re-runs safe"
        )
    print_not_delivered(ui, report)


def print_before_error(ui: Output, report: BatchReport, mode: BatchMode) -> None:
    """What a run that an error ends (the outbox lost, a full disk) had done by then:
    which of the records read are stored, so that nobody has to guess."""
    from ..delivery.batch import BatchMode

    if not report.read or mode is BatchMode.DRY_RUN:
        return
    done = f"{report.queued} stored, {report.skipped} already in the outbox"
    if mode is BatchMode.DELIVER:
        done += f", {report.delivered} delivered"
    ui.warn(
        f"batch: stopped by the error below after reading {plural(report.read, 'record')}: "
        f"{report.valid} valid ({done}), {report.invalid} invalid"
    )


def print_problems_left(
    ui: Output, report: BatchReport, display: BatchDisplay, rejects: str | None
) -> None:
    """What went wrong beyond the lines already shown while the batch ran."""
    if report.input_error:
        ui.error(f"the input broke off: {report.input_error}")
    more_invalid = report.invalid - display.problems_shown
    if report.invalid and rejects is None and more_invalid > 0:
        ui.error(
            f"... and {more_invalid} more invalid record{'s' if more_invalid != 1 else ''} "
            "(--rejects PATH keeps them all, with line numbers, for fixing and replay)"
        )
    if report.dead > display.dead_shown:
        ui.error(f"... and {report.dead - display.dead_shown} more rejected by Intercom")


def print_not_delivered(ui: Output, report: BatchReport) -> None:
    """Events of this run still pending: interrupted, or why delivery stopped."""
    flush = report.flush
    if report.interrupted:
        ui.error(
            f"interrupted; {plural(report.pending, 'event')} stored and pending",
            "resume with: ievents flush (or run the same batch again: it skips what was delivered)",
        )
    elif flush is not None and report.pending:
        why = stop_cause(flush.stopped)
        last = flush.last_failure
        detail = f" (last: {status_text(last.status)})" if last is not None else ""
        parts = []
        if report.failed:
            parts.append(f"{report.failed} failed in this run: {why}{detail}")
        if report.not_due:
            parts.append(
                f"{report.not_due} not sent: {why}"
                if flush.stopped
                else f"{report.not_due} not sent: not due yet (an earlier attempt failed) "
                "or waiting for another workspace"
            )
        if report.elsewhere:
            parts.append(f"{report.elsewhere} claimed by another ievents process")
        only_elsewhere = report.elsewhere == report.pending
        ui.error(
            f"{plural(report.pending, 'event')} not delivered yet ({'; '.join(parts)}); "
            f"{agree(report.pending, 'it is', 'they are')} safe in the outbox",
            "see where they are with: ievents outbox status (a claim whose process died "
            "lapses with its lease; ievents flush then takes them)"
            if only_elsewhere
            else f"deliver {agree(report.pending, 'it', 'them')} later with: ievents flush",
        )
    if flush is not None:
        for destination, count in flush.waiting_elsewhere:
            ui.info(waiting_elsewhere_text(destination, count))


class InputFormat(str, Enum):
    """The input formats --format offers (shell completion lists them)."""

    ndjson = "ndjson"
    csv = "csv"


@shared(
    "outbox",
    *SETTINGS,
    *OUTPUTS,
    verbose=typer.Option(
        "--verbose", "-v", help="Progress as a line every 10 s on stderr.", rich_help_panel=OUTPUT
    ),
)
def batch(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="NDJSON or CSV file (or .gz), - for standard input.",
            show_default=False,
        ),
    ] = "-",
    input_format: Annotated[
        InputFormat | None,
        typer.Option(
            "--format",
            case_sensitive=False,
            help="ndjson or csv. [default: from the extension]",
            rich_help_panel=INPUT,
            show_default=False,
        ),
    ] = None,
    rejects: Annotated[
        str | None,
        typer.Option(
            "--rejects",
            metavar="PATH",
            help="Write invalid and rejected records here (NDJSON).",
            rich_help_panel=INPUT,
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            "-n",
            help="Read and validate everything; store and send nothing.",
            rich_help_panel=INPUT,
        ),
    ] = False,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue",
            help="Store in the outbox only; ievents flush sends them.",
            rich_help_panel=DELIVERY,
        ),
    ] = False,
    resend: Annotated[
        bool,
        typer.Option(
            "--resend",
            help="Send again records already delivered.",
            rich_help_panel=DELIVERY,
        ),
    ] = False,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            "-c",
            metavar="N",
            min=1,
            max=256,
            help="Requests in flight, 1-256.",
            rich_help_panel=DELIVERY,
        ),
    ] = 32,
    max_rate: Annotated[
        float | None,
        typer.Option(
            "--max-rate",
            min=0.001,
            callback=finite,
            metavar="N",
            help="At most N events a second (pacing applies anyway).",
            rich_help_panel=DELIVERY,
            show_default=False,
        ),
    ] = None,
    max_time: Annotated[
        float | None,
        typer.Option(
            "--max-time",
            metavar="SECONDS",
            min=0.0,
            callback=finite,
            help="Start no new delivery after this long.",
            rich_help_panel=DELIVERY,
            show_default=False,
        ),
    ] = None,
    *,
    opts: Options,
) -> None:
    """Send the events of an NDJSON or CSV file or stdin, paced, resumable.

    Examples:
      ievents batch events.ndjson.gz --rejects rejects.ndjson
      zcat export.csv.gz | ievents batch - --format csv --json
    """
    ui = opts.output()
    from ..delivery.batch import BatchMode

    mode = BatchMode.DRY_RUN if dry_run else BatchMode.QUEUE if queue else BatchMode.DELIVER

    with reporting(ui, opts.debug):
        if dry_run and queue:
            raise UsageError("--dry-run and --queue cannot be combined: choose one")
        if file == "-" and current().stdin_isatty:
            raise UsageError(
                "no input: give a FILE, or pipe NDJSON into ievents batch - "
                "(see ievents batch --help)"
            )
        report = run_batch(
            ui,
            file=file,
            input_format=input_format.value if input_format else None,
            rejects=rejects,
            mode=mode,
            resend=resend,
            concurrency=concurrency,
            max_rate=max_rate,
            max_time=max_time,
            opts=opts,
        )
        if report.exit_code != ExitCode.OK:
            raise typer.Exit(int(report.exit_code))


def open_batch_input(file: str, input_format: str | None) -> InputSource:
    """The input: a file, or for ``-`` a reader of its own on standard input.

    The batch reads in a thread that a stop may leave waiting on an idle pipe. Were that
    sys.stdin's own buffer, the interpreter would abort at exit (it flushes sys.stdin, whose
    lock the waiting thread holds); a second reader on descriptor 0 avoids that.
    """
    from ..input.readers import InputSource, detect_format, open_input

    if file != "-":
        return open_input(file, input_format)
    chosen = detect_format(file, input_format)
    stream = current().stdin_reader()  # never closed: see above
    return InputSource("<stdin>", chosen, stream, owned=False)


def run_batch(
    ui: Output,
    *,
    file: str,
    input_format: str | None,
    rejects: str | None,
    mode: BatchMode,
    resend: bool,
    concurrency: int,
    max_rate: float | None,
    max_time: float | None,
    opts: Options,
) -> BatchReport:
    """Open everything, run the batch with progress and signals, print the summary."""
    from ..delivery.batch import BatchMode, BatchRun
    from ..input.readers import RejectsWriter

    env = opts.environment()
    settings = None
    if mode is not BatchMode.DRY_RUN:
        # Configuration is checked before anything is read or stored; capturing needs the
        # token too (each row is bound to its workspace), though --queue sends nothing.
        settings = opts.settings()
    with open_batch_input(file, input_format) as source:
        writer = RejectsWriter(rejects, input_path=file) if rejects else None
        try:
            display = BatchDisplay(ui, rejects)
            dry = mode is BatchMode.DRY_RUN
            store = None if dry else open_outbox(opts.outbox_location(), env)
            try:
                pacer = None
                if mode is BatchMode.DELIVER:
                    from ..http.pacing import RateLimitPacer

                    pacer = RateLimitPacer(max_rate=max_rate)
                stop = threading.Event()
                run = BatchRun(
                    source,
                    mode=mode,
                    store=store,
                    settings=settings,
                    rejects=writer,
                    resend=resend,
                    concurrency=concurrency,
                    max_time=max_time,
                    pacer=pacer,
                    stop=stop,
                    on_invalid=display.invalid,
                    on_result=display.result,
                )
                with stop_on_signals(stop), progress_reporting(ui, run, display):
                    try:
                        report = run.run()
                    except IeventsError:
                        print_before_error(ui, run.report, mode)
                        raise
            finally:
                if store is not None:
                    store.close()
        finally:
            if writer is not None:
                writer.close()
    if ui.json_mode:
        ui.json(summary_json(report, rejects, mode))
    print_summary(ui, report, display, rejects, mode)
    return report
