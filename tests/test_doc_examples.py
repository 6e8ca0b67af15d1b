"""Every shell example of README.md and docs/ runs as written, and shows what it prints.

Each page runs in a sandbox of its own, as a reader following it would: a temporary HOME
that is also the working directory (shown as ``/home/ada``), a ``.env`` (and the
``.env.example`` it is copied from) that points at the fake Intercom with a token of its
own (the placeholders filled in; the base URL is shown as ``https://api.intercom.io``),
and the sample files the examples name. Plain ``ievents ...`` commands run in this process
(``run_in_process``); a command that needs a shell (a pipe, ``&&``, a variable) runs under
``/bin/sh -c`` with the installed ``ievents`` on PATH. The blocks of a page share the
sandbox, in order. The conventions of the blocks: ``tests/doc_examples.py``.

``IEVENTS_DOCS_REGENERATE=1 pytest tests/test_doc_examples.py`` writes the real output into
the console blocks instead of failing on a difference.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_in_process
from doc_examples import (
    REGENERATE_ENV,
    REPO_ROOT,
    SHELL_LANGS,
    Block,
    ConsoleStep,
    blocks,
    console_steps,
    console_text,
    expected_exit,
    logical_commands,
    normalise,
    pages,
    plain_ievents,
    regenerated_step,
    rewrite_blocks,
)
from fake_intercom import FakeIntercom, Reply
from helpers import ndjson

# The token of the sandbox: it ends like the one the examples show ("token ending …f3a2").
DOC_TOKEN = "tok_docs_example_7c1d0e9af3a2"
EU_TOKEN = "tok_docs_eu_example_5b8e2f3a2"
SHOWN_HOME = "/home/ada"
SHOWN_BASE_URL = "https://api.intercom.io"
RECIPE_PAGES = {"docs/operations/cron.md", "docs/operations/metrics.md"}

NDJSON = [
    {"event_name": "signed-up", "user_id": "314159", "created_at": "2024-01-31T12:00:00Z"},
    {"event_name": "invited-friend", "user_id": "314159", "created_at": 1706702400},
    {"event_name": "ordered", "email": "ada@example.org", "created_at": 1706702460},
]
# Three records with the typo the rejects page fixes ($EDITOR below fixes it).
WITH_TYPOS = NDJSON + [
    {"event_name": "signed-up", "usr_id": str(n), "created_at": 1706702500 + n} for n in (1, 2, 3)
]
CSV = (
    "event_name,user_id,email,created_at,metadata.plan\n"
    "signed-up,271828,,2024-01-31T12:00:00Z,pro\n"
    "invited-friend,,ada@example.org,2024-02-01T08:00:00Z,basic\n"
)


def sample_files(home: Path, fake: FakeIntercom) -> None:
    """The files the examples name, and the configuration with the placeholders filled."""
    example = (REPO_ROOT / ".env.example").read_text(encoding="utf-8")
    filled = example.replace("INTERCOM_ACCESS_TOKEN=\n", f"INTERCOM_ACCESS_TOKEN={DOC_TOKEN}\n")
    assert filled != example, ".env.example has no INTERCOM_ACCESS_TOKEN= line to fill in"
    filled += f"INTERCOM_BASE_URL={fake.url}\n"
    (home / ".env.example").write_text(filled)
    (home / ".env").write_text(filled)
    (home / ".env").chmod(0o600)
    (home / "eu.env").write_text(f"INTERCOM_ACCESS_TOKEN={EU_TOKEN}\nINTERCOM_REGION=eu\n")
    (home / "eu.env").chmod(0o600)
    for name, text in {
        "events.ndjson": ndjson(WITH_TYPOS),
        "signups.ndjson": ndjson(NDJSON[:1]),
        "events.txt": ndjson(NDJSON),
    }.items():
        (home / name).write_text(text)
    for name, text in {
        "events.ndjson.gz": ndjson(NDJSON),
        "events.jsonl.gz": ndjson(NDJSON),
        "export.csv.gz": CSV,
        "export-2024-01.csv.gz": CSV,
    }.items():
        (home / name).write_bytes(gzip.compress(text.encode()))


class Sandbox:
    """A reader's machine for one page: HOME, the fake Intercom, and how to run commands."""

    def __init__(self, home: Path, fake: FakeIntercom) -> None:
        self.home = home
        self.fake = fake
        bindir = str(Path(sys.executable).parent)
        self.env = {
            "HOME": str(home),
            "PATH": f"{bindir}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            "USER_ID": "42",
            # The rejects page's "$EDITOR rejects.ndjson": the fix a reader would make.
            "EDITOR": "sed -i s/usr_id/user_id/",
        }

    def run(self, command: str) -> tuple[int, str]:
        """Run one command as written: in this process when it is a plain ievents command."""
        args = plain_ievents(command)
        if args is not None:
            code, out, err = run_in_process(tuple(args), b"", self.env, self.home, 120)
        else:
            done = subprocess.run(
                ["/bin/sh", "-c", command],
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=120,
            )
            code, out, err = done.returncode, done.stdout.decode("utf-8", "replace"), ""
        text = out + err
        assert DOC_TOKEN not in text and EU_TOKEN not in text, f"the token leaked: {command}"
        return code, self.shown(text)

    def shown(self, text: str) -> str:
        """Real output as the docs show it: the sandbox's paths and URL as a reader's."""
        return text.replace(str(self.home), SHOWN_HOME).replace(self.fake.url, SHOWN_BASE_URL)


