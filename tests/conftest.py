"""Shared fixtures: a fake Intercom on 127.0.0.1 and the real CLI, in-process or not.

``run_cli`` runs the CLI in this process (``cli.main(argv, env)`` with fresh streams, the
test's variables and working directory: see :func:`run_in_process`); ``run_cli_process``
runs it as a real ``python -m intercom_events_cli`` subprocess, for what only a process
shows (signals, exit at interpreter level, descriptors, import time). Every CLI run is
checked for the token: it must never appear in stdout or stderr.
"""

from __future__ import annotations

import faulthandler
import io
import json
import os
import signal
import subprocess
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_intercom import FakeIntercom  # noqa: E402

TOKEN = "tok_TEST_s3cr3t_9f8e7d6c5b4a"
REPO_ROOT = Path(__file__).resolve().parent.parent
# Set to 1 (as .ci/run does, in a step of its own) to run the tests that install from
# the package index: README's quick start, pipx install and inject. Skipped otherwise.
INSTALLS_FROM_THE_INDEX = "IEVENTS_TEST_INSTALLS"


@dataclass
class CliResult:
    """What one run of the CLI produced."""

    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as one JSON document."""
        return json.loads(self.stdout)

    def json_lines(self) -> list[Any]:
        """stdout parsed as NDJSON."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def __repr__(self) -> str:
        return (
            f"CliResult(args={self.args!r}, code={self.code}, stdout={self.stdout!r}, "
            f"stderr={self.stderr!r})"
        )


def assert_no_token(*texts: str) -> None:
    """Fail if the token leaked into any of ``texts``."""
    for text in texts:
        assert TOKEN not in text, "the access token leaked into the output"


def base_env(tmp_path: Path, base_url: str | None) -> dict[str, str]:
    """A clean environment: only what the CLI needs, nothing from the developer's shell."""
    keep = ("PATH", "SYSTEMROOT", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env.update(
        {
            "HOME": str(tmp_path / "home"),
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "INTERCOM_ACCESS_TOKEN": TOKEN,
            "IEVENTS_OUTBOX": str(tmp_path / "outbox.sqlite3"),
            "PYTHONIOENCODING": "utf-8",
        }
    )
    if base_url is not None:
        env["INTERCOM_BASE_URL"] = base_url
    return env


RunCli = Callable[..., CliResult]


def _stdio_encoding(env: dict[str, str]) -> tuple[str, str]:
    """The encoding and error handler a child's stdin and stdout get from PYTHONIOENCODING."""
    setting = env.get("PYTHONIOENCODING")
    if not setting:
        # The locale's encoding would decide: not emulated, the run needs a real process.
        raise AssertionError("in-process runs need PYTHONIOENCODING; use run_cli_process")
    encoding, _, errors = setting.partition(":")
    return encoding or "utf-8", errors or "strict"


def _reset_module_state() -> None:
    """What a fresh process starts without: registered secrets, warnings given once.

    A secret registered by an earlier run would be redacted by a later one that forgot to
    register it: the token check would pass where a real process leaks.
    """
    from intercom_events_cli.config.warning_sink import reset_process_state

    reset_process_state()


class _OutOfTime(BaseException):
    """Raised by SIGALRM in the run's main thread: no ``except Exception`` catches it."""


def _out_of_time(signum: int, frame: object) -> None:
    raise _OutOfTime


def _show_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, *_: Any
) -> None:
    # As the interpreter shows a warning: on (the run's) sys.stderr.
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno))


