"""The operations recipes of docs/ work when copied: cron, systemd, Kubernetes.

The set-up steps of the cron and metrics pages run as written, under a temporary prefix for
``/opt``, ``/etc`` and ``/var`` (so every folder a crontab line needs is made by a step
the page shows), with the user ``app`` replaced by this test's. Two steps are swapped for
cheaper equivalents that end in the same state: ``python3 -m venv`` makes a venv without
pip that sees this test venv's packages (a ``.pth`` file), and its ``pip install
'/path/to/clone[metrics]'`` installs this checkout without dependencies or an index.
Each crontab line then runs as cron runs it: ``env -i`` with cron's variables (HOME,
PATH=/usr/bin:/bin, SHELL, LOGNAME), ``/bin/sh -c``, started in HOME, against the fake
server. systemd units are checked with ``systemd-analyze verify``; the Kubernetes
manifests against the Kubernetes schema (kubernetes-validate, which .ci/run installs).
"""

from __future__ import annotations

import getpass
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TOKEN
from doc_examples import blocks
from fake_intercom import FakeIntercom

from intercom_events_cli.cli import flush as flush_cli
from intercom_events_cli.cli import reflow_help

DOCS = REPO_ROOT / "docs"
CRON = DOCS / "operations" / "cron.md"
METRICS = DOCS / "operations" / "metrics.md"
SYSTEMD_PAGES = (DOCS / "operations" / "systemd.md", DOCS / "operations" / "relay.md")
KUBERNETES = DOCS / "operations" / "kubernetes.md"
PREFIXED = ("/opt/", "/etc/", "/var/")


def texts(page: Path, lang: str) -> list[str]:
    return [block.text for block in blocks(page, (lang,))]


def cron_lines() -> list[str]:
    lines = []
    for page in (CRON, METRICS):
        for block in texts(page, "crontab"):
            lines += [line for line in block.splitlines() if line and not line.startswith("#")]
    return lines


def command_of(line: str) -> str:
    return line.split(None, 5)[5]  # the five schedule fields, then the command


@dataclass
class Machine:
    """A server set up as the cron page says, under ``root`` instead of ``/``."""

    root: Path
    home: Path

    def localise(self, text: str) -> str:
        for folder in PREFIXED:
            text = re.sub(rf"(?<![\w./]){folder}", f"{self.root}{folder}", text)
        return text

    @property
    def cron_env(self) -> dict[str, str]:
        return {"HOME": str(self.home), "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"} | {
            "LOGNAME": getpass.getuser()
        }

    def cron(self, line: str) -> subprocess.CompletedProcess[str]:
        """Run a crontab line's command as cron does."""
        env = [f"{key}={value}" for key, value in self.cron_env.items()]
        return subprocess.run(
            ["env", "-i", *env, "/bin/sh", "-c", self.localise(command_of(line))],
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=120,
        )


def set_up_step(step: str, machine: Machine) -> str:
    """One set-up line of the docs, localised (and made cheap: see the module docstring)."""
    me = shlex.quote(getpass.getuser())
    step = machine.localise(step).replace("-o app ", f"-o {me} ")
    words = shlex.split(step)
    if words[:3] == ["python3", "-m", "venv"]:
        venv = Path(words[3])
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        site = venv / "lib" / version / "site-packages"
        (site / "test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        return "true"
    if len(words) > 2 and words[0].endswith("/bin/pip") and words[1] == "install":
        target = words[2].replace("/path/to/clone", str(REPO_ROOT))
        python = str(Path(words[0]).parent / "python")
        pip = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet"]
        pip += ["--no-deps", "--no-index", "--no-build-isolation", target]
        return shlex.join(pip)
    return step


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    """The cron and metrics pages' set-up, run once for this module's tests."""
    base = tmp_path_factory.mktemp("recipes")
    machine = Machine(root=base / "root", home=base / "home")
    machine.home.mkdir()
    steps: list[str] = []
    for page in (CRON, METRICS):
        for block in blocks(page, ("sh",)):
            if "install -d" in block.text or "-m venv" in block.text:
                steps += [line for line in block.text.splitlines() if line.strip()]
    assert any("-m venv" in step for step in steps), "the cron page shows no venv step"
    for step in steps:
        done = subprocess.run(
            ["/bin/sh", "-c", set_up_step(step, machine)], capture_output=True, text=True
        )
        assert done.returncode == 0, (step, done.stderr)
    yield machine
    shutil.rmtree(base, ignore_errors=True)


def configure(machine: Machine, fake: FakeIntercom) -> Path:
    """Fill in the env file as the cron page says, and the profile of the profiles page."""
    (dotenv,) = texts(CRON, "dotenv")
    env_file = machine.root / "etc" / "ievents" / "app.env"
    content = machine.localise(dotenv).replace("<your token>", TOKEN)
    env_file.write_text(content + f"INTERCOM_BASE_URL={fake.url}\n")
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    outbox = re.search(r"^IEVENTS_OUTBOX=(.+)$", content, flags=re.M)
    assert outbox is not None
    config = machine.home / ".config" / "ievents"
    config.mkdir(parents=True, exist_ok=True)
    token_file = config / "eu.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    (config / "config.toml").write_text(
        f'[profiles.eu]\nbase_url = "{fake.url}"\ntoken_file = "{token_file}"\n'
        f'outbox = "{outbox.group(1)}"\n'
    )
    return env_file


