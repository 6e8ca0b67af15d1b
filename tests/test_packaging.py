"""A package that installs: the wheel and sdist build, and the wheel runs from a fresh venv.

Kept cheap: the wheel is built by flit_core (a test dependency) without an isolated build
environment, and the fresh venv has no pip of its own: it sees this test venv's packages
through a ``.pth`` file, and this venv's pip installs only the wheel into it (no index, no
dependencies). The package, its ``ievents`` entry point and its metadata all come from the
wheel. ``python -m build`` and ``twine check`` run in .ci/run. With IEVENTS_TEST_INSTALLS=1 and
pipx installed (.ci/run does both, in a step of its own), ``pipx install .`` and ``pipx
inject`` of an extra are run for real under a temporary PIPX_HOME.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest
from conftest import INSTALLS_FROM_THE_INDEX, REPO_ROOT, TOKEN, base_env

from intercom_events_cli import __version__

BUILD = (
    "import sys; from flit_core import buildapi; print(getattr(buildapi, sys.argv[1])(sys.argv[2]))"
)


def build(kind: str, out: Path) -> Path:
    """Build the wheel or the sdist of this checkout into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", BUILD, f"build_{kind}", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out / done.stdout.strip().splitlines()[-1]


def fresh_venv(folder: Path) -> Path:
    """A venv without pip that sees this venv's packages (dependencies) after its own."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = folder / "lib" / version / "site-packages"
    (site / "test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return folder


def test_the_wheel_installs_in_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    wheel = build("wheel", tmp_path / "dist")
    assert wheel.name == f"intercom_events_cli-{__version__}-py3-none-any.whl"
    venv = fresh_venv(tmp_path / "venv")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
        + ["--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
    )
    env = base_env(tmp_path, None) | {"PATH": "/usr/bin:/bin"}
    env.pop("VIRTUAL_ENV", None)
    ievents = str(venv / "bin" / "ievents")

    version = subprocess.run([ievents, "--version"], env=env, capture_output=True, text=True)
    assert version.returncode == 0 and __version__ in version.stdout, version
    dry = subprocess.run(
        [ievents, "send", "invited-friend", "--user-id", "314159", "--dry-run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert dry.returncode == 0, dry.stderr
    assert "POST https://api.intercom.io/events" in dry.stdout
    assert TOKEN not in dry.stdout + dry.stderr

    # It ran the wheel's copy, not this checkout's; and its hint for an extra is the
    # venv's pip with the extra's requirements (no clone to install from).
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import intercom_events_cli as m; from intercom_events_cli.extras import "
            "extra_install_command as c; print(m.__file__); print(c('postgres'))",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert where[0].startswith(str(venv)), where
    assert where[1] == f"{venv}/bin/pip install 'psycopg[binary]>=3.2,<4'"


def test_the_sdist_holds_the_docs_and_builds(tmp_path: Path) -> None:
    sdist = build("sdist", tmp_path / "dist")
    assert sdist.name == f"intercom_events_cli-{__version__}.tar.gz"
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("README.md", "pyproject.toml", "mkdocs.yml", "docs/index.md", "docs/cli.md"):
        assert needed in names, needed
    assert "intercom_events_cli/extras.py" in names


def pipx() -> list[str] | None:
    if shutil.which("pipx"):
        return ["pipx"]
    found = subprocess.run([sys.executable, "-m", "pipx", "--version"], capture_output=True)
    return [sys.executable, "-m", "pipx"] if found.returncode == 0 else None


# The nearest mark is reported first: without IEVENTS_TEST_INSTALLS, say that.
@pytest.mark.skipif(pipx() is None, reason="pipx is not installed (.ci/run installs it)")
@pytest.mark.skipif(
    os.environ.get(INSTALLS_FROM_THE_INDEX) != "1",
    reason="installs from the package index: .ci/run runs it as its own step",
)
def test_pipx_install_and_inject_an_extra_as_the_docs_say(tmp_path: Path) -> None:
    command = pipx()
    assert command is not None
    env = base_env(tmp_path, None) | {
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
    }
    env.pop("VIRTUAL_ENV", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
        )

    installed = run(*command, "install", str(REPO_ROOT))
    assert installed.returncode == 0, installed.stderr
    ievents = str(tmp_path / "bin" / "ievents")
    assert __version__ in run(ievents, "--version").stdout

    # Without psycopg, the hint is the pipx inject command; it works as given.
    missing = run(ievents, "outbox", "status", "--outbox", "postgresql://127.0.0.1:9/db")
    assert missing.returncode == 78, missing
    hint = "pipx inject intercom-events-cli 'psycopg[binary]>=3.2,<4'"
    assert hint in missing.stderr, missing.stderr
    injected = run(*command, "inject", "intercom-events-cli", "psycopg[binary]>=3.2,<4")
    assert injected.returncode == 0, injected.stderr
    after = run(ievents, "outbox", "status", "--outbox", "postgresql://127.0.0.1:9/db")
    assert "psycopg driver" not in after.stderr and after.returncode == 75, after
