"""Prism, serving Intercom's own OpenAPI description as a validating mock, for the session.

Needs Node.js and Prism 5 in ``.cache/prism`` (``npm install --prefix .cache/prism
@stoplight/prism-cli@5``); the description itself travels with the code, beside this file
(``intercom-events.openapi.yaml``; ``README.md`` here gives its source and licence).
Where Node.js or Prism is missing the contract tests skip, saying what they need; with
``CI=true`` they fail instead, because CI must run them. ``pytest`` leaves this folder out
(``--ignore`` in pyproject.toml); ``pytest -n0 tests/contract`` runs it, in one process:
one Prism, one log (under ``-n`` each worker would start a Prism of its own).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
from conftest import RunCli, make_runner

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACT = Path(__file__).resolve().parent / "intercom-events.openapi.yaml"
PRISM_DIR = REPO_ROOT / ".cache" / "prism"
PRISM = PRISM_DIR / "node_modules" / ".bin" / "prism"
PRISM_PACKAGE = PRISM_DIR / "node_modules" / "@stoplight" / "prism-cli" / "package.json"
INSTALL = "npm install --prefix .cache/prism @stoplight/prism-cli@5"
START_TIMEOUT_S = 60.0

# Prism marks every rule a request breaks with ✖ ("error"), after a ⚠ line saying the
# request "did not pass the validation rules"; a request it took ends with "Responding
# with", a refused one with "Request terminated with error".
_RECEIVED = "Request received"
_DONE = re.compile(r"> Responding with|Request terminated with error")


def violations(log: str) -> list[str]:
    """The lines of a Prism log that flag a request as breaking the contract."""
    return [
        line.strip()
        for line in log.splitlines()
        if "✖" in line or "did not pass the validation rules" in line
    ]


def missing(what: str) -> NoReturn:
    """Skip (a user's clone) or, with CI=true, fail: CI must run the contract tests."""
    message = f"contract tests need {what}"
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{message} (CI=true: they must run here)", pytrace=False)
    pytest.skip(message)


@dataclass
class Prism:
    """A running Prism mock: its URL and its log, read in segments per test.

    ``excluded`` holds log ranges of requests broken on purpose; ``checked`` counts the
    requests the tests have found clean.
    """

    url: str
    log_path: Path
    process: subprocess.Popen[bytes]
    excluded: list[tuple[int, int]] = field(default_factory=list)
    checked: int = 0

    def log(self) -> str:
        """Everything Prism has logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def mark(self) -> int:
        """A position in the log; :meth:`segment` returns what came after it."""
        return len(self.log())

    def segment(self, mark: int, requests: int, timeout: float = 10.0) -> str:
        """The log after ``mark`` once ``requests`` requests are answered in it."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()[mark:]
            if len(_DONE.findall(text)) >= requests or time.monotonic() > deadline:
                return text
            time.sleep(0.05)

    def unchecked_problems(self) -> str | None:
        """What is wrong with the whole log, apart from the requests broken on purpose.

        Every request the tests found clean must be in it, and nothing in it flagged (a
        late line after a test's own segment included).
        """
        log = self.log()
        for start, end in sorted(self.excluded, reverse=True):
            log = log[:start] + log[end:]
        if log.count("Request received") < self.checked:
            return f"the log holds fewer requests than the {self.checked} checked"
        flagged = violations(log)
        return f"flagged in the log: {flagged}" if flagged else None

    def tail(self, lines: int = 40) -> str:
        """The end of the log, for failure messages."""
        return f"{self.log_path}:\n" + "\n".join(self.log().splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(prism: Prism) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    headers = {"Authorization": "Bearer probe", "Intercom-Version": "2.14"}
    while time.monotonic() < deadline:
        if prism.process.poll() is not None:
            return False
        try:
            httpx.get(f"{prism.url}/me", headers=headers, timeout=2)
            return True  # any answer: Prism is up
        except httpx.TransportError:
            time.sleep(0.2)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # its own process group: Prism and children
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prism]:
    """Prism 5 on a free loopback port with --errors; its log is kept in pytest's temp dir.

    When the session ends, the whole log is checked (:meth:`Prism.unchecked_problems`):
    a problem fails the run as an error of the last contract test. One log per session
    (pytest keeps it when a test failed), so that runs side by side never write into
    each other's log.
    """
    if not CONTRACT.is_file():
        missing(f"Intercom's OpenAPI description at {CONTRACT}")
    node = shutil.which("node")
    if node is None:
        missing(f"Node.js (node on PATH) to run Prism; then {INSTALL}")
    if not PRISM.exists():
        missing(f"Prism in {PRISM_DIR}: run `{INSTALL}` in the repo root")
    # What `prism --version` prints, read from the installed package: starting Node with
    # the whole CLI only to ask costs about 1.2 s of CPU.
    try:
        version = str(json.loads(PRISM_PACKAGE.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        version = ""
    if not version.startswith("5."):
        missing(f"Prism major version 5 (found {version or 'none'}): run `{INSTALL}`")

    env = {**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"}
    log_path = tmp_path_factory.mktemp("prism") / "prism.log"
    for _ in range(3):  # another process may take the free port before Prism does
        port = _free_port()
        log = log_path.open("w", encoding="utf-8")
        process = subprocess.Popen(
            [str(PRISM), "mock", "--errors", "-h", "127.0.0.1", "-p", str(port), str(CONTRACT)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        log.close()
        server = Prism(url=f"http://127.0.0.1:{port}", log_path=log_path, process=process)
        if _wait_until_up(server):
            break
        _stop(process)
    else:
        pytest.fail(f"Prism did not start; its log ({log_path}):\n{server.tail()}")
    try:
        yield server
        # After the session's last contract test (one a worker, should they run under -n).
        problems = server.unchecked_problems()
    finally:
        _stop(server.process)
    if problems:
        pytest.fail(f"Prism's whole log: {problems}\n{server.tail()}", pytrace=False)


@pytest.fixture
def run_prism(tmp_path: Path, prism: Prism) -> RunCli:
    """Run the real CLI against Prism (the token-leak check included)."""
    return make_runner(tmp_path, prism.url)
