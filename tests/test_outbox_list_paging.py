"""``outbox list`` reads the outbox page by page, as ``export`` does (issue 21, finding 10).

``--limit 0`` on 200,000 rows held every row at once (374 MB); now no read asks for more
than a page, whatever the limit, and the output is still every row, in id order. The
memory figures are in the issue's closing note (a test does not measure them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli

from intercom_events_cli import Event, open_store
from intercom_events_cli.outbox.sql_store import SqlStore

ROWS = 1234  # more than two pages
PAGE = 500


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        where = str(tmp_path / "outbox.sqlite3")
    else:
        where = request.getfixturevalue("pg_uri")
    events = [Event.create("paged", user_id=str(i), created_at=1_700_000_000) for i in range(ROWS)]
    with open_store(where, {}) as store:
        assert store.queue_many(events) == (ROWS, 0)
    return where


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int | None]]:
    """The ``limit`` of every read of rows the store makes during the test."""
    seen: list[int | None] = []
    original = SqlStore.rows

    def spy(self: Any, states: Any, *, limit: int | None = None, after_id: int = 0) -> Any:
        seen.append(limit)
        return original(self, states, limit=limit, after_id=after_id)

    monkeypatch.setattr(SqlStore, "rows", spy)
    yield seen


@pytest.mark.parametrize("output", ["tsv", "json"])
def test_list_all_reads_page_by_page(
    run_cli: RunCli, location: str, reads: list[int | None], output: str
) -> None:
    args = ["outbox", "list", "--limit", "0"] + (["--json"] if output == "json" else [])
    result = run_cli(*args, env={"IEVENTS_OUTBOX": location})

    assert result.code == 0, result.stderr
    if output == "json":
        ids = [row["id"] for row in result.json_lines()]
    else:
        ids = [int(line.split("\t", 1)[0]) for line in result.stdout.splitlines()]
    assert len(ids) == ROWS and ids == sorted(set(ids))
    assert len(reads) >= 3 and all(limit is not None and limit <= PAGE for limit in reads)


def test_a_limit_larger_than_a_page_is_read_in_pages(
    run_cli: RunCli, location: str, reads: list[int | None]
) -> None:
    result = run_cli("outbox", "list", "--limit", "700", env={"IEVENTS_OUTBOX": location})
    assert result.code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 700
    assert all(limit is not None and limit <= PAGE for limit in reads)


def test_a_small_limit_reads_no_more_than_it_shows(
    run_cli: RunCli, location: str, reads: list[int | None]
) -> None:
    result = run_cli("outbox", "list", "--limit", "3", env={"IEVENTS_OUTBOX": location})
    assert result.code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
    assert reads == [3]
