"""What many test modules need, defined once: waiting, NDJSON and events, seeding an
outbox, starting the CLI as a process, running it on a terminal, the relay.

Plain functions and classes. The fixtures built on them live in ``conftest.py`` (its
"helpers" section): ``start_cli`` starts ``python -m intercom_events_cli`` in the clean
environment ``run_cli_process`` uses and stops what is still running after the test.

No test waits a fixed time: :func:`wait_for` polls something observable (a line printed,
a row stored, a request received) until it holds, with a generous deadline that ends
early.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from intercom_events_cli.event import Event
    from intercom_events_cli.outbox import OutboxRow

CREATED = 1_700_000_000
T = TypeVar("T")


# -- waiting ---------------------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], T],
    *,
    timeout: float = 60.0,
    what: str,
    interval: float = 0.02,
    alive: subprocess.Popen[Any] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something true, and return that.

    The deadline is generous (a loaded machine is slow, not broken) and ends early: most
    waits last milliseconds. At the deadline: an AssertionError naming ``what``. With
    ``alive``, the process the wait is about: should it exit first, the wait fails at once
    (with its exit code) instead of running into the deadline.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            value = predicate()  # what it did just before it exited counts
            if value:
                return value
            raise AssertionError(f"the process exited ({alive.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)  # a poll interval, not a guess at how long something takes


def run_guarded(run: Callable[[], T], stop: threading.Event, seconds: float = 120) -> T:
    """``run()`` (an in-process relay's ``run``), with ``stop`` set after ``seconds`` should
    it not end by itself: a guard that ends a test whose relay never got there (what it
    awaited is then missing from what the test checks), not a deadline it measures."""
    guard = threading.Timer(seconds, stop.set)
    guard.start()
    try:
        return run()
    finally:
        guard.cancel()


# -- NDJSON and events -----------------------------------------------------------------------


def ndjson(records: Iterable[Any]) -> str:
    """NDJSON text: dicts (and lists, numbers) are dumped, strings taken as they are."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def ndjson_bytes(*records: Any) -> bytes:
    """:func:`ndjson` of ``records``, encoded as UTF-8."""
    return ndjson(records).encode()


def record(n: int, name: str = "event", **fields: Any) -> dict[str, Any]:
    """The record of event number ``n``: user ``u{n}``, created at ``CREATED + n``."""
    return {"event_name": name, "user_id": f"u{n}", "created_at": CREATED + n, **fields}


def order_record(n: int, name: str = "order-placed", **fields: Any) -> dict[str, Any]:
    """A record with metadata that is also, exactly, the body Intercom should receive."""
    made: dict[str, Any] = {
        "event_name": name,
        "created_at": CREATED + n,
        "user_id": f"u{n}",
        "metadata": {"n": n, "plan": "pro"},
    }
    made.update(fields)
    return made


def event_body(name: str = "ordered", created_at: int = CREATED, **extra: Any) -> dict[str, Any]:
    """A POST /events body as a client sends it; user ``u1`` unless ``extra`` names
    someone (user_id, email or id)."""
    body: dict[str, Any] = {"event_name": name, "created_at": created_at}
    if not {"user_id", "email", "id"} & extra.keys():
        body["user_id"] = "u1"
    body.update(extra)
    return body


def key(body: Any) -> str:
    """A JSON body as a comparable key (its keys sorted)."""
    return json.dumps(body, sort_keys=True)


def write(path: Path, text: str | bytes) -> Path:
    """Write ``text`` (UTF-8) or bytes to ``path``; returns the path."""
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def numbered_ndjson(count: int, *, start: int = 0, name: str = "event") -> str:
    """NDJSON of records ``start`` .. ``start + count - 1`` (see :func:`record`)."""
    return ndjson(record(n, name) for n in range(start, start + count))


def event(n: int = 1, name: str = "signed-up") -> Event:
    """Event number ``n`` as the package builds it: user ``u{n}``, created at ``CREATED + n``."""
    from intercom_events_cli.event import Event

    return Event.create(name, user_id=f"u{n}", created_at=CREATED + n)


def seed_outbox(
    path: Path, count: int, *, name: str = "signed-up", start: int = 0, opener: Any = None
) -> list[Event]:
    """Capture events ``start`` .. ``start + count - 1`` in the SQLite outbox at ``path``
    (or in what ``opener.open(path)`` opens); returns them."""
    from intercom_events_cli.outbox import SqliteOutbox

    events = [event(n, name) for n in range(start, start + count)]
    with (opener or SqliteOutbox).open(path) as store:
        store.add_many(events)
    return events


def outbox_file(tmp_path: Path) -> Path:
    """The SQLite outbox the test environment points at (``IEVENTS_OUTBOX`` of base_env)."""
    return tmp_path / "outbox.sqlite3"


def outbox_rows(path: Path) -> list[OutboxRow]:
    """Every row of the SQLite outbox at ``path``, in every state."""
    from intercom_events_cli.outbox import SqliteOutbox, State

    with SqliteOutbox.open(path) as store:
        return store.rows(list(State))


def outbox_states(tmp_path: Path) -> Counter[str]:
    """The rows of the test's SQLite outbox (``tmp_path/outbox.sqlite3``) by state."""
    from intercom_events_cli.outbox import SqliteOutbox, State

    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as store:
        return Counter(row.state.value for row in store.rows(list(State)))


def store_states(location: str | Path) -> Counter[str]:
    """The rows of the outbox at ``location`` (a SQLite file or a PostgreSQL URI), by state."""
    from intercom_events_cli.outbox.rows import State
    from intercom_events_cli.outbox.store import open_store

    with open_store(str(location), {}) as store:
        return Counter(row.state.value for row in store.rows(list(State)))


def accepted_bodies(fake: Any) -> Counter[bytes]:
    """Every POST /events body the fake Intercom answered 202, counted."""
    return Counter(r.body for r in fake.posts() if r.status == 202)


def sql(uri: str, statement: str, params: Any = None) -> list[Any]:
    """Run ``statement`` on the PostgreSQL database ``uri`` (autocommit); its rows, if any."""
    import psycopg

    with psycopg.connect(uri, autocommit=True) as db:
        cursor = db.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def app_uri(pg_uri: str) -> str:
    """The same database as the password-protected, unprivileged application role."""
    from pg_server import APP_PASSWORD, APP_USER

    return pg_uri.replace("ievents_test@", f"{APP_USER}:{APP_PASSWORD}@")


def seed_fake(fake: Any, count: int, user_id: str = "u-1", name: str = "seeded") -> None:
    """Store ``count`` events straight in the fake Intercom (faster than one CLI run
    each): ``{name}-{i}`` created at ``CREATED + i``; the requests are then forgotten."""
    import httpx
    from conftest import TOKEN

    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        for i in range(count):
            body = {"event_name": f"{name}-{i}", "created_at": CREATED + i, "user_id": user_id}
            assert c.post("/events", json=body).status_code == 202
    fake.requests.clear()


# -- the CLI as a process --------------------------------------------------------------------


def cli_argv(args: Sequence[str], python_flags: Sequence[str] = ()) -> list[str]:
    """``python [FLAGS] -m intercom_events_cli ARGS``."""
    return [sys.executable, *python_flags, "-m", "intercom_events_cli", *args]


def launch(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    python_flags: Sequence[str] = (),
    **popen: Any,
) -> subprocess.Popen[Any]:
    """Start ``python -m intercom_events_cli ARGS`` with exactly ``env`` (no inheritance)."""
    return subprocess.Popen(cli_argv(args, python_flags), env=dict(env), cwd=cwd, **popen)


def run_process(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    python_flags: Sequence[str] = (),
    input: bytes | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m intercom_events_cli ARGS`` to the end; the token checked in its
    output."""
    completed = subprocess.run(
        cli_argv(args, python_flags),
        input=input,
        capture_output=True,
        env=dict(env),
        cwd=cwd,
        timeout=timeout,
    )
    check_no_token(completed.stdout, completed.stderr)
    return completed


def check_no_token(*outputs: str | bytes | None) -> None:
    """Fail if the test token appears in any of ``outputs``."""
    from conftest import assert_no_token

    texts = [o.decode("utf-8", "replace") if isinstance(o, bytes) else o or "" for o in outputs]
    assert_no_token(*texts)


def run_without_module(
    module: str, args: Sequence[str], *, env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``ievents ARGS`` in a process of its own where importing ``module`` fails, as
    where an optional extra is not installed (this process may have imported it already,
    and cannot unimport it); the token checked in its output."""
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from intercom_events_cli.cli import main\n"
        f"sys.exit(main({list(args)!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(env), timeout=timeout
    )
    check_no_token(done.stdout, done.stderr)
    return done


def finish(process: subprocess.Popen[bytes], timeout: float = 60) -> tuple[int, str, str]:
    """Wait for a process started with pipes; its code, stdout and stderr (token checked)."""
    out, err = process.communicate(timeout=timeout)
    stdout = (out or b"").decode("utf-8", "replace")
    stderr = (err or b"").decode("utf-8", "replace")
    check_no_token(stdout, stderr)
    return process.returncode, stdout, stderr


@dataclass
class TerminalRun:
    """What a run on a pseudo-terminal showed: the terminal's bytes as text, and stderr
    when that was a pipe."""

    code: int
    screen: str
    stderr: str


def run_on_terminal(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    stderr_on_terminal: bool = True,
    timeout: float = 120,
) -> TerminalRun:
    """Run the CLI with stdout (and stderr, unless ``stderr_on_terminal`` is False: then a
    pipe) on a pseudo-terminal and stdin from /dev/null; read the terminal until it
    closes. The token is checked in everything it wrote."""
    leader, follower = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the terminal closed with the process
                return
            if not data:
                return
            chunks.append(data)

    try:
        process = launch(
            args,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=follower if stderr_on_terminal else subprocess.PIPE,
        )
        os.close(follower)
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            _, err = process.communicate(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        reader.join(timeout)
    finally:
        os.close(leader)
    screen = b"".join(chunks).decode("utf-8", "replace")
    stderr = (err or b"").decode("utf-8", "replace")
    check_no_token(screen, stderr)
    return TerminalRun(process.returncode, screen, stderr)


# -- the relay (flush --watch) ---------------------------------------------------------------


class Relay:
    """A ``flush --watch`` process whose stdout and stderr lines are read as they come."""

    def __init__(self, env: Mapping[str, str], cwd: Path, outbox: str, *extra: str) -> None:
        self.outbox = outbox
        self.process = launch(
            ["flush", "--watch", *extra],
            env={**env, "IEVENTS_OUTBOX": outbox},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._readers = [
            threading.Thread(target=self._read, args=(stream, name), daemon=True)
            for stream, name in ((self.process.stdout, "stdout"), (self.process.stderr, "stderr"))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, name: str) -> None:
        for line in stream:
            self._lines[name].append(line)

    @property
    def stdout(self) -> str:
        """What it wrote on stdout so far."""
        return "".join(self._lines["stdout"])

    @property
    def stderr(self) -> str:
        """What it wrote on stderr so far."""
        return "".join(self._lines["stderr"])

    def wait_for_stderr(self, text: str, timeout: float = 60) -> None:
        """Wait until ``text`` is on stderr (failing early should the relay end)."""

        def seen() -> bool:
            if text in self.stderr:
                return True
            assert self.process.poll() is None, f"the relay ended: {self.stderr}"
            return False

        wait_for(seen, timeout=timeout, what=f"{text!r} on the relay's stderr")

    def wait_until_idle(self, timeout: float = 60) -> None:
        """Wait until the relay, its signal handlers in place, waits for new rows: it said
        it is watching, and then opened what it watches (PostgreSQL: a ``LISTEN`` session;
        SQLite: a second, read-only, descriptor on the file)."""
        self.wait_for_stderr("watching ", timeout)
        if self.outbox.startswith("postgresql://"):
            wait_for(self._listening, timeout=timeout, what="the relay's LISTEN session")
        elif Path(f"/proc/{self.process.pid}/fd").is_dir():
            wait_for(
                lambda: self._descriptors_on_the_outbox() >= 2,
                timeout=timeout,
                what="the relay's watching connection to the SQLite outbox",
            )

    def _listening(self) -> bool:
        import psycopg

        with psycopg.connect(self.outbox, autocommit=True) as db:
            row = db.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %'"
            ).fetchone()
        return bool(row and row[0])

    def _descriptors_on_the_outbox(self) -> int:
        target = os.path.realpath(self.outbox)
        folder = Path(f"/proc/{self.process.pid}/fd")
        count = 0
        for link in folder.iterdir():
            try:
                count += os.readlink(link) == target
            except OSError:  # closed meanwhile
                continue
        return count

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``sig`` and wait for the exit; the exit code (output token-checked)."""
        self.process.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 60) -> int:
        """Wait for the exit (of its own accord, or after a signal) and the last of its
        output; the exit code (output token-checked)."""
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout)
        check_no_token(self.stdout, self.stderr)
        return code

    def kill(self) -> None:
        """End it, should it still run."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for reader in self._readers:
            reader.join(5)


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text as ``{(sample name, sorted labels): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(port: int, timeout: float = 30) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The metrics a relay serves on 127.0.0.1:``port``, parsed (:func:`parse_metrics`)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as answer:
        return parse_metrics(answer.read().decode())


# -- a run measured: wall time and peak memory (the hostile-server and -input tests) ---------

# Peak RSS bound for one CLI process: Python, httpx and rich take ~60 MB; a read of a
# hostile body would take hundreds of MB or more.
RSS_BOUND_KB = 200 * 1024

# Runs the CLI as its only child and writes that child's peak RSS (KB) to argv[1]: the
# RUSAGE_CHILDREN of pytest itself would mix in every earlier test's processes.
_MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


@dataclass
class MeasuredRun:
    """One run of the CLI: exit code, output, wall time and the process's peak RSS."""

    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_kb: int


def measured_run(
    tmp_path: Path,
    url: str | None,
    *args: str,
    stdin: bytes | None = None,
    stdin_file: Path | None = None,
    env: dict[str, str] | None = None,
) -> MeasuredRun:
    """Run ``ievents ARGS`` against ``url`` in the clean test environment (``base_env``);
    measure its wall time and peak RSS."""
    from conftest import base_env

    full_env = base_env(tmp_path, url) | (env or {})
    (tmp_path / "work").mkdir(exist_ok=True)
    rss_file = tmp_path / "peak_rss_kb"
    started = time.monotonic()
    with open(stdin_file or os.devnull, "rb") as source:
        completed = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(rss_file), *cli_argv(args)],
            input=stdin,
            stdin=None if stdin is not None else source,
            capture_output=True,
            env=full_env,
            cwd=tmp_path / "work",
            timeout=180,
        )
    result = MeasuredRun(
        completed.returncode,
        completed.stdout.decode("utf-8", "replace"),
        completed.stderr.decode("utf-8", "replace"),
        time.monotonic() - started,
        int(rss_file.read_text()),
    )
    check_no_token(result.stdout, result.stderr)
    return result


def pending_count(tmp_path: Path) -> int:
    """Rows of the test's SQLite outbox (``tmp_path/outbox.sqlite3``) still to deliver."""
    import sqlite3

    path = tmp_path / "outbox.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM events WHERE state = 'pending'").fetchone()[0])
