"""The test helpers (helpers.py) and the Hypothesis profile every run loads."""

from __future__ import annotations

import json
import time

import hypothesis
import pytest
from helpers import CREATED, ndjson, ndjson_bytes, numbered_ndjson, record, wait_for


def test_every_property_test_runs_without_a_per_example_deadline() -> None:
    assert hypothesis.settings().deadline is None


def test_wait_for_returns_what_the_predicate_gave_as_soon_as_it_holds() -> None:
    calls: list[int] = []

    def third_time() -> list[int] | None:
        calls.append(1)
        return calls if len(calls) == 3 else None

    assert wait_for(third_time, what="the third call") == [1, 1, 1]
    assert len(calls) == 3


def test_wait_for_names_what_it_waited_for_at_the_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match="timed out after 0.1 s waiting for the moon"):
        wait_for(lambda: False, timeout=0.1, what="the moon")
    assert time.monotonic() - started >= 0.1


def test_ndjson_dumps_records_and_keeps_strings() -> None:
    text = ndjson([{"a": 1}, "not json", [2]])
    assert text == '{"a": 1}\nnot json\n[2]\n'
    assert ndjson_bytes({"a": 1}, "x") == b'{"a": 1}\nx\n'
    lines = [json.loads(line) for line in numbered_ndjson(2, start=5, name="n").splitlines()]
    assert lines == [record(5, "n"), record(6, "n")]
    assert lines[0] == {"event_name": "n", "user_id": "u5", "created_at": CREATED + 5}
