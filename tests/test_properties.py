"""Property tests: the parsers return a value or raise ValidationError, never anything else.

Whatever a user types or a file holds, ievents must answer with exit 65 and a message, not
an internal error. These tests feed the parsers arbitrary input and check exactly that, and
that whatever they accept can be sent (the body encodes, the payload survives JSON).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from intercom_events_cli.errors import ValidationError
from intercom_events_cli.event import (
    MAX_METADATA_KEYS,
    MAX_TIMESTAMP,
    RECORD_FIELDS,
    Event,
    event_from_record,
    parse_metadata_json,
    parse_metadata_option,
    parse_timestamp,
    validate_metadata,
)

NOW = 1_700_000_000.5
# No per-example deadline: the "ievents" profile (conftest.py) drops it for every test.


def clock() -> float:
    return NOW


# Integers past float range and past the 4300-digit limit of int(str) both occur in JSON.
huge_integers = st.integers(min_value=10**300, max_value=10**400) | st.integers(
    max_value=-(10**300), min_value=-(10**400)
)
# Text a user would type, and text with lone surrogates (Python's reading of argv bytes
# that are not UTF-8, or a JSON "\udcff" escape) or control characters mixed in.
clean_text = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=12)
odd_text = st.builds(
    lambda head, odd, tail: head + odd + tail,
    st.text(max_size=4),
    st.characters(categories=["Cs", "Cc"]),
    st.text(max_size=4),
)
any_text = clean_text | odd_text | st.text()
# Mostly plausible, so that inputs get past the first check and reach the later ones.
likely_text = st.one_of(clean_text, clean_text, clean_text, odd_text, st.text())
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | huge_integers
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)

iso_like = st.from_regex(
    r"-?\d{1,6}-\d{1,2}-\d{1,2}([T ]\d{1,2}:\d{1,2}(:\d{1,2}(\.\d{1,9})?)?)?"
    r"([Zz]|[+-]\d{2}:?\d{2})?",
    fullmatch=True,
)
time_texts = (
    any_text
    | iso_like
    | st.from_regex(r"\s*-?\d{1,25}(\.\d{0,5})?\s*", fullmatch=True)
    | st.sampled_from(["now", "NOW", " now", "", "Z", "+0200", "1e3", "nan", "inf"])
)
time_values = time_texts | scalars | st.integers(min_value=0, max_value=2 * 10**12)

# Values shaped like Intercom's types (most valid, some just off), then anything at all.
urls = st.builds(
    lambda scheme, rest: scheme + rest,
    st.sampled_from(["https://", "http://", "ftp://", ""]),
    any_text,
)
rich_links = st.fixed_dictionaries({"url": urls | json_values, "value": any_text | json_values})
money = st.fixed_dictionaries(
    {
        "amount": st.integers(min_value=-5, max_value=10**12) | json_values,
        "currency": st.from_regex(r"[A-Za-z]{2,4}", fullmatch=True) | json_values,
    }
)
metadata_values = (
    any_text | st.integers() | st.floats() | rich_links | money | urls | time_values | json_values
)
metadata_keys = likely_text | st.sampled_from(["signup_date", "x_date", "_date", "plan", "a.b"])
metadata_objects = st.dictionaries(metadata_keys, metadata_values, max_size=MAX_METADATA_KEYS + 1)


def assert_sendable(event: Event) -> None:
    """What was accepted can be put on the wire exactly as the payload says."""
    body = event.body()
    assert json.loads(body) == event.payload()
    assert len(event.dedup_key()) == 64


@settings(max_examples=400)
@given(time_values)
@example(10**400)
@example("9" * 400)
@example("0001-01-01T00:00:00+01:00")
@example("9999-12-31T23:59:59-01:00")
@example("1970-01-01T00:00:00+00:01")
def test_parse_timestamp_returns_seconds_or_raises_validation_error(value: Any) -> None:
    try:
        seconds = parse_timestamp(value, field_name="created_at", clock=clock)
    except ValidationError as exc:
        assert exc.field == "created_at"
        return
    assert type(seconds) is int
    assert 0 <= seconds <= MAX_TIMESTAMP


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.just(timezone.utc)
        | st.builds(
            timezone,
            st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: timedelta(minutes=m)),
        ),
    )
)
def test_iso8601_with_an_offset_means_that_instant(moment: datetime) -> None:
    text = moment.isoformat()
    assert parse_timestamp(text, field_name="t", clock=clock) == int(moment.timestamp())
    # The same offset without a colon (+0200) means the same instant.
    compact = text[:-3] + text[-2:]
    assert parse_timestamp(compact, field_name="t", clock=clock) == int(moment.timestamp())


@given(st.integers(min_value=0, max_value=MAX_TIMESTAMP))
def test_unix_seconds_and_milliseconds_agree(seconds: int) -> None:
    parsed = parse_timestamp(str(seconds), field_name="t", clock=clock)
    if seconds < 10**11:
        assert parsed == seconds
    else:  # from 10^11 on a number is read as milliseconds
        assert parsed == seconds // 1000
    if seconds >= 10**8:  # milliseconds of any time from 1973 on
        assert parse_timestamp(seconds * 1000 + 999, field_name="t", clock=clock) == seconds


@settings(max_examples=400)
@given(
    any_text
    | st.builds(lambda k, v: f"{k}={v}", any_text, any_text)
    | st.builds(lambda k, v: f"{k}:={v}", any_text, any_text)
    | st.builds(lambda k, v: f"{k}:={json.dumps(v)}", any_text, json_values)
)
@example("x:=" + "[" * 100_000)
@example("x:=" + "1" * 5000)
def test_parse_metadata_option_returns_a_pair_or_raises_validation_error(option: str) -> None:
    try:
        key, _value = parse_metadata_option(option)
    except ValidationError:
        return
    assert isinstance(key, str)
    assert "=" in option


@given(any_text | json_values.map(json.dumps))
def test_parse_metadata_json_returns_an_object_or_raises_validation_error(text: str) -> None:
    try:
        value = parse_metadata_json(text)
    except ValidationError:
        return
    assert isinstance(value, dict)


@settings(max_examples=400)
@given(metadata_objects | json_values)
def test_validate_metadata_returns_intercom_types_or_raises_validation_error(
    metadata: Any,
) -> None:
    try:
        result = validate_metadata(metadata, clock)
    except ValidationError:
        return
    assert isinstance(metadata, dict) or (metadata is None and result == {})
    assert list(result) == list(metadata or {})
    assert len(result) <= MAX_METADATA_KEYS
    for key, value in result.items():
        assert key
        if key.endswith("_date"):
            assert type(value) is int
        elif isinstance(value, dict):
            assert set(value) in ({"url", "value"}, {"amount", "currency"})
        else:
            assert type(value) in (str, int, float)
            assert not (isinstance(value, str) and len(value) > 255)
    # Accepted metadata can always be sent.
    assert_sendable(Event.create("e", user_id="1", metadata=result, clock=clock))


plausible_records = st.fixed_dictionaries(
    {"event_name": likely_text, "user_id": likely_text | st.integers()},
    optional={
        "email": st.builds(lambda a, b: f"{a}@{b}", likely_text, likely_text) | any_text,
        "id": likely_text,
        "created_at": time_values,
        "metadata": metadata_objects | json_values,
        "_line": st.integers(),
    },
)
records = plausible_records | st.dictionaries(
    st.sampled_from(sorted(RECORD_FIELDS)) | any_text, json_values, max_size=7
)


@settings(max_examples=400)
@given(records | json_values)
def test_event_from_record_returns_an_event_or_raises_validation_error(record: Any) -> None:
    try:
        event = event_from_record(record, clock)
    except ValidationError:
        return
    assert isinstance(event, Event)
    assert event.user_id or event.email or event.contact_id
    assert 0 <= event.created_at <= MAX_TIMESTAMP
    assert_sendable(event)
    assert Event.from_payload(event.payload()) == event