def run_in_process(
    args: tuple[str, ...], stdin: bytes, env: dict[str, str], cwd: Path, timeout: float
) -> tuple[int, str, str]:
    """Run ``ievents ARGS`` in this process as ``python -m intercom_events_cli`` would.

    Fresh streams (pipes: not terminals; encodings from PYTHONIOENCODING), ``os.environ``
    and the working directory set to the test's for the run (httpx reads proxy variables
    from os.environ; relative paths resolve against the cwd) and restored, as are signal
    handlers, ``sys.argv`` and the warning filters. An exception escaping ``main`` ends
    the run as it ends a process: a traceback on stderr and exit 1 (a KeyboardInterrupt:
    -SIGINT). A run past ``timeout`` raises ``subprocess.TimeoutExpired``, as the process
    runner does (SIGALRM interrupts the main thread; should that not end it, every thread's
    stack is dumped and the test run ends 30 s later).

    What stays a process's own: the pid (outbox claims name it; a claim left by a killed
    run is seen as abandoned only because that pid is gone, so such tests kill a real
    process), descriptors 0-2 (pipes, ptys, a reader closing stdout), signals sent from
    outside, and the import-time cost of a command.
    """
    from intercom_events_cli.cli import main
    from intercom_events_cli.cli.environment import Environment

    encoding, errors = _stdio_encoding(env)
    streams = [
        io.TextIOWrapper(io.BytesIO(stdin), encoding=encoding, errors=errors),
        io.TextIOWrapper(io.BytesIO(), encoding=encoding, errors=errors),
        io.TextIOWrapper(io.BytesIO(), encoding=encoding, errors="backslashreplace"),
    ]
    environment = Environment(
        stdin=streams[0],
        stdout=streams[1],
        stderr=streams[2],
        environ=dict(env),
        stdin_isatty=False,
        stdout_isatty=False,
        stderr_isatty=False,
    )
    handlers = {sig: signal.getsignal(sig) for sig in signal.valid_signals()}
    saved_environ, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    _reset_module_state()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = [str(REPO_ROOT / "intercom_events_cli" / "__main__.py"), *args]
    signal.signal(signal.SIGALRM, _out_of_time)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    faulthandler.dump_traceback_later(timeout + 30, exit=True, file=sys.__stderr__)
    timed_out = False
    try:
        with warnings.catch_warnings():
            # The interpreter's defaults (not pytest's recording), shown on stderr.
            warnings.resetwarnings()
            for category in (ImportWarning, PendingDeprecationWarning, DeprecationWarning):
                warnings.simplefilter("ignore", category)
            warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")
            warnings.simplefilter("ignore", ResourceWarning)
            warnings.showwarning = _show_warning
            try:
                code = main(list(args), environment)
            except SystemExit as exc:
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:
                    streams[2].write(f"{exc.code}\n")
                    code = 1
            except _OutOfTime:
                timed_out = True
            except KeyboardInterrupt:
                streams[2].write(traceback.format_exc())
                code = -signal.SIGINT
            except Exception:  # noqa: BLE001 - what the interpreter does with it
                streams[2].write(traceback.format_exc())
                code = 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environ)
        for sig, handler in handlers.items():
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        _reset_module_state()
    if timed_out:
        raise subprocess.TimeoutExpired(["ievents", *args], timeout)
    texts = []
    for stream in streams[1:]:
        stream.flush()
        buffer = stream.buffer
        assert isinstance(buffer, io.BytesIO)
        texts.append(buffer.getvalue().decode("utf-8", "replace"))
    return code, texts[0], texts[1]


def make_runner(tmp_path: Path, base_url: str | None, *, process: bool = False) -> RunCli:
    """A function that runs ``ievents ARGS`` in ``tmp_path/work``: in-process, or with
    ``process=True`` as a real subprocess."""
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)

    def run(
        *args: str,
        input: str | bytes | None = None,
        env: dict[str, str | None] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
    ) -> CliResult:
        full_env = cli_env(tmp_path, base_url, env)
        stdin = input.encode() if isinstance(input, str) else input
        if process:
            from helpers import run_process

            completed = run_process(
                args, env=full_env, cwd=cwd or workdir, input=stdin, timeout=timeout
            )
            code = completed.returncode
            stdout = completed.stdout.decode("utf-8", "replace")
            stderr = completed.stderr.decode("utf-8", "replace")
        else:
            code, stdout, stderr = run_in_process(
                args, stdin or b"", full_env, cwd or workdir, timeout
            )
        result = CliResult(args=args, code=code, stdout=stdout, stderr=stderr)
        assert_no_token(result.stdout, result.stderr)
        return result

    return run


