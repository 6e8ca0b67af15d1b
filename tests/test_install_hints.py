"""A hint to install an extra gives a command that works for this installation.

No package index serves ``intercom-events-cli``: the hint must never be that name, but the
venv's pip on the clone it was installed from, ``pipx inject`` in a pipx venv, or the
extra's own requirements.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import REPO_ROOT, base_env
from helpers import run_without_module

from intercom_events_cli.extras import (
    Installation,
    detect_installation,
    extra_install_command,
    extra_requirements,
)


class FakeDist:
    """A distribution's metadata as importlib.metadata gives it."""

    def __init__(self, direct_url: dict[str, object] | None) -> None:
        self.direct_url = direct_url
        self.requires = [
            "httpx>=0.27,<1",
            'psycopg[binary]>=3.2,<4 ; extra == "postgres"',
            'prometheus-client>=0.17 ; extra == "metrics"',
            'pytest>=8.4 ; extra == "test"',
        ]

    def read_text(self, name: str) -> str | None:
        assert name == "direct_url.json"
        return json.dumps(self.direct_url) if self.direct_url is not None else None


def test_requirements_of_an_extra_come_from_the_metadata() -> None:
    dist = FakeDist(None)
    assert extra_requirements("postgres", dist) == ["psycopg[binary]>=3.2,<4"]
    assert extra_requirements("metrics", dist) == ["prometheus-client>=0.17"]


def test_a_pipx_install_gets_pipx_inject() -> None:
    venv = "/home/ada/.local/share/pipx/venvs/intercom-events-cli"
    where = detect_installation(venv, "/usr", FakeDist(None))
    assert where.kind == "pipx"
    command = extra_install_command("postgres", where, FakeDist(None))
    assert command == "pipx inject intercom-events-cli 'psycopg[binary]>=3.2,<4'"


def test_a_venv_from_a_clone_gets_its_pip_on_the_clone() -> None:
    editable = FakeDist({"url": "file:///src/my%20clone", "dir_info": {"editable": True}})
    where = detect_installation("/src/my clone/.venv", "/usr", editable)
    assert where == Installation("clone", Path("/src/my clone/.venv"), Path("/src/my clone"), True)
    assert extra_install_command("postgres", where, editable) == (
        "'/src/my clone/.venv/bin/pip' install -e '/src/my clone[postgres]'"
    )
    plain = FakeDist({"url": "file:///src/ievents", "dir_info": {}})
    where = detect_installation("/opt/ievents/.venv", "/usr", plain)
    assert extra_install_command("metrics", where, plain) == (
        "/opt/ievents/.venv/bin/pip install '/src/ievents[metrics]'"
    )


def test_a_venv_from_a_wheel_or_without_metadata_gets_the_requirements() -> None:
    wheel = FakeDist({"url": "file:///tmp/x.whl", "archive_info": {}})
    where = detect_installation("/opt/ievents/.venv", "/usr", wheel)
    assert where.kind == "venv"
    assert extra_install_command("postgres", where, wheel) == (
        "/opt/ievents/.venv/bin/pip install 'psycopg[binary]>=3.2,<4'"
    )
    system = detect_installation("/usr", "/usr", FakeDist(None))
    assert system.kind == "system"
    assert "-m pip install 'prometheus-client>=0.17'" in extra_install_command(
        "metrics", system, FakeDist(None)
    )


def test_this_venv_is_recognised_as_the_clone_it_was_installed_from() -> None:
    where = detect_installation()
    assert where.kind == "clone" and where.source == REPO_ROOT, where
    assert extra_install_command("postgres") == (
        f"{Path(sys.prefix) / 'bin' / 'pip'} install -e '{REPO_ROOT}[postgres]'"
    )


def test_without_prometheus_client_the_hint_is_this_venvs_pip(tmp_path: Path) -> None:
    done = run_without_module(
        "prometheus_client",
        ["outbox", "status", "--format", "prometheus"],
        env=base_env(tmp_path, None),
    )
    assert done.returncode == 78, done
    assert f"install it: {Path(sys.prefix) / 'bin' / 'pip'} install -e" in done.stderr, done
    assert f"{REPO_ROOT}[metrics]" in done.stderr
    assert "intercom-events-cli[" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2
