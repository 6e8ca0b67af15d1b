"""Every request shape ievents makes, checked by Prism against Intercom's own description.

Each test runs the real CLI against Prism (started with ``--errors``, so a request that
breaks the contract is answered 422) and then reads Prism's log for the requests it
made: each must have been received, validated and answered, none flagged with ✖.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import TOKEN, RunCli

from .conftest import Prism, violations

RETRIES = ("--retries", "0", "--timeout", "15")


def assert_clean(prism: Prism, mark: int, requests: int) -> str:
    """Prism answered exactly ``requests`` requests after ``mark``, none flagged."""
    text = prism.segment(mark, requests)
    assert text.count("Request received") == requests, text
    assert violations(text) == [], text
    prism.checked += requests
    return text


IDENTITIES = [
    ("--user-id", "314159"),
    ("--email", "frodo.baggins@example.com"),
    ("--id", "8a88a590-e1c3-41e2-a502-e0649dbf721c"),
]

METADATA = {
    "string": ["-m", "source=desktop"],
    "integer": ["-m", "seats:=3"],
    "float": ["-m", "load:=3.67"],
    "date from ISO-8601": ["-m", "contact_date=2014-02-10T12:44:32Z"],
    "date as Unix seconds": ["-m", "contact_date:=1392036272"],
    "link": ["-m", "article=https://example.org/ab1de.html"],
    "rich link": ["-m", 'article:={"url": "https://example.org/ab1de.html", "value": "abides"}'],
    "monetary amount": ["-m", 'price:={"amount": 34999, "currency": "eur"}'],
    "all of them, from --metadata-json": [
        "--metadata-json",
        '{"source": "desktop", "load": 3.67, "contact_date": 1392036272, '
        '"article": {"url": "https://example.org/a.html", "value": "read"}, '
        '"price": {"amount": 34999, "currency": "eur"}, "home": "https://example.org/"}',
    ],
}


@pytest.mark.parametrize(("flag", "value"), IDENTITIES, ids=[i[0] for i in IDENTITIES])
def test_send_with_each_identity(prism: Prism, run_prism: RunCli, flag: str, value: str) -> None:
    mark = prism.mark()

    result = run_prism("send", "invited-friend", flag, value, "--json", *RETRIES)

    assert result.code == 0, result
    assert result.json()["status"] == 202
    assert_clean(prism, mark, 1)


@pytest.mark.parametrize("metadata", METADATA.values(), ids=list(METADATA))
def test_send_with_each_metadata_type(prism: Prism, run_prism: RunCli, metadata: list[str]) -> None:
    mark = prism.mark()

    result = run_prism("send", "placed-order", "--user-id", "314159", *metadata, *RETRIES)

    assert result.code == 0, result
    assert "202 Accepted" in result.stdout
    assert_clean(prism, mark, 1)


def test_send_with_created_at_and_every_identity(prism: Prism, run_prism: RunCli) -> None:
    mark = prism.mark()

    result = run_prism(
        "send",
        "updated-plan",
        "--user-id",
        "314159",
        "--email",
        "frodo.baggins@example.com",
        "--created-at",
        "2024-05-01T10:00:00+02:00",
        *RETRIES,
    )

    assert result.code == 0, result
    assert_clean(prism, mark, 1)


def test_check(prism: Prism, run_prism: RunCli) -> None:
    mark = prism.mark()

    result = run_prism("check", "--json", *RETRIES)

    assert result.code == 0, result
    data = result.json()
    assert data["ok"] is True
    assert data["api_base"] == prism.url
    assert data["api_version"] == "2.14"
    # Prism answers with the description's example; only its shape is ours to check.
    assert set(data["admin"]) == {"name", "email"}
    assert set(data["app"]) == {"name", "id_code", "region"}
    assert isinstance(data["warnings"], list)
    assert_clean(prism, mark, 1)


def test_check_human_output(prism: Prism, run_prism: RunCli) -> None:
    mark = prism.mark()

    result = run_prism("check", *RETRIES)

    assert result.code == 0, result
    assert "ok: the token works" in result.stdout
    assert f"API:     {prism.url}" in result.stdout
    assert_clean(prism, mark, 1)


LIST_CONTACTS = [
    ("--user-id", "314159"),
    ("--email", "frodo.baggins+events@example.com"),
    ("--id", "6762f22b1bb69f9f2193bc12"),
]


@pytest.mark.parametrize("summary", [False, True], ids=["events", "summary"])
@pytest.mark.parametrize(("flag", "value"), LIST_CONTACTS, ids=[c[0] for c in LIST_CONTACTS])
def test_list_by_each_identifier(
    prism: Prism, run_prism: RunCli, flag: str, value: str, summary: bool
) -> None:
    mark = prism.mark()
    extra = ["--summary"] if summary else []

    result = run_prism("list", flag, value, "--json", *extra, *RETRIES)

    assert result.code == 0, result
    for item in result.json_lines():
        assert isinstance(item, dict)
    # Prism's example page may link to an example host: never followed, at most a warning.
    if "warning" in result.stderr:
        assert "never sends the token to another host" in result.stderr, result
    assert_clean(prism, mark, 1)


def test_list_with_per_page_and_limit(prism: Prism, run_prism: RunCli) -> None:
    mark = prism.mark()

    result = run_prism("list", "--user-id", "314159", "--per-page", "5", "--limit", "3", *RETRIES)

    assert result.code == 0, result
    assert_clean(prism, mark, 1)


# -- the checks themselves ---------------------------------------------------------------------

PRISM_REJECTION = """\
[11:12:01 AM] › [HTTP SERVER] post /events ℹ  info      Request received
[11:12:01 AM] ›     [VALIDATOR] ⚠  warning   Request did not pass the validation rules
[11:12:01 AM] ›     [VALIDATOR] ✖  error     Request body must have required property 'id'
[11:12:01 AM] › [HTTP SERVER] post /events ✖  error     Request terminated with error
"""


def test_violations_are_found_in_a_log() -> None:
    assert len(violations(PRISM_REJECTION)) == 3
    assert violations("[HTTP SERVER] get /me ℹ  info      Request received\n") == []


def test_prism_rejects_a_request_that_breaks_the_contract(prism: Prism) -> None:
    """A control: Prism does validate, and the log check sees what it flags."""
    mark = prism.mark()

    answer = httpx.post(
        f"{prism.url}/events",
        json={"event_name": "no-contact", "created_at": "yesterday"},
        headers={"Authorization": f"Bearer {TOKEN}", "Intercom-Version": "2.14"},
        timeout=15,
    )

    assert answer.status_code == 422
    text = prism.segment(mark, 1)
    assert violations(text)
    prism.excluded.append((mark, len(prism.log())))


def test_the_whole_log_check_sees_a_flagged_line(tmp_path: Path) -> None:
    """The check the prism fixture makes of its whole log when the session ends."""
    log = tmp_path / "prism.log"
    clean = "[HTTP SERVER] post /events ℹ  info      Request received\n"
    log.write_text(clean + PRISM_REJECTION, encoding="utf-8")
    prism = Prism(url="", log_path=log, process=None, checked=1)  # type: ignore[arg-type]
    assert prism.unchecked_problems() is not None
    prism.excluded.append((len(clean), len(clean + PRISM_REJECTION)))
    assert prism.unchecked_problems() is None
    prism.checked = 2
    assert prism.unchecked_problems() is not None
