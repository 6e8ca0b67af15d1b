"""Network errors name the host; a name that does not resolve is not retried for seconds."""

from __future__ import annotations

import socket

from conftest import RunCli

from intercom_events_cli.http.client import host_of, is_dns_failure, transport_message


def test_unresolvable_host_is_named_and_not_retried(run_cli: RunCli) -> None:
    result = run_cli("check", "--base-url", "https://nonexistent.invalid", "--retries", "4")
    assert result.code == 75, result
    assert "cannot resolve nonexistent.invalid" in result.stderr
    assert "after 1 attempt:" in result.stderr  # not 5 attempts over 8 s


def test_refused_connection_names_host_and_port(run_cli: RunCli) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_cli(
        "send", "x", "--user-id", "1", "--base-url", f"http://127.0.0.1:{port}", "--retries", "0"
    )
    assert result.code == 75, result
    assert f"cannot reach 127.0.0.1:{port}" in result.stderr


def test_dns_failure_is_found_through_the_exception_chain() -> None:
    try:
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except OSError as inner:
            raise RuntimeError("connect failed") from inner
    except RuntimeError as outer:
        assert is_dns_failure(outer)
    assert not is_dns_failure(ConnectionRefusedError(111, "Connection refused"))
    assert host_of("https://user:pw@api.eu.intercom.io/me?x=1") == "api.eu.intercom.io"
    message = transport_message(OSError("boom"), "https://api.eu.intercom.io/events", False)
    assert message == "cannot reach api.eu.intercom.io: boom"
