"""The storage seam: a backend is one module and one line in the registry
(``outbox/store.py`` ``BACKENDS``), and nothing outside ``outbox/`` knows which backend
it holds: no sqlite3 or psycopg import, no backend class or module named, a busy file a
typed ``OutboxBusy`` rather than words matched in a message."""

from __future__ import annotations

import ast
import sqlite3
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from helpers import event, run_guarded

import intercom_events_cli
from intercom_events_cli.errors import ExitCode, OutboxBusy, OutboxError
from intercom_events_cli.outbox import store as store_module
from intercom_events_cli.outbox.store import (
    BACKENDS,
    Backend,
    OutboxLocation,
    OutboxStore,
    backend_for_text,
    backend_label,
    open_reader,
    open_store,
    resolve_location,
)

PACKAGE = Path(intercom_events_cli.__file__).parent
DRIVERS = {"sqlite3", "psycopg", "psycopg_pool", "psycopg_binary"}
BACKEND_NAMES = {"PostgresLocation", "PostgresOutbox", "SqliteOutbox", "PgSession"}


def outside_outbox() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "outbox" not in p.relative_to(PACKAGE).parts[:1]]


def every_import(path: Path) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of a module: module level, in functions, TYPE_CHECKING too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]


def test_no_module_outside_the_outbox_imports_a_database_driver() -> None:
    found = []
    for path in outside_outbox():
        for node in every_import(path):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""] * (node.level == 0)
            )
            found += [
                f"{path.relative_to(PACKAGE)}:{node.lineno} imports {name}"
                for name in names
                if name.split(".")[0] in DRIVERS
            ]
    assert len(outside_outbox()) > 40
    assert found == []


def test_no_module_outside_the_outbox_names_a_backend_module_or_class() -> None:
    backend_modules = {f"outbox.{b.module}" for b in BACKENDS} | {
        "outbox.sqlite",
        "outbox.sqlite_file",
        "outbox.location",
    }
    found = []
    for path in outside_outbox():
        for node in every_import(path):
            if not isinstance(node, ast.ImportFrom):
                continue
            module = (node.module or "").removeprefix("intercom_events_cli.")
            named = {alias.name for alias in node.names}
            if module in backend_modules or module.startswith("outbox.pg_"):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports {module}")
            if module.startswith("outbox") and named & BACKEND_NAMES:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} imports {named}")
        source = ast.parse(path.read_text(encoding="utf-8"))
        for name in ast.walk(source):
            if isinstance(name, ast.Name) and name.id in BACKEND_NAMES - {"SqliteOutbox"}:
                found.append(f"{path.relative_to(PACKAGE)}:{name.lineno} names {name.id}")
    assert found == []


def test_the_registry_has_one_plain_path_backend_and_disjoint_schemes() -> None:
    assert [b.name for b in BACKENDS if not b.schemes] == ["sqlite"]
    schemes = [scheme for b in BACKENDS for scheme in b.schemes]
    assert len(schemes) == len(set(schemes)) and "postgresql" in schemes
    assert len({b.name for b in BACKENDS}) == len(BACKENDS)
    for backend in BACKENDS:
        module = backend.load()
        for function in ("locate", "owns", "open_store", "open_reader"):
            assert callable(getattr(module, function)), (backend.name, function)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("postgresql://u@h/db", "postgres"),
        ("POSTGRES://h:5433/db", "postgres"),
        ("/var/lib/ievents/outbox.sqlite3", "sqlite"),
        ("postgresql.sqlite3", "sqlite"),
        ("", "sqlite"),
        ("mysql://h/db", "sqlite"),  # no backend takes it: a path, which resolving refuses
    ],
)
def test_a_location_text_picks_its_backend_by_scheme(text: str, name: str) -> None:
    assert backend_for_text(text).name == name


def test_the_label_of_a_location_comes_from_its_backend(tmp_path: Path) -> None:
    env = {"IEVENTS_OUTBOX_SCHEMA": "relay_2"}
    assert backend_label(resolve_location(str(tmp_path / "o.sqlite3"), env)) == "SQLite"
    assert backend_label(resolve_location("postgresql://h/db", env)) == "PostgreSQL"


# A third backend, as a module of its own would be: a "memory:" scheme kept, for this test,
# in a SQLite file (what matters is that the registry routes to it, and nothing else).
class MemoryLocation:
    def __init__(self, name: str, file: Path) -> None:
        self.name, self.file = name, file

    def exists(self) -> bool:
        return self.file.exists()

    def __str__(self) -> str:
        return f"memory://{self.name}"


