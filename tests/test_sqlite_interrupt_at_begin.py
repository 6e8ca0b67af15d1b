"""An interrupt that lands just after ``BEGIN`` (before the body runs) rolls the
transaction back: before, the connection stayed inside it and every later operation of
the process failed with "cannot start a transaction within a transaction"."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from helpers import event

from intercom_events_cli.outbox.sqlite import SqliteOutbox


class InterruptAfterBegin:
    """The outbox's connection, with one Ctrl-C arriving right after a BEGIN returns."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real
        self.armed = True

    def execute(self, sql: str, *args: Any) -> Any:
        result = self.real.execute(sql, *args)
        if self.armed and sql.startswith("BEGIN"):
            self.armed = False
            raise KeyboardInterrupt
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.mark.parametrize("operation", ["write", "read"])
def test_an_interrupt_right_after_begin_leaves_no_transaction_open(
    tmp_path: Path, operation: str
) -> None:
    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as outbox:
        real = outbox._db
        outbox._db = InterruptAfterBegin(real)  # type: ignore[assignment]
        with pytest.raises(KeyboardInterrupt):
            if operation == "write":
                outbox.add(event(1))
            else:
                outbox.summary()
        assert not real.in_transaction
        outbox._db = real
        outbox.add(event(2))  # the connection still works
        assert sum(outbox.summary().counts.values()) == 1
