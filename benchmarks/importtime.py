"""Where a cold ievents command spends its import time, sorted by cumulative time.

    python benchmarks/importtime.py [--top N] [--runs R] -- send bench-event --user-id 1
    python benchmarks/importtime.py -- send bench-event --user-id 1 --queue

Runs ``python -X importtime -m intercom_events_cli ARGS`` R times against a fake Intercom
on 127.0.0.1 (with a temporary outbox), keeps the fastest run's report (the least disturbed
by other work) and prints the slowest imports by cumulative time, then the top-level
packages by their own total.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BENCH_TOKEN, FakeServer, run_measured  # noqa: E402

LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


def parse(report: str) -> list[tuple[int, int, int, str]]:
    """(cumulative µs, self µs, depth, module) for every line of an importtime report."""
    rows = []
    for line in report.splitlines():
        match = LINE.match(line)
        if match:
            self_us, cum_us, indent, name = match.groups()
            rows.append((int(cum_us), int(self_us), (len(indent) - 1) // 2, name))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("args", nargs=argparse.REMAINDER, help="ievents arguments after --")
    ns = parser.parse_args(argv)
    args = [a for a in ns.args if a != "--"] or ["send", "bench-event", "--user-id", "1"]

    with (
        tempfile.TemporaryDirectory(prefix="ievents-importtime-") as tmp,
        FakeServer(Path(tmp)) as server,
    ):
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": tmp,
            "XDG_STATE_HOME": tmp,
            "NO_COLOR": "1",
            "INTERCOM_ACCESS_TOKEN": BENCH_TOKEN,
            "INTERCOM_BASE_URL": server.url,
            "IEVENTS_OUTBOX": str(Path(tmp) / "outbox.sqlite3"),
        }
        argv_run = [sys.executable, "-X", "importtime", "-m", "intercom_events_cli", *args]
        best = None
        for _ in range(ns.runs):
            result = run_measured(argv_run, env=env, cwd=Path(tmp), timeout=60)
            if best is None or result.seconds < best.seconds:
                best = result
            time.sleep(0.05)
    assert best is not None
    rows = parse(best.stderr)
    if not rows:
        print(best.stderr, file=sys.stderr)
        return 1
    total_ms = sum(r[1] for r in rows) / 1000
    print(
        f"ievents {' '.join(args)}: exit {best.exit_code}, {best.seconds * 1000:.0f} ms wall "
        f"under -X importtime, {total_ms:.0f} ms in imports ({len(rows)} modules)\n"
    )
    print(f"{'cumulative':>10}  {'self':>7}  module")
    for cum, own, depth, name in sorted(rows, reverse=True)[: ns.top]:
        print(f"{cum / 1000:8.1f} ms {own / 1000:6.1f} ms  {'  ' * depth}{name}")
    top_level: dict[str, int] = {}
    for _, own, _, name in rows:
        package = name.split(".", 1)[0]
        top_level[package] = top_level.get(package, 0) + own
    print("\nby top-level package (sum of self times):")
    for package, own in sorted(top_level.items(), key=lambda kv: -kv[1])[:15]:
        print(f"{own / 1000:8.1f} ms  {package}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
