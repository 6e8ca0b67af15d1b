"""The inline check of a bulk record (record_check.py) agrees with the rules one by one.

``event_from_record`` takes a fast path for plain records; ``checked_event_from_record``
applies each rule in turn. For any record, both give the same Event (the same canonical
body and key) or the same error (message and field), whatever was remembered before.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intercom_events_cli.errors import ValidationError
from intercom_events_cli.event import (
    Event,
    canonical_json,
    checked_event_from_record,
    event_from_record,
)

NOW = 1_700_000_000.25


def clock() -> float:
    return NOW


def outcome(check: Any, record: Any) -> tuple[str, Any]:
    """What one path makes of ``record``: the event's fields and body, or the error."""
    try:
        event = check(record, clock)
    except ValidationError as exc:
        return "error", (exc.message, exc.field)
    except Exception as exc:  # noqa: BLE001 - readers turn these into one record's error
        return "exception", type(exc).__name__
    assert isinstance(event, Event)
    return "event", (event, event.body(), event.dedup_key())


# Text near the rules' edges: printable ASCII, spaces, control characters, surrogates,
# non-ASCII letters, "@", lengths about 255.
edge_chars = st.sampled_from(
    ["a", "Z", "0", " ", "@", ".", "$", "_", "\t", "\n", "\x00", "\x7f", "\x85", "é", "\u2028"]
    + ["\ud800", "\udfff", "😀", "~", "{", '"', "\\"]
)
edge_text = (
    st.text(edge_chars, max_size=6)
    | st.text(st.sampled_from(["a", "b", " "]), min_size=250, max_size=260)
    | st.sampled_from(["", " ", "a@b", "a @b", "u1", "now", "NOW", "signed-up"])
)
times = (
    st.integers(min_value=-5, max_value=2 * 10**11)
    | st.sampled_from([0, 10**11 - 1, 10**11, 253402300799, 253402300800, -1])
    | st.sampled_from(["2024-01-31T12:00:00Z", "2024-01-31T12:00:00+0100", "now", "1700000000"])
    | st.from_regex(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", fullmatch=True)
    | st.sampled_from(["1969-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "2024-02-30T00:00:00Z"])
    | st.floats(allow_nan=True)
    | st.booleans()
    | st.none()
    | edge_text
)
values = (
    edge_text
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.none()
    | st.lists(st.integers(), max_size=2)
    | st.fixed_dictionaries({"url": edge_text, "value": edge_text})
    | st.fixed_dictionaries({"url": st.just("https://example.org/x"), "value": edge_text})
    | st.fixed_dictionaries({"amount": st.integers(-2, 10**6), "currency": edge_text})
    | times
)
keys = edge_text | st.sampled_from(["plan", "seats", "renewal_date", "x_date", "a.b", "_date"])
plain_keys = st.sampled_from(["plan", "seats", "renewal_date", "x_date", "note"])
metadata = (
    st.dictionaries(plain_keys, values, max_size=5)
    | st.dictionaries(keys, values, max_size=11)
    | st.none()
    | values
)
contacts = edge_text | st.integers() | st.booleans() | st.none() | st.floats()
fields = {
    "event_name": edge_text | st.integers() | st.none(),
    "user_id": contacts,
    "email": contacts,
    "id": contacts,
    "created_at": times,
    "metadata": metadata,
    "_line": st.integers(),
    "other": st.integers(),
}
# A valid record with one to three fields replaced or removed: most examples get past
# the first rules, so every rule is reached, and the fast path is taken for the plain ones.
BASE = {"event_name": "signed-up", "user_id": "u1", "created_at": 1_700_000_000}
records = st.builds(
    lambda changes, removed: {
        **{k: v for k, v in BASE.items() if k not in removed},
        **changes,
    },
    st.dictionaries(st.sampled_from(sorted(fields)), st.none(), max_size=3).flatmap(
        lambda chosen: st.fixed_dictionaries({name: fields[name] for name in chosen})
    ),
    st.sets(st.sampled_from(sorted(BASE)), max_size=1),
)


@settings(max_examples=1500)
@given(records)
def test_the_fast_path_and_the_rules_agree_on_any_record(record: dict[str, Any]) -> None:
    expected = outcome(checked_event_from_record, record)
    assert outcome(event_from_record, record) == expected
    # Again: names and keys accepted the first time are remembered the second.
    assert outcome(event_from_record, record) == expected


@settings(max_examples=500)
@given(st.dictionaries(plain_keys, values, min_size=1, max_size=4))
def test_the_paths_agree_on_metadata_values(given_metadata: dict[str, Any]) -> None:
    record = {**BASE, "metadata": given_metadata}
    expected = outcome(checked_event_from_record, record)
    assert outcome(event_from_record, record) == expected


@settings(max_examples=500)
@given(st.sampled_from(["event_name", "user_id", "email", "id", "created_at"]), contacts | times)
def test_the_paths_agree_on_names_contacts_and_times(name: str, value: Any) -> None:
    record = {**BASE, name: value}
    expected = outcome(checked_event_from_record, record)
    assert outcome(event_from_record, record) == expected


@pytest.mark.parametrize(
    "record",
    [
        {"event_name": "a", "user_id": "1", "metadata": {"when_date": "2024-01-31T12:00:00Z"}},
        {"event_name": "a", "user_id": 10**5000},
        {"event_name": "a", "email": "x@y", "created_at": 1_700_000_000_000},
        {"event_name": "é", "id": "c", "metadata": {"n": "\u00e9" * 255, "f": 1.5}},
        {"event_name": "a", "user_id": "1", "metadata": {str(k): k for k in range(11)}},
    ],
)
def test_the_fast_path_and_the_rules_agree_on_examples(record: dict[str, Any]) -> None:
    assert outcome(event_from_record, record) == outcome(checked_event_from_record, record)


@settings(max_examples=300)
@given(st.dictionaries(edge_text, values | st.dictionaries(edge_text, values, max_size=3)))
def test_the_canonical_json_is_json_dumps_sorted_compact_and_unescaped(value: Any) -> None:
    try:
        expected = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            canonical_json(value)
        return
    assert canonical_json(value) == expected
