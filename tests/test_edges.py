"""Edges of the contract (issues 9 and 13): TLS verification, every httpx exception, the
purge prompt, and one JSON object on every exit."""

from __future__ import annotations

import datetime
import errno
import os
import pty
import select
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from conftest import RunCli, base_env
from helpers import launch, wait_for

from intercom_events_cli.config.settings import Settings
from intercom_events_cli.errors import ExitCode
from intercom_events_cli.event import Event
from intercom_events_cli.outbox import SqliteOutbox, State
from intercom_events_cli.outcome import OutcomeKind, classify_exception, exit_code_for

# -- a TLS server whose certificate nobody trusts --------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1: with `cryptography` if installed, else openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            if os.environ.get("CI") == "true":
                pytest.fail("CI must be able to make a certificate: install cryptography")
            pytest.skip("neither the cryptography package nor the openssl CLI is available")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
            + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
            + ["-keyout", str(key), "-out", str(cert)],
            check=True,
            capture_output=True,
        )
        return cert, key
    import ipaddress

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


class _Accepting(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def untrusted_tls(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server on loopback with a self-signed certificate: its base URL."""
    cert, key = _self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Accepting)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_untrusted_certificate_is_a_configuration_error(
    run_cli: RunCli, untrusted_tls: str, tmp_path: Path
) -> None:
    env = {"INTERCOM_BASE_URL": untrusted_tls}
    result = run_cli("send", "x", "--user-id", "1", "--retries", "3", "--json", env=env)
    assert result.code == 78, result
    body = result.json()
    assert body["attempts"] == 1  # not retried
    assert body["error"]["code"] == "tls_error"
    assert "SSL_CERT_FILE" in result.stderr
    # --queue-on-failure keeps it, and still says the setup is wrong.
    kept = run_cli("send", "x", "--user-id", "1", "--queue-on-failure", env=env)
    assert kept.code == 78, kept
    assert "kept in the outbox" in kept.stderr and "SSL_CERT_FILE" in kept.stderr
    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as store:
        assert [r.state for r in store.rows(list(State))] == [State.PENDING]
    # flush: stops, keeps it pending, 78.
    flushed = run_cli("flush", "--now", env=env)
    assert flushed.code == 78, flushed
    assert "certificate could not be verified" in flushed.stderr
    assert "SSL_CERT_FILE" in flushed.stderr
    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as store:
        assert [r.state for r in store.rows(list(State))] == [State.PENDING]


# -- every httpx exception has an outcome ----------------------------------------------------


def _httpx_exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    pending: list[type[BaseException]] = [httpx.RequestError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("cls", _httpx_exception_classes(), ids=lambda c: c.__name__)
def test_every_httpx_exception_maps_to_an_exit_code(cls: type[BaseException]) -> None:
    from intercom_events_cli.http.client import EventsClient

    def fail(request: httpx.Request) -> httpx.Response:
        raise cls("boom", request=request)  # type: ignore[call-arg]

    settings = Settings(token="tok_unit_test_000000", base_url="http://127.0.0.1:1", retries=1)
    with EventsClient(
        settings, transport=httpx.MockTransport(fail), sleep=lambda s: None
    ) as client:
        outcome = client.send(Event.create("x", user_id="1", created_at=1))
    assert not outcome.delivered
    assert outcome.error_code in ("timeout", "connection_error", "tls_error", "invalid_url")
    assert outcome.exit_code in (ExitCode.TEMPORARY, ExitCode.CONFIG)
    assert outcome.attempts == (2 if outcome.kind is OutcomeKind.TEMPORARY else 1)


def test_a_certificate_failure_is_configuration_and_a_bug_is_not_classified() -> None:
    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] self-signed")
    error = httpx.ConnectError("handshake failed")
    error.__cause__ = cause
    failure = classify_exception(error)
    assert failure is not None and failure.code == "tls_error"
    assert exit_code_for(failure.kind) == ExitCode.CONFIG
    assert classify_exception(ValueError("a bug")) is None


def test_the_pacer_is_told_even_when_a_bug_escapes() -> None:
    from intercom_events_cli.http.client import EventsClient

    class Counting:
        def __init__(self) -> None:
            self.acquired = self.observed = 0

        def acquire(self) -> None:
            self.acquired += 1

        def observe(self, status: int | None, headers: object) -> None:
            self.observed += 1

        def close(self) -> None:
            pass

    def bug(request: httpx.Request) -> httpx.Response:
        raise ZeroDivisionError("a bug in a transport")

    pacer = Counting()
    settings = Settings(token="tok_unit_test_000000", base_url="http://127.0.0.1:1")
    with EventsClient(settings, transport=httpx.MockTransport(bug), pacer=pacer) as client:
        with pytest.raises(ZeroDivisionError):
            client.send(Event.create("x", user_id="1", created_at=1))
    assert pacer.acquired == pacer.observed == 1


# -- the purge prompt ------------------------------------------------------------------------


def _purge_on_a_terminal(tmp_path: Path, answer: bytes | None) -> tuple[int, str]:
    """Run ``outbox purge --dead`` on a pty, wait for the question, answer (None: Ctrl-C)."""
    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as store:
        store.add(Event.create("x", user_id="1", created_at=1))
        store.retry_dead()  # nothing dead yet: make one dead by hand
        store._db.execute("UPDATE events SET state = 'dead'")  # noqa: SLF001 - test setup
    leader, follower = pty.openpty()
    process = launch(
        ["outbox", "purge", "--dead"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=base_env(tmp_path, None),
        cwd=tmp_path,
        start_new_session=True,
    )
    os.close(follower)
    read: list[bytes] = []

    def asked() -> bool:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            read.append(os.read(leader, 4096))
        return b"[y/N]" in b"".join(read)

    wait_for(asked, what="the question [y/N]")
    seen = b"".join(read)
    if answer is None:
        # SIGINT, as Ctrl-C on the terminal sends. A signal that lands after the prompt is
        # written but before input() blocks in read() is only seen at the next one (a race
        # in any Python prompt), so it is sent again, as a user presses Ctrl-C again.
        for _ in range(15):
            process.send_signal(2)
            try:
                process.wait(2)
                break
            except subprocess.TimeoutExpired:
                continue
    else:
        os.write(leader, answer)
    code = process.wait(30)
    while True:
        try:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if not ready:
                break
            chunk = os.read(leader, 4096)
        except OSError as exc:  # EIO: the other side is closed
            assert exc.errno == errno.EIO
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return code, seen.decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("answer", "expected"), [(None, 130), (b"\x04", 130), (b"n\n", 0)], ids=["ctrl-c", "eof", "no"]
)
def test_purge_prompt_aborted_is_not_an_internal_error(
    tmp_path: Path, answer: bytes | None, expected: int
) -> None:
    code, text = _purge_on_a_terminal(tmp_path, answer)
    assert code == expected, text
    assert "internal error" not in text and "not purged" in text
    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as store:
        assert len(store.rows([State.DEAD])) == 1


# -- --json: one object on every exit --------------------------------------------------------


def test_json_on_an_internal_error_prints_one_object(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from intercom_events_cli.cli import app
    from intercom_events_cli.cli.outbox import inspection as outbox_cli

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(outbox_cli, "print_status", broken)
    env = {"IEVENTS_OUTBOX": str(tmp_path / "o.sqlite3"), "HOME": str(tmp_path)}
    result = CliRunner().invoke(app, ["outbox", "status", "--json"], env=env)
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout
    import json

    body = json.loads(lines[0])
    assert body["ok"] is False and body["error"]["code"] == "internal_error"
    assert "RuntimeError: a bug" in body["error"]["message"]
