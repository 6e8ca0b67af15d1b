"""Profiles in config.toml, `ievents config`, and where the token came from."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import TOKEN, RunCli
from fake_intercom import FakeIntercom


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "xdg" / "ievents" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def token_file(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "work.token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


def no_env_token(tmp_path: Path) -> dict[str, str | None]:
    return {"INTERCOM_ACCESS_TOKEN": None, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}


def test_profile_supplies_token_and_url_and_check_names_the_source(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    secret = token_file(tmp_path)
    write_config(
        tmp_path,
        f'[profiles.work]\nbase_url = "{fake.url}"\ntoken_file = "{secret}"\n',
    )
    env = {**no_env_token(tmp_path), "INTERCOM_BASE_URL": None}

    result = run_cli("check", "--profile", "work", env=env)
    assert result.code == 0, result
    assert f"token:   ...{TOKEN[-4:]} from file {secret} (from profile work" in result.stdout
    assert result.stderr == ""  # 0600: no warning

    by_variable = run_cli("send", "x", "--user-id", "1", env={**env, "IEVENTS_PROFILE": "work"})
    assert by_variable.code == 0, by_variable
    assert len(fake.stored_events()) == 1


def test_default_profile_and_flags_and_variables_win(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    write_config(
        tmp_path,
        'default_profile = "eu"\n\n[profiles.eu]\nregion = "eu"\napi_version = "2.11"\n',
    )
    env = {**no_env_token(tmp_path), "INTERCOM_ACCESS_TOKEN": TOKEN, "INTERCOM_BASE_URL": None}

    shown = run_cli("config", "--json", env=env)
    assert shown.code == 0, shown
    settings = json.loads(shown.stdout)["settings"]
    assert settings["profile"]["value"] == "eu"
    assert settings["profile"]["source"].startswith("default_profile in ")
    assert settings["region"]["value"] == "eu" and "line 4" in settings["region"]["source"]
    assert settings["base_url"] == {"value": "https://api.eu.intercom.io", "source": "region eu"}
    assert settings["token"] == {
        "value": "..." + TOKEN[-4:],
        "source": "variable INTERCOM_ACCESS_TOKEN",
    }

    overridden = run_cli(
        "config", "--json", "--region", "au", env={**env, "INTERCOM_API_VERSION": "2.9"}
    )
    settings = json.loads(overridden.stdout)["settings"]
    assert settings["region"] == {"value": "au", "source": "--region"}
    assert settings["api_version"] == {"value": "2.9", "source": "variable INTERCOM_API_VERSION"}
    assert settings["timeout"] == {"value": 10.0, "source": "default"}


def test_profile_beats_dotenv_and_config_shows_which_dotenv(
    run_cli: RunCli, tmp_path: Path
) -> None:
    write_config(tmp_path, '[profiles.au]\nregion = "au"\n')
    work = tmp_path / "work"
    (work / ".env").write_text("INTERCOM_REGION=eu\nINTERCOM_ACCESS_TOKEN=" + TOKEN + "\n")
    (work / ".env").chmod(0o600)
    env = {**no_env_token(tmp_path), "INTERCOM_BASE_URL": None}

    plain = json.loads(run_cli("config", "--json", env=env).stdout)["settings"]
    assert plain["region"] == {"value": "eu", "source": f"INTERCOM_REGION in {work / '.env'}"}
    assert plain["token"]["source"] == f"INTERCOM_ACCESS_TOKEN in {work / '.env'}"
    with_profile = json.loads(run_cli("config", "--json", "--profile", "au", env=env).stdout)
    assert with_profile["settings"]["region"]["value"] == "au"

    human = run_cli("config", env=env)
    assert f"...{TOKEN[-4:]}" in human.stdout and "INTERCOM_ACCESS_TOKEN in" in human.stdout


def test_unknown_profile_or_key_is_78_naming_file_and_line(run_cli: RunCli, tmp_path: Path) -> None:
    path = write_config(tmp_path, 'default_profile = "prod"\n\n[profiles.eu]\nregion = "eu"\n')
    env = no_env_token(tmp_path)
    unknown = run_cli("check", env=env)
    assert unknown.code == 78, unknown
    assert f"unknown profile 'prod' (from default_profile in {path}) in {path}, line 1" in (
        unknown.stderr
    )
    assert "profiles there: eu" in unknown.stderr

    flag = run_cli("send", "x", "--user-id", "1", "--profile", "nope", env=env)
    assert flag.code == 78 and "unknown profile 'nope' (from --profile)" in flag.stderr

    write_config(tmp_path, '[profiles.eu]\nregion = "eu"\nregoin = "au"\n')
    typo = run_cli("config", env=env)
    assert typo.code == 78
    assert f"unknown key 'regoin' in profile 'eu' ({path}, line 3)" in typo.stderr

    write_config(tmp_path, '[profiles.eu]\nbase_url = "http://10.0.0.1"\nregion = "mars"\n')
    with_token = {**env, "INTERCOM_BASE_URL": None, "INTERCOM_ACCESS_TOKEN": TOKEN}
    bad_region = run_cli("config", "--profile", "eu", env=with_token)
    assert bad_region.code == 78
    assert f"'mars' (from profile eu ({path}, line 3))" in bad_region.stderr, bad_region
    # The region from a variable (beating the profile's 'mars'); the base URL from the profile.
    bad_url = run_cli("config", "--profile", "eu", env={**with_token, "INTERCOM_REGION": "eu"})
    assert bad_url.code == 78 and "plain http" in bad_url.stderr
    assert f"(from profile eu ({path}, line 2))" in bad_url.stderr, bad_url

    write_config(tmp_path, "[profiles.eu\n")
    broken = run_cli("config", "--json", env=env)
    assert broken.code == 78 and "not valid TOML" in broken.stderr and "line 1" in broken.stderr
    assert broken.json()["error"]["code"] == "config_error"  # --json: still one object

    missing = run_cli("check", "--profile", "eu", env={**env, "XDG_CONFIG_HOME": "/nonexistent"})
    assert missing.code == 78 and "no config file /nonexistent/ievents/config.toml" in (
        missing.stderr
    )


def test_no_token_error_names_the_folder_searched(run_cli: RunCli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    result = run_cli("check", env=no_env_token(tmp_path), cwd=home)
    assert result.code == 78
    assert f"no access token (no .env in {home})" in result.stderr


def test_token_readable_by_others_warns_once(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    secret = token_file(tmp_path, 0o644)
    result = run_cli("send", "x", "--user-id", "1", "--token-file", str(secret), "-q")
    assert result.code == 0, result
    assert result.stderr.count("readable by other users") == 1
    assert f"chmod 600 {secret}" in result.stderr

    work = tmp_path / "work"
    (work / ".env").write_text(f"INTERCOM_ACCESS_TOKEN={TOKEN}\n")
    (work / ".env").chmod(0o644)
    dotenv = run_cli("check", env=no_env_token(tmp_path))
    assert dotenv.code == 0, dotenv
    message = f"{work / '.env'} holds the access token and is readable by other users"
    assert message in dotenv.stderr


def test_rejected_token_hint_names_its_real_source(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.token"
    wrong.write_text("tok_WRONG_0000000000\n")
    wrong.chmod(0o600)
    result = run_cli("check", "--token-file", str(wrong))
    assert result.code == 77, result
    assert f"from file {wrong} (from --token-file)" in result.stderr
    assert "INTERCOM_ACCESS_TOKEN" not in result.stderr.split("hint:")[1]


def test_a_shell_token_over_dotenv_is_said(run_cli: RunCli, tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / ".env").write_text("INTERCOM_ACCESS_TOKEN=tok_from_dotenv_0000\n")
    (work / ".env").chmod(0o600)
    checked = run_cli("check", env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert checked.code == 0, checked
    assert (
        "from variable INTERCOM_ACCESS_TOKEN, overriding INTERCOM_ACCESS_TOKEN in "
        f"{work / '.env'}" in checked.stdout
    )