@pytest.fixture
def fake() -> Iterator[FakeIntercom]:
    """A fake Intercom on 127.0.0.1 that accepts only :data:`TOKEN`."""
    with FakeIntercom(expected_token=TOKEN) as server:
        yield server


@pytest.fixture
def run_cli(tmp_path: Path, fake: FakeIntercom) -> RunCli:
    """Run the real CLI in this process against the fake server, checking for token leaks."""
    return make_runner(tmp_path, fake.url)


@pytest.fixture
def run_cli_process(tmp_path: Path, fake: FakeIntercom) -> RunCli:
    """Run the real CLI as a subprocess (``python -m``): for what only a process shows."""
    return make_runner(tmp_path, fake.url, process=True)


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A real PostgreSQL server for the whole run (see ``tests/pg_server.py``).

    Skipped with a message where no server binaries are found; a failure under CI=true.
    """
    from pg_server import PostgresServer, find_binaries, run_shared_folder

    bin_dir, origin = find_binaries()
    if bin_dir is None:
        message = (
            "no PostgreSQL server binaries: install PostgreSQL, or pip install pgserver "
            "(in the test extras), or set IEVENTS_TEST_PG_BIN"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: PostgreSQL tests are required)")
        pytest.skip(message)
    pytest.importorskip("psycopg", reason="psycopg is needed: pip install -e '.[test]'")
    server = PostgresServer(bin_dir)
    try:
        # Under xdist, from the cluster template made once per run (pg_server.py).
        server.setup(run_shared_folder())
    except Exception as exc:
        server.close()
        detail = getattr(exc, "stderr", "") or str(exc)
        raise RuntimeError(f"could not start PostgreSQL from {origin}: {detail}") from exc
    yield server
    server.close()


@pytest.fixture
def pg_uri(pg_server: Any) -> str:
    """A fresh database of its own on the session's server, as a ``postgresql://`` URI."""
    import uuid

    name = f"t_{uuid.uuid4().hex[:12]}"
    pg_server.admin(f"CREATE DATABASE {name} TEMPLATE template0")
    pg_server.admin(f"GRANT CREATE ON DATABASE {name} TO ievents_app")
    return str(pg_server.uri(name))


# -- every outbox backend -------------------------------------------------------------------

# Each backend of the registry (outbox/store.py BACKENDS, by name) as a fresh, empty outbox
# location (what --outbox / IEVENTS_OUTBOX take). A test that asks for ``store_location``
# runs once per registered backend: a new backend needs one more entry here.
# SQLite's is the file base_env() names, so the CLI runs of a test find it by default.
OUTBOX_BACKENDS: dict[str, Callable[[pytest.FixtureRequest], str]] = {
    "sqlite": lambda request: str(request.getfixturevalue("tmp_path") / "outbox.sqlite3"),
    "postgres": lambda request: str(request.getfixturevalue("pg_uri")),
}


def registered_backends() -> list[str]:
    """The outbox backends of the package's registry (``outbox/store.py`` ``BACKENDS``)."""
    from intercom_events_cli.outbox.store import BACKENDS

    return [backend.name for backend in BACKENDS]


@pytest.fixture(params=registered_backends())
def store_location(request: pytest.FixtureRequest) -> str:
    """A fresh outbox location of each registered backend in turn, for ``open_store`` or
    the CLI; a backend registered without an entry in ``OUTBOX_BACKENDS`` fails here."""
    make = OUTBOX_BACKENDS.get(request.param)
    if make is None:
        pytest.fail(
            f"the outbox backend {request.param!r} (outbox/store.py BACKENDS) has no fresh "
            "location in tests/conftest.py OUTBOX_BACKENDS: add one"
        )
    return make(request)


def pytest_configure(config: pytest.Config) -> None:
    """Before the workers start: temporary files in memory where there is room
    (``tests/scratch.py``), and the folder the workers share for the run (the PostgreSQL
    cluster template, ``tests/pg_server.py``), removed when the run ends."""
    if hasattr(config, "workerinput"):
        return  # a worker: it inherited all of this from the controller
    import scratch

    scratch.use_memory_for_temporary_files()
    if not config.getoption("numprocesses", None):
        return
    import shutil
    import tempfile

    from pg_server import SHARED_DIR_VARIABLE

    shared = tempfile.mkdtemp(prefix="ievents-tests-")
    os.environ[SHARED_DIR_VARIABLE] = shared  # the workers inherit it when they start
    config.add_cleanup(lambda: shutil.rmtree(shared, ignore_errors=True))


# == Test helpers and timing (issue 20, part 1 and 5) ========================================
# Kept apart from the scheduling hooks above. The helpers themselves are in helpers.py.

from hypothesis import settings as _hypothesis_settings  # noqa: E402

# One profile for every run: no per-example deadline (a loaded machine is slow, not wrong;
# no test asserts speed). Example counts stay each test's own.
_hypothesis_settings.register_profile("ievents", deadline=None)
_hypothesis_settings.load_profile("ievents")

# A run started in the background by a script (``pytest ... &``) ignores SIGINT, and so
# would every CLI process a test starts (an ignored signal stays ignored across exec): the
# Ctrl-C tests would wait for nothing. With Python's handler here the children start with
# the default disposition, and Python's own KeyboardInterrupt.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread: leave it
        pass

_FAKE_URL = object()  # start_cli's default base URL: the fake's
StartCli = Callable[..., "subprocess.Popen[Any]"]


@pytest.fixture
def start_cli(tmp_path: Path, fake: FakeIntercom) -> Iterator[StartCli]:
    """Start ``python -m intercom_events_cli ARGS`` as a process (``subprocess.Popen``), in
    the clean environment of ``run_cli_process`` (:func:`base_env`), in ``tmp_path/work``.

    ``env`` adds variables (None removes one); ``base_url`` replaces the fake's (None: no
    INTERCOM_BASE_URL); ``python_flags`` go before ``-m``; the rest goes to Popen. Read a
    process started with pipes through ``helpers.finish`` (the token check). Whatever
    still runs when the test ends is killed.
    """
    import helpers

    started: list[subprocess.Popen[Any]] = []
    workdir = tmp_path / "work"

    def start(
        *args: str,
        env: dict[str, str | None] | None = None,
        base_url: Any = _FAKE_URL,
        cwd: Path | None = None,
        python_flags: tuple[str, ...] = (),
        **popen: Any,
    ) -> subprocess.Popen[Any]:
        workdir.mkdir(exist_ok=True)
        full_env = cli_env(tmp_path, fake.url if base_url is _FAKE_URL else base_url, env)
        process = helpers.launch(
            args, env=full_env, cwd=cwd or workdir, python_flags=python_flags, **popen
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def start_relay(tmp_path: Path, fake: FakeIntercom) -> Iterator[Callable[..., Any]]:
    """Start a relay (``flush --watch EXTRA`` on OUTBOX, a ``helpers.Relay``) against the
    fake, in the clean environment of :func:`base_env` with ``env`` added (None removes a
    variable); its output is read as it comes and token-checked on ``stop``. Whatever
    still runs when the test ends is killed."""
    import helpers

    relays: list[helpers.Relay] = []
    workdir = tmp_path / "work"

    def start(outbox: str, *extra: str, **env: str | None) -> helpers.Relay:
        workdir.mkdir(exist_ok=True)
        relay = helpers.Relay(cli_env(tmp_path, fake.url, env), workdir, outbox, *extra)
        relays.append(relay)
        return relay

    yield start
    for relay in relays:
        relay.kill()


@pytest.fixture
def outbox(store_location: str) -> str:
    """The IEVENTS_OUTBOX value of the backend under test (each of ``OUTBOX_BACKENDS`` in
    turn): a SQLite file, or a fresh PostgreSQL database."""
    return store_location


def cli_env(
    tmp_path: Path, base_url: str | None, changes: dict[str, str | None] | None = None
) -> dict[str, str]:
    """:func:`base_env` with ``changes`` (a None value removes the variable)."""
    env = base_env(tmp_path, base_url)
    for key, value in (changes or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env
