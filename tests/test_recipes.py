"""README's cron and systemd recipes work when copied.

Each crontab line is run as cron runs it: ``sh -c`` with cron's minimal environment
(HOME, PATH=/usr/bin:/bin, SHELL=/bin/sh), started in $HOME, against the fake server,
with only the example paths replaced by this test's (the installed ievents, an env file,
a log folder).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT, TOKEN
from fake_intercom import FakeIntercom

from intercom_events_cli.cli import flush as flush_cli
from intercom_events_cli.cli import reflow_help

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
IEVENTS = "/opt/ievents/.venv/bin/ievents"
ENV_FILE = "/etc/ievents/app.env"
LOG_DIR = "/var/log/ievents/"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", README, flags=re.S)


def cron_lines() -> list[str]:
    lines = []
    for block in blocks("crontab"):
        lines += [line for line in block.splitlines() if line and not line.startswith("#")]
    return lines


def command_of(line: str) -> str:
    return line.split(None, 5)[5]  # the five schedule fields, then the command


def setup(tmp_path: Path, fake: FakeIntercom) -> tuple[dict[str, str], dict[str, str]]:
    home = tmp_path / "cronhome"
    (home / ".config" / "ievents").mkdir(parents=True)
    logs = tmp_path / "log"
    logs.mkdir()
    outbox = tmp_path / "cron-outbox.sqlite3"
    env_file = tmp_path / "app.env"
    env_file.write_text(
        f"INTERCOM_ACCESS_TOKEN={TOKEN}\nINTERCOM_BASE_URL={fake.url}\nIEVENTS_OUTBOX={outbox}\n"
    )
    env_file.chmod(0o600)
    token_file = home / ".config" / "ievents" / "eu.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    (home / ".config" / "ievents" / "config.toml").write_text(
        f'[profiles.eu]\nbase_url = "{fake.url}"\ntoken_file = "{token_file}"\n'
        f'outbox = "{outbox}"\n'
    )
    installed = Path(sys.executable).parent / "ievents"
    assert installed.exists(), "the test venv has no ievents script: pip install -e ."
    replace = {IEVENTS: str(installed), ENV_FILE: str(env_file), LOG_DIR: f"{logs}/"}
    cron_env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "LOGNAME": "app"}
    return replace, cron_env


def localise(command: str, replace: dict[str, str]) -> str:
    for example, real in replace.items():
        command = command.replace(example, real)
    return command


def queue_one(replace: dict[str, str], cron_env: dict[str, str], user_id: str) -> None:
    queued = subprocess.run(
        [replace[IEVENTS], "send", "queued", "--user-id", user_id, "--queue", "-q"]
        + ["--env-file", replace[ENV_FILE]],
        env=cron_env,
        cwd=cron_env["HOME"],
        capture_output=True,
        text=True,
    )
    assert queued.returncode == 0, queued.stderr


def test_every_cron_line_works_under_crons_environment(tmp_path: Path, fake: FakeIntercom) -> None:
    lines = cron_lines()
    assert len(lines) >= 4
    replace, cron_env = setup(tmp_path, fake)
    for number, line in enumerate(lines):
        command = command_of(line)
        assert command.startswith(IEVENTS + " "), f"not an absolute path: {line}"
        assert ("--env-file " + ENV_FILE in command) or ("--profile " in command), line
        assert ">> " + LOG_DIR in command and "2>&1" in command, f"no log: {line}"
        if " flush " in command:
            queue_one(replace, cron_env, f"waiting-{number}")
        before = len(fake.stored_events())
        ran = subprocess.run(
            ["sh", "-c", localise(command, replace)],
            env=cron_env,
            cwd=cron_env["HOME"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        log = (tmp_path / "log" / "cron.log").read_text() if (tmp_path / "log").exists() else ""
        assert ran.returncode == 0, (line, ran.stderr, log)
        if " send " in command or " flush " in command:
            assert len(fake.stored_events()) == before + 1, (line, log)
    assert TOKEN not in (tmp_path / "log" / "cron.log").read_text()


def test_systemd_execstart_works_under_a_bare_environment(
    tmp_path: Path, fake: FakeIntercom
) -> None:
    (unit,) = [block for block in blocks("ini") if "ExecStart=" in block]
    exec_start = re.search(r"^ExecStart=(.+)$", unit, flags=re.M)
    assert exec_start is not None
    replace, cron_env = setup(tmp_path, fake)
    queue_one(replace, cron_env, "systemd")
    argv = shlex.split(localise(exec_start.group(1), replace))
    assert argv[0] == replace[IEVENTS]
    ran = subprocess.run(argv, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert [e["user_id"] for e in fake.stored_events()] == ["systemd"]


def test_flush_help_gives_the_readme_cron_lines_command() -> None:
    """The help's example is the cron line's command; the whole crontab line (schedule,
    absolute path, log) is in the docs, as it would not fit 80 columns on one line."""
    (flush_line,) = [line for line in cron_lines() if " flush " in line and "* * * * *" in line]
    command = re.search(r"/(ievents flush [^>]*?)\s*>>", flush_line)
    assert command is not None, flush_line
    assert flush_cli.flush.__doc__ is not None
    doc = reflow_help(flush_cli.flush.__doc__)
    assert f"\n  {command.group(1)}\n" in doc, doc
