"""scripts/suite-under-load: runs a suite N times beside busy processes, reports each run,
and leaves no process behind, whether it ends or is stopped."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from helpers import wait_for

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "suite-under-load"
DEADLINE_S = 120.0
Popen = subprocess.Popen[str]

TINY_SUITE = """\
import os
from pathlib import Path


def test_ok():
    pass


def test_bad():
    assert 0


def test_blocks():
    Path(os.environ["PID_FILE"]).write_text(str(os.getpid()))
    import signal

    signal.pause()  # until the script, stopped, kills this run
"""


def load_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("suite_under_load", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look their module up while it runs
    try:
        loader.exec_module(module)
    finally:
        del sys.modules[loader.name]
    return module


def tiny_suite(tmp_path: Path) -> Path:
    folder = tmp_path / "suite"
    folder.mkdir()
    # Not this project's settings; no plugins: a run of it costs little CPU.
    (folder / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    (folder / "test_tiny.py").write_text(TINY_SUITE)
    return folder


def run_script(folder: Path, *args: str, env: dict[str, str] | None = None) -> Popen:
    """The script on the suite in ``folder``, with this Python and no autoloaded plugins."""
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), "--dir", str(folder), "--python", sys.executable, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **(env or {})},
    )


def finish(script: Popen) -> tuple[int, str]:
    out, _ = script.communicate(timeout=DEADLINE_S)
    return script.returncode, out


def gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie not yet reaped by init counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_until_gone(pids: list[int]) -> None:
    """Until every one of ``pids`` has ended (generous deadline, ends as soon as they have)."""
    wait_for(lambda: all(gone(pid) for pid in pids), timeout=DEADLINE_S, what=f"{pids} all ended")


def busy_pids(output: str) -> list[int]:
    line = next(line for line in output.splitlines() if line.startswith("busy processes:"))
    return [int(pid) for pid in line.split(":", 1)[1].split()]


def test_each_run_is_reported_and_a_failed_run_fails_the_series(tmp_path: Path) -> None:
    folder = tiny_suite(tmp_path)
    code, out = finish(
        run_script(
            folder,
            *("--runs", "2", "--busy", "1", "--log-dir", str(tmp_path / "logs")),
            *("--config", "A=-k bad", "--config", "B=MARK=1 -k ok"),
            *("--", "-p", "no:faulthandler"),
        )
    )
    assert code == 1, out
    runs = [line for line in out.splitlines() if line.startswith("run ")]
    assert [line.split("]")[0] for line in runs] == ["run 1 [A", "run 2 [B", "run 3 [B", "run 4 [A"]
    assert "[A] exit 1: 0 passed, 1 failed, 0 errors, 0 skipped in " in runs[0]
    assert "[B] exit 0: 1 passed, 0 failed, 0 errors, 0 skipped in " in runs[1]
    assert "    FAILED test_tiny.py::test_bad - assert 0" in out
    assert "[A] 2 runs, 2 failed, wall min/median/max " in out
    assert "[B] 2 runs, 0 failed, wall min/median/max " in out and "% vs A" in out
    assert out.splitlines()[-1] == "summary: 4 runs beside 1 busy processes, 2 failed"
    assert sorted(path.name for path in (tmp_path / "logs").iterdir()) == [
        "run01-A.log",
        "run02-B.log",
        "run03-B.log",
        "run04-A.log",
    ]
    wait_until_gone(busy_pids(out))


def test_all_runs_passing_exit_0(tmp_path: Path) -> None:
    code, out = finish(
        run_script(tiny_suite(tmp_path), "--runs", "1", "--busy", "0", "--", "-k", "ok")
    )
    assert code == 0, out
    assert "run 1 exit 0: 1 passed, 0 failed" in out
    assert out.splitlines()[-1] == "summary: 1 runs beside 0 busy processes, all passed"


def test_a_run_that_collects_no_test_fails_the_series(tmp_path: Path) -> None:
    folder = tiny_suite(tmp_path)
    code, out = finish(run_script(folder, "--runs", "1", "--busy", "0", "--", "-k", "nothing"))
    assert code == 1, out
    assert "run 1 exit 5: 0 passed" in out


def test_stopped_with_sigterm_it_kills_the_busy_processes_and_the_run(tmp_path: Path) -> None:
    pid_file = tmp_path / "pytest.pid"
    script = run_script(
        tiny_suite(tmp_path), "--runs", "1", "--busy", "1", "--", "-k", "blocks",
        env={"PID_FILE": str(pid_file)},
    )  # fmt: skip
    try:
        assert script.stdout is not None
        header = "".join(script.stdout.readline() for _ in range(2))
        wait_for(
            lambda: pid_file.exists() and pid_file.read_text(),
            timeout=DEADLINE_S,
            what="the run started its test",
        )
        script.send_signal(signal.SIGTERM)
        assert script.wait(timeout=DEADLINE_S) == 128 + signal.SIGTERM
    finally:
        if script.poll() is None:
            script.kill()
        script.communicate()
    wait_until_gone([*busy_pids(header), int(pid_file.read_text())])


def test_counts_are_read_from_pytests_last_summary_line() -> None:
    counts = load_script().counts
    assert counts("x\n1 failed, 1090 passed, 12 skipped, 3 warnings in 70.12s (0:01:10)\n") == {
        "failed": 1,
        "passed": 1090,
        "skipped": 12,
    }
    assert counts("2 passed, 1 error in 3.0s") == {"passed": 2, "error": 1}
    assert counts("== 3 errors in 1.2s ==") == {"error": 3}
    assert counts("no tests ran in 0.50s") == {}
    assert counts("Traceback: the run crashed") == {}
