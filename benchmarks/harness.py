"""Plumbing for the benchmark: timed child processes and the fake Intercom server.

Every measured command runs as its own child process, reaped with ``os.wait4`` (its own
CPU time). Its peak memory is the ``VmHWM`` of its own image, read from /proc while it runs
(:class:`PeakWatcher`): ``ru_maxrss`` would include the benchmark's own size.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
FAKE_SERVER = REPO_ROOT / "tests" / "fake_intercom.py"
BENCH_TOKEN = "bench-token-not-a-secret"


@dataclass
class RunResult:
    """One finished child process: wall time, exit code, its own peak RSS and its output."""

    argv: list[str]
    seconds: float
    exit_code: int
    peak_rss_mib: float
    stdout: str
    stderr: str
    timed_out: bool = False
    cpu_s: float = 0.0  # the child's own user + system time
    server_stats: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def failure_summary(self) -> str:
        """A short line saying how the run failed, for the table."""
        if self.timed_out:
            return "timed out"
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        return f"exit {self.exit_code}: {last[:70]}" if last else f"exit {self.exit_code}"

    def json_stdout(self) -> dict[str, Any] | None:
        """The last JSON object the child printed on stdout, if any."""
        for line in reversed(self.stdout.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    return value
        return None


class PeakWatcher:
    """A child's own peak RSS, from ``VmHWM`` in ``/proc/PID/status``, read every 20 ms.

    ``ru_maxrss`` from ``wait4`` is not the child's own on Linux: exec keeps the high-water
    mark of the image it replaced, which (fork or vfork) is the parent's. A benchmark parent
    that imported psycopg made every child look at least as big as itself. The mark read
    here belongs to the new image; only growth in the child's last 20 ms can be missed.
    """

    def __init__(self, pid: int) -> None:
        self._path = Path(f"/proc/{pid}/status")
        self.peak_kib = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.is_set():
            try:
                for line in self._path.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))
                        break
            except (OSError, ValueError, IndexError):
                pass
            self._done.wait(0.02)

    def stop(self, fallback_kib: int) -> float:
        """The peak in MiB (``fallback_kib`` where /proc told nothing)."""
        self._done.set()
        self._thread.join()
        return (self.peak_kib or fallback_kib) / 1024


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
    stdin_path: Path | None = None,
) -> RunResult:
    """Run ``argv`` to completion; time it from spawn to reap and read its own rusage.

    Output goes to temporary files rather than pipes so that a chatty child can never block
    on a full pipe while we sit in ``wait4``.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        open(stdin_path or os.devnull, "rb") as stdin,
    ):
        timed_out = threading.Event()
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdin=stdin, stdout=out, stderr=err, env=dict(env), cwd=cwd
        )

        def kill() -> None:
            timed_out.set()
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        peak = PeakWatcher(proc.pid)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
        # We reaped the child ourselves; tell Popen so it never waits on a recycled pid.
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return RunResult(
            argv=list(argv),
            seconds=seconds,
            exit_code=proc.returncode,
            peak_rss_mib=peak.stop(usage.ru_maxrss),  # KiB on Linux
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            timed_out=timed_out.is_set(),
            cpu_s=usage.ru_utime + usage.ru_stime,
        )


def run_quick(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run a helper command (not measured), capturing text output."""
    return subprocess.run(
        list(argv),
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class FakeServer:
    """``tests/fake_intercom.py`` as a child process, with its request counts on exit.

    Use as a context manager; ``stats`` holds ``{"posts", "accepted", "count_429"}`` once it
    has stopped.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        latency: float = 0.0,
        rate_limit: int | None = None,
        window: float = 10.0,
    ) -> None:
        self.latency = latency
        self.rate_limit = rate_limit
        self.window = window
        fd, name = tempfile.mkstemp(prefix="fake-stats-", suffix=".json", dir=workdir)
        os.close(fd)
        self._stats_file = Path(name)
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.stats: dict[str, int] = {}

    def __enter__(self) -> FakeServer:
        argv = [
            sys.executable,
            str(FAKE_SERVER),
            "--port",
            "0",
            "--latency",
            str(self.latency),
            "--stats-file",
            str(self._stats_file),
        ]
        if self.rate_limit is not None:
            argv += ["--rate-limit", str(self.rate_limit), "--window", str(self.window)]
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("READY "):
            self._proc.kill()
            self._proc.wait()
            raise RuntimeError(f"fake Intercom did not start (said {line!r})")
        self.url = line.split(" ", 1)[1]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc = self._proc
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        try:
            self.stats = json.loads(self._stats_file.read_text() or "{}")
        except (OSError, ValueError):
            self.stats = {}
        self._stats_file.unlink(missing_ok=True)


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def machine_description() -> dict[str, Any]:
    """What the numbers came from: CPU, cores, OS, Python."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }
