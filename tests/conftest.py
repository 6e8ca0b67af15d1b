"""Shared fixtures: a fake Intercom on 127.0.0.1 and the real CLI in a subprocess.

Every CLI run is checked for the token: it must never appear in stdout or stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_intercom import FakeIntercom  # noqa: E402

TOKEN = "tok_TEST_s3cr3t_9f8e7d6c5b4a"
REPO_ROOT = Path(__file__).resolve().parent.parent


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


def make_runner(tmp_path: Path, base_url: str | None) -> RunCli:
    """A function that runs ``ievents ARGS`` as a real subprocess in ``tmp_path``."""
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)

    def run(
        *args: str,
        input: str | bytes | None = None,
        env: dict[str, str | None] | None = None,
        cwd: Path | None = None,
        timeout: float = 120,
    ) -> CliResult:
        full_env = base_env(tmp_path, base_url)
        for key, value in (env or {}).items():
            if value is None:
                full_env.pop(key, None)
            else:
                full_env[key] = value
        completed = subprocess.run(
            [sys.executable, "-m", "intercom_events_cli", *args],
            input=input.encode() if isinstance(input, str) else input,
            capture_output=True,
            env=full_env,
            cwd=cwd or workdir,
            timeout=timeout,
        )
        result = CliResult(
            args=args,
            code=completed.returncode,
            stdout=completed.stdout.decode("utf-8", "replace"),
            stderr=completed.stderr.decode("utf-8", "replace"),
        )
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
    """Run the real CLI (subprocess) against the fake server, checking for token leaks."""
    return make_runner(tmp_path, fake.url)


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A real PostgreSQL server for the whole run (see ``tests/pg_server.py``).

    Skipped with a message where no server binaries are found; a failure under CI=true.
    """
    from pg_server import PostgresServer, find_binaries

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
        server.setup()
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
    pg_server.psql(f"CREATE DATABASE {name} TEMPLATE template0")
    pg_server.psql(f"GRANT CREATE ON DATABASE {name} TO ievents_app")
    return str(pg_server.uri(name))
