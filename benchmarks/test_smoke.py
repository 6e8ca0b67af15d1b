"""The benchmark harness keeps working: its smoke run exits 0 and prints its tables.

Nothing here looks at a timing; speed is the benchmark's business, not the tests'. It is
the harness's test, not the product's: ``pytest`` (testpaths: tests/) leaves it out, and
``.ci/run`` runs it as a step of its own (``python -m pytest -q -n0 benchmarks``), as it
takes half a minute of one core that the suite's workers would otherwise share.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_benchmark_smoke_run_prints_results_and_targets(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--smoke", "--quiet", "--json", str(results)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "| scenario" in done.stdout and "| target (issue 6, 11)" in done.stdout
    for scenario in (
        "1. one event",
        "2. send --queue",
        "3. ",
        "4. rate limit",
        "5. ",
        "9. ",
        "10. ",
        "11. ",
        "12. ",
        "13. ",
        "14. ",
    ):
        assert f"| {scenario}" in done.stdout, f"no row for scenario {scenario!r}"
    assert "| ievents send " in done.stdout
    assert "| bare httpx script " in done.stdout
    for target in ("batch --queue / its floor", "batch --dry-run / its floor"):
        assert f"| {target} " in done.stdout, f"no target {target!r}"
    assert results.stat().st_size > 0
