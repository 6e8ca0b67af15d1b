"""httpx's and httpcore's internals are reached in one function (``transport.private``),
which works with the installed versions and fails loudly, naming both versions, with any
other: an upgrade that moves one of them is one clear line, never a silently unbounded
socket or an AttributeError traceback."""

from __future__ import annotations

import ast
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from packaging.requirements import Requirement

import intercom_events_cli
from intercom_events_cli.config.settings import Settings
from intercom_events_cli.errors import ExitCode, IncompatibleHttpLibrary
from intercom_events_cli.http import transport as transport_module
from intercom_events_cli.http.transport import (
    HTTPCORE_REQUIREMENT,
    HTTPX_REQUIREMENT,
    bound_by_deadline,
    install_deadlines,
    private,
    replace_transport,
)

PACKAGE = Path(intercom_events_cli.__file__).parent
PRIVATE = {"_transport", "_mounts", "_pool", "_network_backend"}


def backend_of(transport: httpx.HTTPTransport) -> object:
    return private(private(transport, "_pool"), "_network_backend")


def test_the_installed_versions_are_the_declared_ones() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - tomli on 3.10
        import tomli as tomllib
    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    declared = set(pyproject["project"]["dependencies"])
    assert {HTTPX_REQUIREMENT, HTTPCORE_REQUIREMENT} <= declared
    for requirement in (Requirement(HTTPX_REQUIREMENT), Requirement(HTTPCORE_REQUIREMENT)):
        installed = version(requirement.name)
        assert requirement.specifier.contains(installed), (requirement, installed)


def test_deadlines_reach_the_sockets_of_every_transport_httpx_makes() -> None:
    proxied = httpx.HTTPTransport(proxy="http://127.0.0.1:9")
    client = httpx.Client(mounts={"https://": proxied})
    original = backend_of(proxied)
    install_deadlines(client)
    install_deadlines(client)  # twice: wrapped once
    for transport in (private(client, "_transport"), proxied):
        backend = backend_of(transport)
        assert type(backend).__name__ == "_DeadlineBackend"
        assert not isinstance(private(backend, "_inner"), type(backend))
    assert private(backend_of(proxied), "_inner") is original
    client.close()


def test_a_replaced_transport_is_the_one_httpx_sends_with() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(202)

    with httpx.Client(base_url="http://127.0.0.1:9") as client:
        made = replace_transport(client, httpx.MockTransport(answer))
        assert isinstance(made, httpx.HTTPTransport)
        made.close()
        assert client.post("/events").status_code == 202
    assert seen == ["http://127.0.0.1:9/events"]


def test_what_has_no_sockets_is_left_alone() -> None:
    mock = httpx.MockTransport(lambda request: httpx.Response(202))
    for transport in (mock, None, object()):
        bound_by_deadline(transport)  # no error, nothing to bound
    assert not hasattr(mock, "_pool")


def incompatible(caught: pytest.ExceptionInfo[IncompatibleHttpLibrary], name: str) -> None:
    error = caught.value
    assert f"httpx {httpx.__version__}" in error.message
    assert f"httpcore {httpcore.__version__}" in error.message
    assert name in error.message and "\n" not in error.message
    assert HTTPX_REQUIREMENT in (error.hint or "") and HTTPCORE_REQUIREMENT in (error.hint or "")
    assert error.exit_code is ExitCode.INTERNAL


def test_a_transport_without_its_pool_fails_naming_both_versions() -> None:
    transport = httpx.HTTPTransport()
    del transport._pool
    with pytest.raises(IncompatibleHttpLibrary) as caught:
        bound_by_deadline(transport)
    incompatible(caught, "_pool")


def test_a_pool_without_its_network_backend_fails_naming_both_versions() -> None:
    transport = httpx.HTTPTransport()
    del private(transport, "_pool")._network_backend
    with pytest.raises(IncompatibleHttpLibrary) as caught:
        bound_by_deadline(transport)
    incompatible(caught, "_network_backend")


@pytest.mark.parametrize("name", ["_transport", "_mounts"])
def test_a_client_without_its_transports_fails_naming_both_versions(name: str) -> None:
    client = httpx.Client()
    delattr(client, name)
    with pytest.raises(IncompatibleHttpLibrary) as caught:
        install_deadlines(client) if name == "_mounts" else replace_transport(client, client)  # type: ignore[arg-type]
    incompatible(caught, name)


def test_an_incompatible_httpx_is_one_line_from_the_cli_with_no_traceback(
    run_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = httpx.Client.__init__

    def without_mounts(self: httpx.Client, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        del self._mounts  # as a release that renamed it would be

    monkeypatch.setattr(httpx.Client, "__init__", without_mounts)
    result = run_cli("send", "signed-up", "--user-id", "u1")
    assert result.code == 1, result
    assert f"httpx {httpx.__version__}" in result.stderr
    assert f"httpcore {httpcore.__version__}" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_module_but_transport_py_reaches_a_private_attribute_of_httpx() -> None:
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "http" / "transport.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            named = (
                node.attr
                if isinstance(node, ast.Attribute)
                else node.value
                if isinstance(node, ast.Constant) and isinstance(node.value, str)
                else None
            )
            if named in PRIVATE:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {named}")
    assert found == []


def test_the_client_works_through_the_fence(monkeypatch: pytest.MonkeyPatch) -> None:
    from intercom_events_cli.http.client import EventsClient

    calls: list[str] = []
    real = transport_module.private

    def counting(owner: object, name: str, *replacement: object) -> Any:
        calls.append(name)
        return real(owner, name, *replacement)

    monkeypatch.setattr(transport_module, "private", counting)
    with EventsClient(Settings(token="tok_fence_1234", base_url="http://127.0.0.1:9")):
        pass
    assert {"_transport", "_mounts"} <= set(calls)
