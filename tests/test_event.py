"""Unit tests of event.py: metadata types and rules, created_at forms, the canonical payload."""

from __future__ import annotations

import hashlib
import json

import pytest

from intercom_events_cli.errors import ValidationError
from intercom_events_cli.event import (
    MAX_METADATA_KEYS,
    Event,
    event_from_record,
    format_utc,
    merge_metadata,
    parse_metadata_json,
    parse_metadata_option,
    parse_timestamp,
    validate_event_name,
    validate_metadata,
)

NOW = 1_700_000_000.75  # a fixed clock reading, with a fraction to check truncation
JAN_1_2024 = 1_704_067_200  # 2024-01-01T00:00:00Z


def clock() -> float:
    return NOW


def metadata(**values: object) -> dict[str, object]:
    return validate_metadata(values, clock)


def refused(value: object) -> ValidationError:
    """The ValidationError that validating ``{"key": value}`` raises."""
    with pytest.raises(ValidationError) as caught:
        validate_metadata({"key": value}, clock)
    return caught.value


# -- metadata types ----------------------------------------------------------------------------


def test_string_metadata_is_sent_as_given() -> None:
    assert metadata(plan="pro", note="", city="Zürich") == {
        "plan": "pro",
        "note": "",
        "city": "Zürich",
    }


def test_integer_and_float_metadata_keep_their_type() -> None:
    result = metadata(seats=3, ratio=0.5, big=2**40, zero=0, negative=-7)
    assert result == {"seats": 3, "ratio": 0.5, "big": 2**40, "zero": 0, "negative": -7}
    assert type(result["seats"]) is int
    assert type(result["ratio"]) is float


@pytest.mark.parametrize(
    "value",
    ["2024-01-01T00:00:00Z", "2024-01-01T01:00:00+01:00", "1704067200", JAN_1_2024],
)
def test_date_key_takes_iso_or_unix_seconds_and_sends_unix_seconds(value: object) -> None:
    assert metadata(signup_date=value) == {"signup_date": JAN_1_2024}


def test_date_key_takes_milliseconds_and_now() -> None:
    assert metadata(a_date=JAN_1_2024 * 1000, b_date="now") == {
        "a_date": JAN_1_2024,
        "b_date": int(NOW),
    }


def test_date_key_refuses_a_non_time() -> None:
    with pytest.raises(ValidationError, match="signup_date"):
        metadata(signup_date="next tuesday")


def test_a_key_merely_containing_date_is_not_a_date() -> None:
    assert metadata(date_of_birth="1990", update="x") == {"date_of_birth": "1990", "update": "x"}


def test_link_string_is_sent_as_a_string() -> None:
    assert metadata(article="https://example.org/a/1") == {"article": "https://example.org/a/1"}


@pytest.mark.parametrize("url", ["https://example.org/o/1", "http://example.org", "HTTPS://X.Y"])
def test_rich_link(url: str) -> None:
    assert metadata(order={"url": url, "value": "1"}) == {"order": {"url": url, "value": "1"}}


@pytest.mark.parametrize("amount", [0, 2999, 10**9])
@pytest.mark.parametrize("currency", ["usd", "EUR", "Gbp"])
def test_monetary_amount(amount: int, currency: str) -> None:
    value = {"amount": amount, "currency": currency}
    assert metadata(price=value) == {"price": value}


def test_all_types_together_through_the_option_syntax() -> None:
    options = [
        "plan=pro",
        "seats:=3",
        'price:={"amount": 2999, "currency": "usd"}',
        'order:={"url": "https://example.org/o/1", "value": "1"}',
        "signup_date=2024-01-01T00:00:00Z",
    ]
    assert validate_metadata(merge_metadata({}, options), clock) == {
        "plan": "pro",
        "seats": 3,
        "price": {"amount": 2999, "currency": "usd"},
        "order": {"url": "https://example.org/o/1", "value": "1"},
        "signup_date": JAN_1_2024,
    }


# -- the -m option syntax ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("plan=pro", ("plan", "pro")),
        ("formula=a=b", ("formula", "a=b")),
        ("empty=", ("empty", "")),
        ("seats:=3", ("seats", 3)),
        ("ratio:=0.25", ("ratio", 0.25)),
        ('quoted:="3"', ("quoted", "3")),
        ("a:b=c", ("a:b", "c")),
        ('price:={"amount": 1, "currency": "usd"}', ("price", {"amount": 1, "currency": "usd"})),
    ],
)
def test_parse_metadata_option(option: str, expected: tuple[str, object]) -> None:
    assert parse_metadata_option(option) == expected


