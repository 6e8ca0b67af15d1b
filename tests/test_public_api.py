"""The package's public names: each imports, is documented, and importing the package
alone loads no optional or heavy dependency."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import intercom_events_cli
from intercom_events_cli import (
    Event,
    ExitCode,
    OutboxError,
    OutboxUnavailable,
    State,
    open_store,
)

PUBLIC = [name for name in intercom_events_cli.__all__ if name != "__version__"]


def python_json(program: str) -> Any:
    """What ``program``, run in a fresh interpreter, prints as JSON."""
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_imports_and_has_its_own_docstring(name: str) -> None:
    value = getattr(intercom_events_cli, name)
    # Its own docstring, not one inherited from a base class.
    own = vars(value).get("__doc__") if isinstance(value, type) else value.__doc__
    assert isinstance(own, str) and own.strip(), f"{name} has no docstring"


@pytest.mark.parametrize("name", PUBLIC)
def test_the_package_docstring_lists_every_public_name(name: str) -> None:
    doc = intercom_events_cli.__doc__ or ""
    lines = [line.split() for line in doc.splitlines()]
    assert any(words and words[0] == name for words in lines), name


def test_version_and_dir() -> None:
    assert isinstance(intercom_events_cli.__version__, str)
    assert set(intercom_events_cli.__all__) <= set(dir(intercom_events_cli))
    with pytest.raises(AttributeError, match="no attribute 'SqliteOutbox'"):
        intercom_events_cli.SqliteOutbox  # noqa: B018 - private: not exported


def test_importing_the_package_loads_no_http_stack_no_driver_no_cli() -> None:
    program = (
        "import json, sys\n"
        "import intercom_events_cli\n"
        "heavy = {'httpx', 'psycopg', 'prometheus_client', 'typer', 'rich', 'click'}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & heavy)))\n"
    )
    assert python_json(program) == []


def test_opening_a_file_outbox_from_the_package_loads_no_driver(tmp_path: Path) -> None:
    program = (
        "import json, sys\n"
        "from intercom_events_cli import Event, State, open_store\n"
        f"with open_store({str(tmp_path / 'o.sqlite3')!r}) as store:\n"
        "    store.add(Event.create('e', user_id='1'))\n"
        "    pending = store.summary().counts[State.PENDING]\n"
        "heavy = {'httpx', 'psycopg', 'prometheus_client'}\n"
        "print(json.dumps([pending, sorted({m.split('.')[0] for m in sys.modules} & heavy)]))\n"
    )
    assert python_json(program) == [1, []]


def test_open_store_takes_a_path_as_text(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.sqlite3"
    with open_store(str(path), {}) as store:
        result = store.add(Event.create("signed-up", user_id="42", created_at=1_700_000_000))
        assert result.added and result.state is State.PENDING
        assert str(store.path) == str(path)
    with open_store(str(path), {}) as again:  # the same file, opened again
        assert again.summary().counts[State.PENDING] == 1


def test_open_store_refuses_a_file_that_is_not_an_outbox(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 10)
    with pytest.raises(OutboxError) as caught:
        open_store(str(path), {})
    assert caught.value.exit_code == ExitCode.CONFIG
    assert str(path) in caught.value.message


def test_open_store_takes_a_postgresql_uri_as_text() -> None:
    pytest.importorskip("psycopg")
    # Port 1 on loopback: refused at once; a URI is routed to PostgreSQL, not made a path.
    with pytest.raises(OutboxUnavailable) as caught:
        open_store("postgresql://ievents@127.0.0.1:1/ievents", {})
    assert caught.value.exit_code == ExitCode.TEMPORARY
    assert "127.0.0.1:1" in caught.value.message