def test_every_cron_line_works_under_crons_environment(
    machine: Machine, fake: FakeIntercom
) -> None:
    lines = cron_lines()
    assert len(lines) >= 5
    configure(machine, fake)
    log = machine.root / "var" / "log" / "ievents" / "cron.log"
    for number, line in enumerate(lines):
        command = command_of(line)
        assert command.startswith("/opt/ievents/.venv/bin/ievents "), f"not absolute: {line}"
        assert ("--env-file /etc/ievents/app.env" in command) or ("--profile " in command), line
        assert "/var/log/ievents/cron.log" in command, f"no log: {line}"
        if " flush " in command:
            # A contact of its own each time: two captures of one contact and name in the
            # same second are the same event (one key), and the second is not sent again.
            queue = f"/opt/ievents/.venv/bin/ievents send queued --user-id 7{number} --queue -q"
            queued = machine.cron(f"* * * * * {queue} --env-file /etc/ievents/app.env")
            assert queued.returncode == 0, queued.stderr
        before = len(fake.stored_events())
        ran = machine.cron(line)
        logged = log.read_text() if log.exists() else ""
        assert ran.returncode == 0, (line, ran.stderr, logged)
        if " send " in command or " flush " in command:
            assert len(fake.stored_events()) == before + 1, (line, logged)
    assert TOKEN not in log.read_text()


def test_the_prometheus_line_reads_the_same_outbox_and_leaves_no_temporary_file(
    machine: Machine, fake: FakeIntercom
) -> None:
    (line,) = [line for line in cron_lines() if "--format prometheus" in line]
    configure(machine, fake)
    send = "/opt/ievents/.venv/bin/ievents send nightly-sync --user-id 42 -q"
    sent = machine.cron(f"* * * * * {send} --queue --env-file /etc/ievents/app.env")
    assert sent.returncode == 0, sent.stderr
    textfiles = machine.root / "var" / "lib" / "node_exporter"
    ran = machine.cron(line)
    assert ran.returncode == 0, ran.stderr
    metrics = (textfiles / "ievents.prom").read_text()
    pending = re.search(r'^ievents_outbox_events\{state="pending"\} (\S+)$', metrics, re.M)
    assert pending is not None and float(pending.group(1)) >= 1, metrics
    assert [p.name for p in textfiles.iterdir()] == ["ievents.prom"]

    # A failing run (an outbox folder others may write to is refused): its error goes to
    # the log, its temporary file goes away.
    folder = machine.root / "var" / "lib" / "ievents"
    folder.chmod(0o777)
    try:
        failed = machine.cron(line)
    finally:
        folder.chmod(0o750)
    assert failed.returncode == 0, failed.stderr  # the rm -f ran
    assert [p.name for p in textfiles.iterdir()] == ["ievents.prom"]
    assert "ievents: error:" in (machine.root / "var" / "log" / "ievents" / "cron.log").read_text()


def units() -> dict[str, str]:
    """The systemd units of the docs, by file name (each block names its files)."""
    found: dict[str, str] = {}
    for page in SYSTEMD_PAGES:
        for block in texts(page, "ini") + texts(page, "systemd"):
            parts = re.split(r"^# /etc/systemd/system/(\S+)\n", block, flags=re.M)
            for name, body in zip(parts[1::2], parts[2::2], strict=True):
                found[name] = body
    return found


def test_the_units_are_named_and_the_timer_has_its_service() -> None:
    names = set(units())
    assert {"ievents-flush.service", "ievents-flush.timer", "ievents-relay.service"} <= names


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_units_pass_systemd_analyze_verify(machine: Machine, tmp_path: Path) -> None:
    folder = tmp_path / "units"
    folder.mkdir()
    for name, body in units().items():
        (folder / name).write_text(machine.localise(body))
    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(map(str, folder.iterdir()))],
        capture_output=True,
        text=True,
        cwd=folder,
    )
    # Unknown keys and missing programs are only warnings to systemd: none is allowed.
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr


def test_systemd_execstart_works_under_a_bare_environment(
    machine: Machine, fake: FakeIntercom
) -> None:
    configure(machine, fake)
    unit = units()["ievents-flush.service"]
    exec_start = re.search(r"^ExecStart=(.+)$", unit, flags=re.M)
    assert exec_start is not None
    queue = "/opt/ievents/.venv/bin/ievents send systemd --user-id 9 --queue -q"
    assert machine.cron(f"* * * * * {queue} --env-file /etc/ievents/app.env").returncode == 0
    argv = shlex.split(machine.localise(exec_start.group(1)))
    ran = subprocess.run(argv, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert "systemd" in [e["event_name"] for e in fake.stored_events()]


def test_kubernetes_manifests_match_the_schema() -> None:
    validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate (.ci/run installs it)"
    )
    yaml = pytest.importorskip("yaml")
    manifests = [doc for block in texts(KUBERNETES, "yaml") for doc in yaml.safe_load_all(block)]
    assert {m["kind"] for m in manifests} == {"Deployment", "CronJob", "NetworkPolicy"}
    for manifest in manifests:
        validate.validate(manifest, validate.latest_version(), strict=True)


def test_flush_help_gives_the_docs_cron_lines_command() -> None:
    """The help's example is the cron line's command; the whole crontab line (schedule,
    absolute path, log) is in the docs, as it would not fit 80 columns on one line."""
    (flush_line,) = [line for line in cron_lines() if " flush " in line and "* * * * *" in line]
    command = re.search(r"/(ievents flush [^>]*?)\s*>>", flush_line)
    assert command is not None, flush_line
    assert flush_cli.flush.__doc__ is not None
    doc = reflow_help(flush_cli.flush.__doc__)
    assert f"\n  {command.group(1)}\n" in doc, doc
