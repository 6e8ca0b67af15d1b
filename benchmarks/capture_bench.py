"""Benchmark scenarios 11 and 12 (issue 24, part 6): bulk capture beside its floor.

11. ``ievents batch FILE --queue`` into a fresh SQLite outbox, against
    ``floor_batch_queue.py``: ``json.loads`` per line, the outbox's de-duplication key
    (SHA-256 of the canonical JSON), and one ``executemany`` in one transaction into a
    fresh SQLite file with the key UNIQUE.
12. ``ievents batch FILE --dry-run`` against ``floor_batch_dry_run.py``: ``json.loads`` per
    line and a look at each field.

The four take turns (queue, its floor, dry run, its floor; again...), each a fresh child
process timed from spawn to exit, at least 3 runs each; the table gives medians and the
targets the ratios. ``--smoke`` runs them once on a tiny file, so CI keeps the scripts
working; its ratios say nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from run import Context, Row, Target

BENCH_DIR = Path(__file__).resolve().parent
QUEUE_FLOOR = "floor: parse, key, one executemany"
DRY_FLOOR = "floor: parse, look at the fields"
QUEUE_LIMIT = 1.5
DRY_LIMIT = 2.0


def scenario_capture(ctx: Context, rows: list[Row]) -> None:
    """11 and 12: ``batch --queue`` and ``batch --dry-run`` beside their floors, interleaved."""
    from run import Contender, Row, compare, ievents_batch, summary_check, write_ndjson

    n = ctx.sizes.ndjson_lines
    source = ctx.workdir / "events.ndjson"
    write_ndjson(source, n)
    queue_name = f"11. {n:,}-line NDJSON, batch --queue beside its floor"
    dry_name = f"12. {n:,}-line NDJSON, batch --dry-run beside its floor"

    def queue_floor(ctx: Context, url: str, index: int, rundir: Path) -> list[str]:
        script = BENCH_DIR / "floor_batch_queue.py"
        return [ctx.python, str(script), str(source), str(rundir / "floor.sqlite3")]

    def dry_floor(ctx: Context, url: str, index: int, rundir: Path) -> list[str]:
        return [ctx.python, str(BENCH_DIR / "floor_batch_dry_run.py"), str(source)]

    def status(flag: str) -> str:
        from run import NOT_BUILT

        return "ok" if ctx.batch_has(flag) else NOT_BUILT

    contenders = [
        Contender(
            Row(queue_name, "ievents batch --queue", n, is_ievents=True, status=status("--queue")),
            ievents_batch(["--queue"]),
            needs_server=False,
            check=summary_check("queued", n),
        ),
        Contender(
            Row(queue_name, QUEUE_FLOOR, n),
            queue_floor,
            needs_server=False,
            check=floor_check("stored", n),
        ),
        Contender(
            Row(
                dry_name,
                "ievents batch --dry-run",
                n,
                unit="lines",
                is_ievents=True,
                status=status("--dry-run"),
            ),
            ievents_batch(["--dry-run"]),
            needs_server=False,
            check=summary_check("valid", n),
        ),
        Contender(
            Row(dry_name, DRY_FLOOR, n, unit="lines"),
            dry_floor,
            needs_server=False,
            check=floor_check("valid", n),
        ),
    ]
    rows += [c.row for c in contenders]
    compare(ctx, "capture floors", contenders, ctx.sizes.capture_repeat)
    source.unlink()


def floor_check(key: str, expected: int):  # type: ignore[no-untyped-def]
    """A floor script's run counts only when it printed ``{key: expected}``."""

    def check(result, row):  # type: ignore[no-untyped-def]
        summary = result.json_stdout() or {}
        got = summary.get(key)
        return None if got == expected else f"floor printed {key}={got}, expected {expected}"

    return check


def capture_targets(rows: list[Row]) -> list[Target]:
    """Issue 24 part 6: each command's median over its floor's."""
    from run import find, ratio_target

    return [
        ratio_target(
            rows,
            "batch --queue / its floor",
            find(rows, "11.", "ievents batch --queue"),
            find(rows, "11.", QUEUE_FLOOR),
            QUEUE_LIMIT,
        ),
        ratio_target(
            rows,
            "batch --dry-run / its floor",
            find(rows, "12.", "ievents batch --dry-run"),
            find(rows, "12.", DRY_FLOOR),
            DRY_LIMIT,
        ),
    ]