def third_backend(folder: Path) -> types.ModuleType:
    module = types.ModuleType("intercom_events_cli.outbox.memory_backend")
    opened: list[str] = []

    def locate(text: str, option: str | None, env: Mapping[str, str]) -> MemoryLocation:
        name = text.strip().partition("://")[2]
        return MemoryLocation(name, folder / f"{name}.sqlite3")

    def owns(location: object) -> bool:
        return isinstance(location, MemoryLocation)

    def open_store(location: OutboxLocation, env: Mapping[str, str], *, create: bool) -> object:
        assert isinstance(location, MemoryLocation)
        opened.append(f"store {location.name}")
        return store_module.open_store(str(location.file), env, create=create)

    def open_reader(location: OutboxLocation, env: Mapping[str, str]) -> object:
        assert isinstance(location, MemoryLocation)
        opened.append(f"reader {location.name}")
        return store_module.open_store(str(location.file), env)

    module.__dict__.update(
        locate=locate, owns=owns, open_store=open_store, open_reader=open_reader, opened=opened
    )
    return module


def test_a_third_backend_is_one_module_and_one_registry_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = third_backend(tmp_path)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    line = Backend("memory", "Memory", "memory_backend", ("memory",))
    monkeypatch.setattr(store_module, "BACKENDS", (*BACKENDS, line))
    location = resolve_location("memory://events", {})
    assert str(location) == "memory://events" and backend_label(location) == "Memory"
    with open_store("memory://events", {}) as store:
        store.add(event(1))
    reader: OutboxStore = open_reader(location, {})
    with reader:
        assert reader.summary().counts
    assert module.opened == ["store events", "reader events"]
    assert (tmp_path / "events.sqlite3").exists()


def test_a_busy_sqlite_file_is_a_typed_outbox_busy(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    open_store(str(path), {}).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with open_store(str(path), {"IEVENTS_OUTBOX_BUSY_TIMEOUT": "0.2"}) as store:
            with pytest.raises(OutboxBusy) as caught:
                store.add(event())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    busy = caught.value
    assert isinstance(busy, OutboxError) and busy.exit_code is ExitCode.TEMPORARY
    assert busy.code == "outbox_error"  # --json keeps the code it always had
    assert str(path) in busy.message and "locked" in busy.message


def test_a_relay_waits_out_a_busy_sqlite_file_and_then_delivers(fake: Any, tmp_path: Path) -> None:
    """In process: the relay meets ``OutboxBusy`` (a tool holds the file's write lock past
    the busy timeout), says so, tries again, and delivers once the file is free."""
    import threading

    from conftest import TOKEN

    from intercom_events_cli.config.settings import Settings
    from intercom_events_cli.delivery.relay import Relay
    from intercom_events_cli.delivery.timings import RelayTimings

    path = tmp_path / "outbox.sqlite3"
    env = {"IEVENTS_OUTBOX_BUSY_TIMEOUT": "0.2"}
    with open_store(str(path), env) as store:
        store.add(event(1))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # every write of the relay now waits, then gives up
    stop = threading.Event()
    notices: list[str] = []

    def on_notice(text: str) -> None:
        notices.append(text)
        if holder.in_transaction and "locked" in text:
            holder.execute("ROLLBACK")  # the file is free for the next try

    relay = Relay(
        path,
        Settings(token=TOKEN, base_url=fake.url, retries=0),
        lambda: open_store(str(path), env),
        stop=stop,
        on_notice=on_notice,
        on_result=lambda delivery: stop.set(),
        timings=RelayTimings(idle_look_s=0.05),
    )
    try:
        report = run_guarded(relay.run, stop, 60)  # a relay that never delivered: ends
    finally:
        holder.close()
    assert any("locked by another process" in text and "trying again" in text for text in notices)
    assert report.delivered == 1 and report.exit_code is ExitCode.OK
    assert len(fake.posts()) == 1


def test_the_outbox_package_exports_its_names_lazily_and_loads_no_backend_for_the_protocol() -> (
    None
):
    import subprocess

    import intercom_events_cli.outbox as outbox

    assert outbox.__all__ == sorted(outbox._LAZY)
    for name in outbox.__all__:
        assert getattr(outbox, name) is not None
    probe = (
        "import sys, intercom_events_cli.outbox.store\n"
        "print(sorted(m for m in sys.modules if m == 'sqlite3' or m.startswith("
        "'intercom_events_cli.outbox.')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == [
        "['intercom_events_cli.outbox.location',",
        "'intercom_events_cli.outbox.store']",
    ]
