"""Corporate networks: ievents goes through the proxy the environment names, and says so.

A small forwarding proxy on loopback relays absolute-URI requests (``GET http://host/path``)
to the fake Intercom and records what went through it. httpx reads HTTP_PROXY /
HTTPS_PROXY / ALL_PROXY / NO_PROXY; the fake is plain http, so HTTP_PROXY carries it here
and HTTPS_PROXY carries a TLS fake (self-signed, trusted through SSL_CERT_FILE) through
a CONNECT tunnel.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import TOKEN, RunCli
from fake_intercom import FakeIntercom


class ForwardingProxy(ThreadingHTTPServer):
    """Relays each request to the URL in its request line; remembers those URLs."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Relay)
        self.seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Relay(BaseHTTPRequestHandler):
    server: ForwardingProxy

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _relay(self) -> None:
        self.server.seen.append(self.path)
        target = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
        upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
        path = target.path + (f"?{target.query}" if target.query else "")
        upstream.request(self.command, path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    do_GET = do_POST = _relay

    def do_CONNECT(self) -> None:  # noqa: N802 - the HTTP method's name
        """HTTPS through the proxy: a blind tunnel to host:port (TLS stays end to end)."""
        self.server.seen.append(f"CONNECT {self.path}")
        host, port = self.path.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)), timeout=10)
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        sockets = [self.connection, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 10)
                if not readable:
                    return
                for ready in readable:
                    data = ready.recv(65536)
                    if not data:
                        return
                    (upstream if ready is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()


@pytest.fixture
def proxy() -> Iterator[ForwardingProxy]:
    server = ForwardingProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_send_and_check_go_through_the_proxy_and_check_says_so(
    run_cli: RunCli, fake: FakeIntercom, proxy: ForwardingProxy
) -> None:
    env = {"HTTP_PROXY": proxy.url}
    sent = run_cli("send", "via-proxy", "--user-id", "1", env=env)
    assert sent.code == 0, sent
    assert proxy.seen == [f"{fake.url}/events"]
    assert [e["event_name"] for e in fake.stored_events()] == ["via-proxy"]

    checked = run_cli("check", env=env)
    assert checked.code == 0, checked
    assert f"proxy:   {proxy.url}" in checked.stdout
    as_json = run_cli("check", "--json", env=env)
    assert json.loads(as_json.stdout)["proxy"] == proxy.url


def test_no_proxy_bypasses_it(run_cli: RunCli, fake: FakeIntercom, proxy: ForwardingProxy) -> None:
    env = {"HTTP_PROXY": proxy.url, "NO_PROXY": "127.0.0.1"}
    checked = run_cli("check", "--json", env=env)
    assert checked.code == 0, checked
    assert proxy.seen == []
    assert json.loads(checked.stdout)["proxy"] is None


def test_proxy_credentials_are_not_shown(
    run_cli: RunCli, fake: FakeIntercom, proxy: ForwardingProxy
) -> None:
    with_password = proxy.url.replace("http://", "http://alice:s3cret-pw@")
    checked = run_cli("check", env={"HTTP_PROXY": with_password})
    assert checked.code == 0, checked
    assert "s3cret-pw" not in checked.stdout + checked.stderr
    assert f"proxy:   {proxy.url}" in checked.stdout


def test_a_dead_proxy_is_named_in_the_hint(run_cli: RunCli, fake: FakeIntercom) -> None:
    checked = run_cli("check", "--retries", "0", env={"HTTP_PROXY": "http://127.0.0.1:9"})
    assert checked.code == 75, checked
    assert "went through the proxy http://127.0.0.1:9" in checked.stderr


@pytest.fixture
def tls_fake(tmp_path: Path) -> Iterator[tuple[FakeIntercom, Path]]:
    """The fake Intercom behind TLS with a self-signed certificate for 127.0.0.1."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        capture_output=True,
    )
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a certificate: {made.stderr.decode()[:200]}")
    server = FakeIntercom(expected_token=TOKEN)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.start()
    yield server, cert
    server.stop()


def test_custom_ca_with_ssl_cert_file_and_https_proxy(
    run_cli: RunCli, tls_fake: tuple[FakeIntercom, Path], proxy: ForwardingProxy
) -> None:
    server, cert = tls_fake
    base = f"https://127.0.0.1:{server.port}"

    untrusted = run_cli("check", "--base-url", base, "--retries", "0")
    assert untrusted.code == 78, untrusted  # TLS verification: a configuration error
    assert f"127.0.0.1:{server.port}" in untrusted.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr

    trusted = run_cli("check", "--base-url", base, env={"SSL_CERT_FILE": str(cert)})
    assert trusted.code == 0, trusted

    env = {"SSL_CERT_FILE": str(cert), "HTTPS_PROXY": proxy.url}
    through = run_cli("send", "tls", "--user-id", "1", "--base-url", base, env=env)
    assert through.code == 0, through
    assert proxy.seen == [f"CONNECT 127.0.0.1:{server.port}"]
    assert [e["event_name"] for e in server.stored_events()] == ["tls"]
    checked = run_cli("check", "--base-url", base, env=env)
    assert f"proxy:   {proxy.url}" in checked.stdout


def test_a_plain_http_client_trusts_no_certificate(
    tls_fake: tuple[FakeIntercom, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An http base URL skips loading the CA store, and fails any TLS handshake closed.

    Even a certificate that SSL_CERT_FILE trusts is refused by the http client's context:
    skipping the CA store never means trusting a peer unverified.
    """
    from intercom_events_cli.http.connections import tls_verification

    server, cert = tls_fake
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    # https: the CA store, with SSL_CERT_FILE honoured (a real handshake succeeds).
    store = tls_verification(f"https://127.0.0.1:{server.port}")
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
        store.wrap_socket(raw, server_hostname="127.0.0.1"),
    ):
        pass
    context = tls_verification(f"http://127.0.0.1:{server.port}")
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
