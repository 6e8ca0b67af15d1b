"""What the user names (a flag, --env-file, --profile) is never silently overridden.

Precedence: flag > environment variable > profile > .env; an explicitly named source that
loses says so (a warning naming both), and `config` / `outbox status` say which outbox is
in use and which source chose it.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import TOKEN, RunCli
from fake_intercom import FakeIntercom

OTHER_TOKEN = "tok_profile_token_0000000000000000"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "xdg" / "ievents" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def secret_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_region_flag_beats_a_base_url_from_dotenv_and_says_so(
    run_cli: RunCli, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    secret_file(work / ".env", "INTERCOM_BASE_URL=http://127.0.0.1:9\n")
    env = {"INTERCOM_BASE_URL": None, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}

    sent = run_cli("send", "x", "--user-id", "1", "--region", "eu", "--dry-run", "--json", env=env)
    assert sent.code == 0, sent
    assert sent.json()["url"] == "https://api.eu.intercom.io/events"
    assert (
        f"warning: --region eu overrides INTERCOM_BASE_URL in {work / '.env'}: "
        "requests go to https://api.eu.intercom.io" in sent.stderr
    )

    shown = run_cli("config", "--json", "--region", "eu", env=env).json()["settings"]
    assert shown["region"] == {"value": "eu", "source": "--region"}
    assert shown["base_url"] == {
        "value": "https://api.eu.intercom.io",
        "source": f"--region eu, overriding INTERCOM_BASE_URL in {work / '.env'}",
    }

    # Without the flag, .env's base URL is used, as before, and nothing is said.
    plain = run_cli("send", "x", "--user-id", "1", "--dry-run", "--json", env=env)
    assert plain.json()["url"] == "http://127.0.0.1:9/events"
    assert "warning" not in plain.stderr


def test_explicit_env_file_token_beats_the_default_profiles_token_file(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    profile_token = secret_file(tmp_path / "profile.token", OTHER_TOKEN + "\n")
    write_config(
        tmp_path,
        f'default_profile = "work"\n\n[profiles.work]\ntoken_file = "{profile_token}"\n',
    )
    app_env = secret_file(tmp_path / "app.env", f"INTERCOM_ACCESS_TOKEN={TOKEN}\n")
    env = {"INTERCOM_ACCESS_TOKEN": None, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}

    sent = run_cli("send", "x", "--user-id", "1", "--env-file", str(app_env), env=env)
    assert sent.code == 0, sent
    assert fake.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"

    token = run_cli("config", "--json", "--env-file", str(app_env), env=env).json()["settings"][
        "token"
    ]
    assert token["value"] == "..." + TOKEN[-4:]
    assert token["source"].startswith(f"INTERCOM_ACCESS_TOKEN in {app_env}, overriding profile")

    # Without --env-file the default profile's token is the one used (no .env here).
    implicit = run_cli("config", "--json", env=env).json()["settings"]["token"]
    assert implicit["value"] == "..." + OTHER_TOKEN[-4:]


def test_explicit_profile_still_beats_env_file_but_says_so(run_cli: RunCli, tmp_path: Path) -> None:
    path = write_config(tmp_path, '[profiles.au]\nregion = "au"\n')
    app_env = secret_file(tmp_path / "app.env", "INTERCOM_REGION=eu\n")
    env = {"INTERCOM_BASE_URL": None, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}

    result = run_cli(
        "send", "x", "--user-id", "1", "--dry-run", "--json",
        "--profile", "au", "--env-file", str(app_env), env=env,
    )  # fmt: skip
    assert result.code == 0, result
    assert result.json()["url"] == "https://api.au.intercom.io/events"
    assert (
        f"warning: profile au ({path}, line 2) overrides INTERCOM_REGION in {app_env}"
        in result.stderr
    )


def test_a_set_variable_hiding_an_env_file_value_is_said(run_cli: RunCli, tmp_path: Path) -> None:
    app_env = secret_file(tmp_path / "app.env", "INTERCOM_REGION=eu\n")
    env = {"INTERCOM_BASE_URL": None, "INTERCOM_REGION": "au"}
    result = run_cli(
        "send", "x", "--user-id", "1", "--dry-run", "--json", "--env-file", str(app_env), env=env
    )
    assert result.json()["url"] == "https://api.au.intercom.io/events"
    assert f"variable INTERCOM_REGION overrides INTERCOM_REGION in {app_env}" in result.stderr

    same = secret_file(tmp_path / "same.env", "INTERCOM_REGION=au\n")
    agreeing = run_cli(
        "send", "x", "--user-id", "1", "--dry-run", "--json", "--env-file", str(same), env=env
    )
    assert agreeing.code == 0 and "warning" not in agreeing.stderr  # no conflict, no noise


def test_config_and_outbox_status_say_which_outbox_and_why(run_cli: RunCli, tmp_path: Path) -> None:
    profile_outbox = tmp_path / "eu.sqlite3"
    path = write_config(
        tmp_path,
        f'default_profile = "eu"\n\n[profiles.eu]\nregion = "eu"\noutbox = "{profile_outbox}"\n',
    )
    env = {"IEVENTS_OUTBOX": None, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    why = f"profile eu ({path}, line 5; selected by default_profile)"

    shown = run_cli("config", "--json", env=env).json()["settings"]
    assert shown["outbox"] == {"value": str(profile_outbox), "source": why}
    human = run_cli("config", env=env)
    assert f"{profile_outbox}  ({why})" in human.stdout

    queued = run_cli("send", "x", "--user-id", "1", "--queue", env=env)
    assert queued.code == 0, queued
    status = run_cli("outbox", "status", env=env)
    assert status.code == 0, status
    assert f"outbox        {profile_outbox} (SQLite, schema version" in status.stdout
    assert f"chosen by     {why}" in status.stdout
    as_json = run_cli("outbox", "status", "--json", env=env).json()
    assert as_json["path"] == str(profile_outbox) and as_json["source"] == why

    flagged = run_cli("outbox", "status", "--outbox", str(tmp_path / "x.sqlite3"), env=env)
    assert "chosen by     --outbox" in flagged.stdout
    default = run_cli("outbox", "status", env={"IEVENTS_OUTBOX": None})
    assert "chosen by     default: no --outbox, IEVENTS_OUTBOX or profile outbox" in (
        default.stdout
    )


def test_config_says_when_no_profile_is_selected(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("config", env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert result.code == 0, result
    assert "profile      none  (no --profile, IEVENTS_PROFILE or default_profile)" in (
        result.stdout
    )
    assert "(none)" not in result.stdout
    assert json.loads(run_cli("config", "--json").stdout)["settings"]["profile"]["value"] is None


def test_config_says_where_no_token_was_found(run_cli: RunCli, tmp_path: Path) -> None:
    env = {"INTERCOM_ACCESS_TOKEN": None, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    token = run_cli("config", "--json", env=env).json()["settings"]["token"]
    assert token == {
        "value": None,
        "source": f"no variable, token file or profile sets it; no .env in {tmp_path / 'work'}",
    }
