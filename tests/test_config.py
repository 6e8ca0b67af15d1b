"""Unit tests of config.py: where each setting comes from, and what is refused (exit 78).

The same rules are exercised through the real CLI in test_send_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from intercom_events_cli.config.redaction import redact
from intercom_events_cli.config.settings import (
    REGION_BASE_URLS,
    Settings,
    is_loopback_host,
    validate_base_url,
)
from intercom_events_cli.config.variables import load_environment
from intercom_events_cli.errors import ConfigError, ExitCode

TOKEN = "tok_CONFIG_unit_0a1b2c3d"


def load(env: dict[str, str], **flags: object) -> Settings:
    return Settings.load(env=env, **flags)  # type: ignore[arg-type]


def test_defaults() -> None:
    settings = load({"INTERCOM_ACCESS_TOKEN": TOKEN})
    assert settings.token == TOKEN
    assert settings.region == "us"
    assert settings.base_url == "https://api.intercom.io"
    assert settings.api_version == "2.14"
    assert settings.timeout == 10.0
    assert settings.retries == 4


@pytest.mark.parametrize(("region", "url"), sorted(REGION_BASE_URLS.items()))
def test_regions(region: str, url: str) -> None:
    assert load({"INTERCOM_ACCESS_TOKEN": TOKEN}, region=region.upper()).base_url == url
    assert load({"INTERCOM_ACCESS_TOKEN": TOKEN, "INTERCOM_REGION": region}).base_url == url
    assert (
        url
        == {
            "us": "https://api.intercom.io",
            "eu": "https://api.eu.intercom.io",
            "au": "https://api.au.intercom.io",
        }[region]
    )


def test_flags_beat_environment() -> None:
    env = {
        "INTERCOM_ACCESS_TOKEN": TOKEN,
        "INTERCOM_REGION": "eu",
        "INTERCOM_API_VERSION": "2.11",
        "INTERCOM_BASE_URL": "https://proxy.example.org",
    }
    assert load(env).base_url == "https://proxy.example.org"
    settings = load(env, region="au", base_url="http://127.0.0.1:9/", api_version="2.13")
    assert settings.region == "au"
    assert settings.base_url == "http://127.0.0.1:9"
    assert settings.api_version == "2.13"
    assert load(env, region="au").base_url == "https://api.au.intercom.io", (
        "the --region flag beats a base URL from a variable (and says so: "
        "tests/test_explicit_settings.py)"
    )


def test_missing_token_names_every_way_to_give_one() -> None:
    with pytest.raises(ConfigError) as caught:
        load({})
    assert caught.value.exit_code is ExitCode.CONFIG
    for name in ("INTERCOM_ACCESS_TOKEN", "--token-file", "INTERCOM_ACCESS_TOKEN_FILE", ".env"):
        assert name in caught.value.message
    assert not load({}, require_token=False).has_token


def test_token_file_first_line_trimmed(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}  \nsecond line\n")
    assert load({}, token_file=str(path)).token == TOKEN
    assert load({"INTERCOM_ACCESS_TOKEN_FILE": str(path)}).token == TOKEN
    other = tmp_path / "other"
    other.write_text("tok_other\n")
    assert load({"INTERCOM_ACCESS_TOKEN": TOKEN}, token_file=str(other)).token == "tok_other"


@pytest.mark.parametrize("content", [None, "", "\n\n", "   \n"])
def test_token_file_missing_or_empty(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match="token file"):
        load({}, token_file=str(path))
    with pytest.raises(ConfigError, match="INTERCOM_ACCESS_TOKEN_FILE"):
        load({"INTERCOM_ACCESS_TOKEN_FILE": str(path)})


def test_token_file_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read token file"):
        load({}, token_file=str(tmp_path))


@pytest.mark.parametrize("token", ["tok en", "tok\x00en", "tökén", "tok\u2028en"])
def test_token_that_cannot_go_in_a_header_is_a_config_error(token: str) -> None:
    with pytest.raises(ConfigError):
        load({"INTERCOM_ACCESS_TOKEN": token})


@pytest.mark.parametrize("version", ["2.14 beta", "2.1\n4", "2.14é"])
def test_api_version_that_cannot_go_in_a_header_is_a_config_error(version: str) -> None:
    with pytest.raises(ConfigError):
        load({"INTERCOM_ACCESS_TOKEN": TOKEN}, api_version=version)


def test_bad_region() -> None:
    with pytest.raises(ConfigError, match="unknown region 'mars' \\(from --region\\)"):
        load({"INTERCOM_ACCESS_TOKEN": TOKEN}, region="mars")
    with pytest.raises(ConfigError, match="from INTERCOM_REGION"):
        load({"INTERCOM_ACCESS_TOKEN": TOKEN, "INTERCOM_REGION": "uk"})


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080",
        "http://127.0.0.1:9",
        "http://127.1.2.3",
        "http://[::1]:8080/",
        "https://api.example.org/prefix",
        "HTTP://LOCALHOST",
    ],
)
def test_accepted_base_urls(url: str) -> None:
    assert not validate_base_url(url, "--base-url").endswith("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://api.intercom.io",
        "http://10.0.0.1",
        "http://localhost.example.org",
        "http://128.0.0.1",
        "ftp://api.intercom.io",
        "api.intercom.io",
        "https://",
        "https://api.intercom.io/?token=x",
        "http://[::1",
        "http://127.0.0.1:abc",
        "http://127.0.0.1:99999",
    ],
)
def test_refused_base_urls(url: str) -> None:
    with pytest.raises(ConfigError, match="from --base-url"):
        validate_base_url(url, "--base-url")


def test_loopback_hosts() -> None:
    assert all(map(is_loopback_host, ["localhost", "127.0.0.1", "127.255.0.9", "::1", "[::1]"]))
    assert not any(map(is_loopback_host, ["example.org", "10.0.0.1", "0.0.0.0", "::2"]))


# -- .env --------------------------------------------------------------------------------------


def test_dotenv_fills_in_what_the_environment_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "# comment\nINTERCOM_ACCESS_TOKEN=from-dotenv\nINTERCOM_REGION=eu\nEMPTY=\n"
    )
    merged = load_environment(environ={"INTERCOM_REGION": "au", "INTERCOM_API_VERSION": ""})
    assert merged["INTERCOM_ACCESS_TOKEN"] == "from-dotenv"
    assert merged["INTERCOM_REGION"] == "au", "a variable already set wins over .env"
    assert "EMPTY" not in merged
    assert "INTERCOM_API_VERSION" not in merged, "an empty variable counts as unset"


def test_env_file_replaces_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("INTERCOM_REGION=eu\n")
    other = tmp_path / "prod.env"
    other.write_text("INTERCOM_REGION=au\n")
    assert load_environment(other, environ={})["INTERCOM_REGION"] == "au"
    with pytest.raises(ConfigError, match="--env-file"):
        load_environment(tmp_path / "missing.env", environ={})


def test_a_token_file_set_in_the_environment_beats_a_token_in_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Environment > .env holds for the token as a whole: the environment chose a file.
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("INTERCOM_ACCESS_TOKEN=stale-dev-token\n")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    merged = load_environment(environ={"INTERCOM_ACCESS_TOKEN_FILE": str(token_file)})
    assert load(merged).token == TOKEN


def test_a_token_in_the_environment_beats_a_token_file_in_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text("tok_from_file\n")
    (tmp_path / ".env").write_text(f"INTERCOM_ACCESS_TOKEN_FILE={token_file}\n")
    merged = load_environment(environ={"INTERCOM_ACCESS_TOKEN": TOKEN})
    assert load(merged).token == TOKEN


def test_unreadable_dotenv_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_bytes(b"INTERCOM_REGION=\xff\xfe\n")
    with pytest.raises(ConfigError, match="cannot read env file"):
        load_environment(environ={})


def test_loaded_token_is_registered_for_redaction() -> None:
    token = "tok_CONFIG_registered_77"
    load({"INTERCOM_ACCESS_TOKEN": token})
    assert redact(f"Bearer {token}.") == "Bearer ***."