def test_option_without_equals_is_refused() -> None:
    with pytest.raises(ValidationError, match="no '='"):
        parse_metadata_option("plan")


@pytest.mark.parametrize("raw", ["{bad", "pro", "[1,", "", "'single'"])
def test_option_with_bad_json_is_refused_naming_the_key(raw: str) -> None:
    with pytest.raises(ValidationError, match='"seats".*not valid JSON') as caught:
        parse_metadata_option(f"seats:={raw}")
    assert caught.value.field == "metadata.seats"


def test_deeply_nested_json_is_a_validation_error_not_a_crash() -> None:
    with pytest.raises(ValidationError):
        parse_metadata_option("deep:=" + "[" * 100_000)
    with pytest.raises(ValidationError):
        parse_metadata_json('{"a": ' + "[" * 100_000)


def test_option_wins_over_metadata_json_on_the_same_key() -> None:
    base = parse_metadata_json('{"plan": "basic", "seats": 1}')
    assert merge_metadata(base, ["plan=pro", "extra:=2"]) == {
        "plan": "pro",
        "seats": 1,
        "extra": 2,
    }
    assert base == {"plan": "basic", "seats": 1}, "the base object is not modified"


@pytest.mark.parametrize("text", ["[1, 2]", '"text"', "3", "null"])
def test_metadata_json_must_be_an_object(text: str) -> None:
    with pytest.raises(ValidationError, match="must be a JSON object"):
        parse_metadata_json(text)


def test_metadata_json_syntax_error_says_where() -> None:
    with pytest.raises(ValidationError, match="line 1, column"):
        parse_metadata_json('{"a": }')


# -- metadata validation rules -----------------------------------------------------------------


def test_at_most_ten_keys() -> None:
    ten = {f"k{i}": i for i in range(MAX_METADATA_KEYS)}
    assert validate_metadata(ten, clock) == ten
    with pytest.raises(ValidationError, match="11 keys.*first 10.*remove 1") as caught:
        validate_metadata({**ten, "k10": 10}, clock)
    assert caught.value.field == "metadata"


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="key is empty"):
        validate_metadata({"": "x"}, clock)
    with pytest.raises(ValidationError, match="key is empty"):
        validate_metadata(merge_metadata({}, ["=x"]), clock)


@pytest.mark.parametrize("char", list(".$\x00~`!@#%^&*'{}|\\\""))
def test_key_with_a_forbidden_character_is_refused(char: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_metadata({f"a{char}b": "x"}, clock)
    shown = "NUL" if char == "\x00" else char
    assert f"contains {shown};" in caught.value.message
    assert caught.value.field == f"metadata.a{char}b"


def test_key_with_ordinary_punctuation_is_accepted() -> None:
    # Intercom's list (~`!@#%^&*'{}|\\") leaves out ';', '-', '_', ':', spaces and brackets.
    key = "plan-name_v2 (beta);x:y"
    assert metadata(**{key: "x"}) == {key: "x"}


def test_string_longer_than_255_is_refused() -> None:
    assert metadata(note="é" * 255) == {"note": "é" * 255}
    error = refused("x" * 256)
    assert '"key" is 256 characters long' in error.message
    assert error.field == "metadata.key"


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"a": 1},
        {"url": "https://example.org"},
        {"url": "https://example.org", "value": "1", "extra": "x"},
        {"amount": 1},
        {"amount": 1, "currency": "usd", "extra": 1},
    ],
)
def test_object_that_is_neither_rich_link_nor_money_is_refused(value: object) -> None:
    assert "rich link" in refused(value).message


@pytest.mark.parametrize(
    "url", ["ftp://example.org", "javascript:alert(1)", "example.org", "https://", "", 3, None]
)
def test_rich_link_url_must_be_http_or_https(url: object) -> None:
    assert "http or https 'url'" in refused({"url": url, "value": "1"}).message


