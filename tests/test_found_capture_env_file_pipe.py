"""Found in the capture bug hunt: ``--env-file <(command)``.

Process substitution hands a secrets manager's output to ievents without writing the
token to disk (``--env-file <(sops -d prod.env)``). ``--token-file <(...)`` worked, but
``--env-file`` said "env file '/dev/fd/63' does not exist; check --env-file" (exit 78):
it exists, it is a pipe, not a regular file.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import TOKEN, cli_env
from fake_intercom import FakeIntercom
from helpers import check_no_token, cli_argv

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash's <(...)")


def test_an_env_file_given_as_a_pipe_is_read(tmp_path: Path, fake: FakeIntercom) -> None:
    env = cli_env(tmp_path, fake.url, {"INTERCOM_ACCESS_TOKEN": None, "SECRET_FOR_TEST": TOKEN})
    argv = cli_argv(["send", "signed-up", "--user-id", "u1", "--created-at", "1700000000"])
    script = 'exec "$@" --env-file <(printf "INTERCOM_ACCESS_TOKEN=%s\\n" "$SECRET_FOR_TEST")'
    workdir = tmp_path / "work"
    workdir.mkdir()

    completed = subprocess.run(
        ["bash", "-c", script, "bash", *argv],
        capture_output=True,
        env=env,
        cwd=workdir,
        timeout=120,
    )

    check_no_token(completed.stdout, completed.stderr)
    assert completed.returncode == 0, completed.stderr
    assert [request.headers["authorization"] for request in fake.posts()] == [f"Bearer {TOKEN}"]