def fake_answers(fake: FakeIntercom, status: int) -> None:
    reply = Reply(status=status, headers={"Retry-After": "0"}, path="/events", method="POST")
    fake.script_repeat(reply, 200)


def forget_script(fake: FakeIntercom) -> None:
    """The scripted replies a block did not use; the events it stored stay."""
    with fake._lock:
        fake._script.clear()


def keys_missing(shown: object, real: object, path: str = "") -> list[str]:
    """The fields a shown JSON example has that the real output lacks (values may differ)."""
    if isinstance(shown, dict) and isinstance(real, dict):
        missing = []
        for key, value in shown.items():
            if key not in real:
                missing.append(f"{path}.{key}")
            else:
                missing += keys_missing(value, real[key], f"{path}.{key}")
        return missing
    if isinstance(shown, list) and isinstance(real, list) and shown and real:
        return keys_missing(shown[0], real[0], f"{path}[0]")
    return []


def check_json(box: Sandbox, block: Block) -> list[str]:
    """A ``json`` block shown as a command's output: its fields must all be real."""
    command = block.directives["json-of"]
    code, out = box.run(command)
    if code != expected_exit(command):
        return [f"{block.where}: `{command}` exited {code}:\n{out}"]
    shown = json.loads(block.text)
    real = json.loads(out.splitlines()[0])
    missing = keys_missing(shown, real)
    return [f"{block.where}: `{command}` prints no {m}:\n{out}" for m in missing]


def run_block(box: Sandbox, block: Block) -> tuple[list[str], str | None]:
    """Run one block; the problems found, and its regenerated text for a console block."""
    problems: list[str] = []
    for setup in filter(None, block.directives.get("setup", "").split(";")):
        code, out = box.run(setup.strip())
        assert code == 0, f"{block.where}: setup {setup!r} exited {code}: {out}"
    if "fake" in block.directives:
        fake_answers(box.fake, int(block.directives["fake"]))
    try:
        if block.lang == "json":
            return check_json(box, block), None
        if block.lang == "console":
            steps = console_steps(block.text)
            assert steps, f"{block.where}: a console block without a '$ ' command"
            real: list[ConsoleStep] = []
            changed = False
            for step in steps:
                code, out = box.run(step.command)
                if code != expected_exit(step.command):
                    problems.append(f"{block.where}: `{step.command}` exited {code}:\n{out}")
                new = regenerated_step(step, out)
                if new is not None:
                    problems.append(
                        f"{block.where}: `{step.command}` shows:\n{step.shown}but prints:\n{out}"
                    )
                    changed = True
                real.append(new or step)
            # Only a block whose masked output differs is rewritten (its other steps as shown).
            return problems, console_text(real) if changed else None
        for command in logical_commands(block.text):
            code, out = box.run(command)
            if code != expected_exit(command):
                problems.append(f"{block.where}: `{command}` exited {code}:\n{out}")
        return problems, None
    finally:
        if "fake" in block.directives:
            forget_script(box.fake)


def runnable_pages() -> Iterator[Path]:
    for page in pages():
        runs = [b for b in blocks(page, (*SHELL_LANGS, "json")) if "not-run" not in b.directives]
        if any(
            b.lang != "crontab" and (b.lang != "json" or "json-of" in b.directives) for b in runs
        ):
            yield page


def test_every_example_runs_or_says_why_not() -> None:
    """Each shell block is run here, by the recipe tests (crontab), or marked with why not."""
    for page in pages():
        for block in blocks(page):
            name = str(page.relative_to(REPO_ROOT))
            if block.lang == "crontab":
                assert name in RECIPE_PAGES, f"{block.where}: tests/test_recipes.py runs no {name}"
            reason = block.directives.get("not-run")
            assert reason is None or len(reason) > 10, f"{block.where}: say why it is not run"
    all_langs = {b.lang for page in pages() for b in blocks(page, langs=("sh", "console"))}
    assert set(SHELL_LANGS) >= all_langs