def test_rich_link_value_must_be_a_string_of_at_most_255() -> None:
    assert "'value' must be a string" in refused({"url": "https://e.org", "value": 1}).message
    long_value = {"url": "https://e.org", "value": "v" * 256}
    assert "value is 256 characters" in refused(long_value).message


@pytest.mark.parametrize("amount", [-1, 29.99, 3.0, True, False, "2999", None])
def test_money_amount_must_be_a_non_negative_integer(amount: object) -> None:
    error = refused({"amount": amount, "currency": "usd"})
    assert "non-negative whole number of cents" in error.message


@pytest.mark.parametrize("currency", ["us", "usdd", "123", "u$d", "", 840, None])
def test_money_currency_must_be_three_letters(currency: object) -> None:
    assert "three letters" in refused({"amount": 1, "currency": currency}).message


@pytest.mark.parametrize(
    "value",
    [
        {"url": {"href": "https://e.org"}, "value": "1"},
        {"url": "https://e.org", "value": {"text": "1"}},
        {"amount": {"cents": 1}, "currency": "usd"},
        {"amount": 1, "currency": {"code": "usd"}},
        {"url": ["https://e.org"], "value": "1"},
    ],
)
def test_anything_nested_deeper_is_refused(value: object) -> None:
    assert refused(value).field == "metadata.key"


@pytest.mark.parametrize("value", [[], [1, 2], ["a"], ({"amount": 1, "currency": "usd"},)])
def test_arrays_are_refused(value: object) -> None:
    assert "arrays are not supported" in refused(value).message


@pytest.mark.parametrize("value", [True, False, None])
def test_booleans_and_null_are_refused(value: object) -> None:
    assert "not an Intercom metadata type" in refused(value).message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused(value: float) -> None:
    assert "not a finite number" in refused(value).message


def test_nan_through_the_option_syntax_is_refused() -> None:
    with pytest.raises(ValidationError):
        validate_metadata(merge_metadata({}, ["x:=NaN"]), clock)


def test_metadata_must_be_an_object() -> None:
    assert validate_metadata(None, clock) == {}
    with pytest.raises(ValidationError, match="must be a JSON object"):
        validate_metadata(["a"], clock)


def test_object_with_non_string_keys_is_a_validation_error() -> None:
    # Library callers can pass any mapping; JSON always gives string keys.
    with pytest.raises(ValidationError):
        validate_metadata({"key": {1: "x", "url": "https://e.org"}}, clock)


# -- event name --------------------------------------------------------------------------------


def test_event_name_is_kept_as_given() -> None:
    assert validate_event_name("invited-friend") == "invited-friend"
    assert validate_event_name("n" * 255) == "n" * 255
    assert validate_event_name("café ordered") == "café ordered"


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("n" * 256, "256 characters"),
        ("line\nbreak", "control character"),
        ("tab\there", "control character"),
        ("nul\x00", "control character"),
        ("del\x7f", "control character"),
        ("c1\x85", "control character"),
        (3, "not a string"),
        (None, "not a string"),
    ],
)
def test_bad_event_name_is_refused(name: object, rule: str) -> None:
    with pytest.raises(ValidationError, match=rule) as caught:
        validate_event_name(name)
    assert caught.value.field == "event_name"


# -- created_at --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1704067200", JAN_1_2024),
        (JAN_1_2024, JAN_1_2024),
        (" 1704067200 ", JAN_1_2024),
        (1704067200.9, JAN_1_2024),
        ("1704067200.9", JAN_1_2024),
        ("0", 0),
        # Milliseconds: any value >= 10^11 is divided by 1000.
        ("1704067200000", JAN_1_2024),
        (1704067200123, JAN_1_2024),
        (10**11 - 1, 10**11 - 1),
        (10**11, 10**8),
        ("2024-01-01T00:00:00Z", JAN_1_2024),
        ("2024-01-01T00:00:00z", JAN_1_2024),
        ("2024-01-01T00:00:00.999Z", JAN_1_2024),
        ("2024-01-01T02:00:00+02:00", JAN_1_2024),
        ("2023-12-31T22:30:00-01:30", JAN_1_2024),
        ("2024-01-01T02:00:00+0200", JAN_1_2024),
        ("2023-12-31T22:30:00-0130", JAN_1_2024),
        ("2024-01-01T00:00:00", JAN_1_2024),
        ("2024-01-01 00:00:00", JAN_1_2024),
        ("2024-01-01", JAN_1_2024),
        ("now", int(NOW)),
        ("NOW", int(NOW)),
        (" now ", int(NOW)),
    ],
)
def test_created_at_forms(value: object, expected: int) -> None:
    assert parse_timestamp(value, field_name="created_at", clock=clock) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "12abc",
        "1e3",
        "0x10",
        "-5",
        -1,
        "2024-13-01T00:00:00Z",
        "2024-01-01T25:00:00Z",
        "1969-12-31T23:59:59Z",
        "2024-01-01T00:00:00+25:00",
        "99999-01-01",
        "9999-12-31T23:59:59-01:00",
        10**20,
        float("nan"),
        float("inf"),
        None,
        True,
        [JAN_1_2024],
        {"seconds": JAN_1_2024},
    ],
)
def test_created_at_garbage_is_a_validation_error(value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_timestamp(value, field_name="created_at", clock=clock)
    assert caught.value.field == "created_at"
    assert caught.value.message.startswith("created_at")


def test_huge_integer_time_is_a_validation_error_not_a_crash() -> None:
    # json.loads gives Python ints of any size; float() of one overflows.
    with pytest.raises(ValidationError):
        parse_timestamp(10**400, field_name="created_at", clock=clock)
    with pytest.raises(ValidationError):
        validate_metadata(merge_metadata({}, ["signup_date:=" + "9" * 400]), clock)


def test_created_at_defaults_to_the_clock_in_whole_seconds() -> None:
    event = Event.create("signed-up", user_id="1", clock=clock)
    assert event.created_at == int(NOW)


def test_created_at_now_uses_the_injected_clock() -> None:
    event = Event.create("signed-up", user_id="1", created_at="now", clock=lambda: 42.9)
    assert event.created_at == 42


def test_format_utc() -> None:
    assert format_utc(JAN_1_2024) == "2024-01-01T00:00:00Z"


# -- Event, payload, de-duplication key --------------------------------------------------------


def make_event(**overrides: object) -> Event:
    arguments: dict[str, object] = {
        "user_id": "314159",
        "created_at": JAN_1_2024,
        "metadata": {"plan": "pro", "seats": 3},
    }
    arguments.update(overrides)
    return Event.create("invited-friend", clock=clock, **arguments)  # type: ignore[arg-type]


def test_payload_is_the_api_body() -> None:
    event = make_event(email="ada@example.org", contact_id="5f00")
    assert event.payload() == {
        "event_name": "invited-friend",
        "created_at": JAN_1_2024,
        "user_id": "314159",
        "email": "ada@example.org",
        "id": "5f00",
        "metadata": {"plan": "pro", "seats": 3},
    }


def test_body_is_compact_sorted_utf8_json_of_the_payload() -> None:
    # Canonical form (sorted keys): the body and the de-duplication key share it.
    event = make_event(metadata={"zone": "b", "city": "Zürich"})
    assert (
        event.body()
        == (
            '{"created_at":1704067200,"event_name":"invited-friend",'
            '"metadata":{"city":"Zürich","zone":"b"},"user_id":"314159"}'
        ).encode()
    )
    assert event.dedup_key() == hashlib.sha256(event.body()).hexdigest()
    assert json.loads(event.body()) == event.payload()


def test_payload_without_metadata_has_no_metadata_key() -> None:
    assert "metadata" not in make_event(metadata=None).payload()
    assert "metadata" not in make_event(metadata={}).payload()


def test_numeric_user_id_is_sent_as_a_string() -> None:
    assert make_event(user_id=314159).payload()["user_id"] == "314159"


def test_body_and_dedup_key_are_stable() -> None:
    first, second = make_event(), make_event()
    assert first == second
    assert first.body() == second.body() == first.body()
    assert first.dedup_key() == second.dedup_key()
    assert len(first.dedup_key()) == 64
    int(first.dedup_key(), 16)


def test_dedup_key_ignores_metadata_order_but_not_content() -> None:
    key = make_event().dedup_key()
    assert make_event(metadata={"seats": 3, "plan": "pro"}).dedup_key() == key
    assert make_event(created_at=JAN_1_2024 + 1).dedup_key() != key
    assert make_event(metadata={"plan": "pro", "seats": 4}).dedup_key() != key
    assert make_event(user_id="314160").dedup_key() != key


def test_from_payload_round_trips() -> None:
    event = make_event(email="ada@example.org", contact_id="5f00")
    rebuilt = Event.from_payload(json.loads(event.body()))
    assert rebuilt == event
    assert rebuilt.dedup_key() == event.dedup_key()


@pytest.mark.parametrize(
    "identity",
    [
        {},
        {"user_id": None, "email": None, "contact_id": None},
        {"user_id": ""},
        {"user_id": "  "},
    ],
)
def test_create_refuses_an_event_without_identity(identity: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as caught:
        Event.create("invited-friend", clock=clock, **identity)  # type: ignore[arg-type]
    assert caught.value.field == "user_id"


def test_create_with_any_single_identity() -> None:
    assert Event.create("e", email="ada@example.org", clock=clock).contact == (
        "email ada@example.org"
    )
    assert Event.create("e", contact_id="5f00", clock=clock).payload()["id"] == "5f00"


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("email", "not-an-email", "not an e-mail"),
        ("email", "a b@example.org", "not an e-mail"),
        ("user_id", "u" * 256, "256 characters"),
        ("user_id", "1\n2", "control character"),
        ("user_id", True, "not a string"),
    ],
)
def test_create_refuses_a_bad_identity(field: str, value: object, rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        Event.create("e", clock=clock, **{field: value})  # type: ignore[arg-type]


def test_create_validates_metadata_and_name() -> None:
    with pytest.raises(ValidationError, match="event_name"):
        Event.create("", user_id="1", clock=clock)
    with pytest.raises(ValidationError, match="arrays"):
        Event.create("e", user_id="1", metadata={"a": [1]}, clock=clock)


# -- bulk records ------------------------------------------------------------------------------


def test_event_from_record() -> None:
    record = {
        "event_name": "ordered",
        "created_at": "2024-01-01T00:00:00Z",
        "email": "ada@example.org",
        "metadata": {"signup_date": "2024-01-01"},
        "_line": 7,
    }
    event = event_from_record(record, clock)
    assert event.payload() == {
        "event_name": "ordered",
        "created_at": JAN_1_2024,
        "email": "ada@example.org",
        "metadata": {"signup_date": JAN_1_2024},
    }


@pytest.mark.parametrize(
    ("record", "rule"),
    [
        ([], "must be a JSON object"),
        ({"user_id": "1"}, "event_name is missing"),
        ({"event_name": "e", "userid": "1"}, r'unknown field "userid" \(did you mean "user_id"'),
        ({"event_name": "e"}, "no contact"),
    ],
)
def test_event_from_record_refuses(record: object, rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        event_from_record(record, clock)


def test_metadata_json_with_a_number_too_long_for_python_is_a_validation_error() -> None:
    # Python refuses to parse integers of more than 4300 digits (ValueError, not JSON's).
    with pytest.raises(ValidationError):
        parse_metadata_json('{"a": ' + "1" * 5000 + "}")
    with pytest.raises(ValidationError):
        parse_metadata_option("a:=" + "1" * 5000)


@pytest.mark.parametrize(
    "where",
    ["event_name", "user_id", "email", "key", "string", "link_url", "link_value"],
)
def test_text_that_is_not_utf8_is_refused_before_sending(where: str) -> None:
    # A Latin-1 byte in argv arrives as a lone surrogate (\udcff), as does JSON "\udcff";
    # neither can be encoded into the request body.
    bad = "caf\udcff"
    arguments: dict[str, object] = {"user_id": "1", "metadata": {}}
    if where in ("event_name", "user_id"):
        arguments[where] = bad
    elif where == "email":
        arguments["email"] = bad + "@example.org"
    elif where == "key":
        arguments["metadata"] = {bad: "x"}
    elif where == "string":
        arguments["metadata"] = {"k": bad}
    elif where == "link_url":
        arguments["metadata"] = {"k": {"url": "https://e.org/" + bad, "value": "1"}}
    else:
        arguments["metadata"] = {"k": {"url": "https://e.org", "value": bad}}
    name = arguments.pop("event_name", "e")
    with pytest.raises(ValidationError, match="not valid UTF-8"):
        Event.create(name, clock=clock, **arguments)  # type: ignore[arg-type]