def run_page(page: Path, home: Path, regenerate: bool) -> list[str]:
    """Run the blocks of a page in a sandbox at ``home``: the problems found. With
    ``regenerate``, the console blocks whose output changed are rewritten in the page."""
    with FakeIntercom(expected_token=DOC_TOKEN) as fake:
        sample_files(home, fake)
        box = Sandbox(home, fake)
        problems: list[str] = []
        updates: list[tuple[Block, str]] = []
        for block in blocks(page, (*SHELL_LANGS, "json")):
            if "not-run" in block.directives or block.lang == "crontab":
                continue
            if block.lang == "json" and "json-of" not in block.directives:
                continue
            found, regenerated = run_block(box, block)
            problems += found
            if regenerated is not None:
                updates.append((block, regenerated))
    if regenerate and updates:
        text = page.read_text(encoding="utf-8")
        page.write_text(rewrite_blocks(text, updates), encoding="utf-8")
        problems = [p for p in problems if " shows:\n" not in p]
    return problems


@pytest.mark.parametrize(
    "page", list(runnable_pages()), ids=lambda page: str(page.relative_to(REPO_ROOT))
)
def test_examples_of_the_page_run_as_written(page: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    problems = run_page(page, home, regenerate=os.environ.get(REGENERATE_ENV) == "1")
    shutil.rmtree(home, ignore_errors=True)
    assert not problems, (
        "\n\n".join(problems)
        + f"\n\n(output changed on purpose? {REGENERATE_ENV}=1 pytest tests/test_doc_examples.py)"
    )


# A page whose output differs from the real one only in times and durations, and one step
# that shows a wrong count.
STALE_TIMES = """# A page

```console
$ ievents send signed-up --user-id 42 --queue
queued signed-up for user_id 42 at 2001-02-03T04:05:06Z (outbox id 1); ievents flush delivers it
$ ievents flush
flush: 1 delivered in 9.9 s; the outbox holds 0 pending, 0 dead
```

Text between the blocks.

- In a list:

  ```console
  $ ievents send upgraded --user-id 42 --queue
  queued upgraded for user_id 42 at 2001-02-03T04:05:07Z (outbox id 2); ievents flush delivers it
  $ ievents outbox list --pending
  9 events, all made up
  ```
"""


def test_regenerating_rewrites_only_the_steps_whose_masked_output_changed(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    page = tmp_path / "page.md"
    page.write_text(STALE_TIMES, encoding="utf-8")
    assert run_page(page, home, regenerate=True) == []
    after = page.read_text(encoding="utf-8")
    # The times and the duration of the unchanged steps stay as they were written...
    assert after.count("2001-02-03T04:05:0") == 2 and "in 9.9 s" in after
    # ...and the step whose output changed shows the real output, indented in its list item.
    assert "9 events, all made up" not in after
    assert "\n  2\tpending\tupgraded\tuser_id 42\t" in after
    # Regenerating again changes nothing, not even a time.
    shutil.rmtree(home)
    home.mkdir()
    assert run_page(page, home, regenerate=True) == []
    assert page.read_text(encoding="utf-8") == after


def test_timings_fast_or_slow_compare_equal() -> None:
    fast = "batch --queue: 1 stored; ievents flush delivers them (under 0.1 s)"
    slow = "batch --queue: 1 stored; ievents flush delivers them (2.5 s, 400 records/s)"
    assert normalise(fast) == normalise(slow)
    assert normalise("1 stored (0.0 s)") != normalise("2 stored (0.0 s)")


def test_regenerating_unchanged_output_leaves_the_page_untouched(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    page = tmp_path / "page.md"
    unchanged = STALE_TIMES.split("Text between")[0]
    page.write_text(unchanged, encoding="utf-8")
    written = page.stat().st_mtime_ns
    assert run_page(page, home, regenerate=True) == []
    assert page.read_text(encoding="utf-8") == unchanged
    assert page.stat().st_mtime_ns == written  # not even rewritten with the same text


def test_the_readme_is_short_and_its_links_lead_somewhere() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [target for target in targets if "://" not in target]
    assert any(target.startswith("docs/") for target in local)
    for target in local:
        assert (REPO_ROOT / target).exists(), f"README.md links to a missing {target}"
    pages_in_docs = {
        p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "docs").rglob("*.md")
    }
    missing = pages_in_docs - set(local)
    assert not missing, f"pages the README's map leaves out: {sorted(missing)}"
