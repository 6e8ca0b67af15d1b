"""The shell examples of README.md and docs/: found, run, compared, regenerated.

A fenced block whose language is one of :data:`SHELL_LANGS` is an example. HTML comments
just before it (invisible on the site) steer the test:

- ``<!-- not-run: why -->``: the block is not run here, for the reason given;
- ``<!-- fake: 503 -->``: the fake Intercom answers POST /events with that status while the
  block runs (``Retry-After: 0``, so the retries take no time);
- ``<!-- setup: ievents ...; ievents ... -->``: commands run before the block, unseen;
- ``<!-- json-of: ievents ... --json -->``: before a ``json`` block, the command whose
  output it shows; every field shown must be in the real output (values may differ).

A ``console`` block is ``$ command`` lines, each followed by the output it shows (stdout,
then stderr); an ``sh`` block is commands only, each expected to exit 0 unless it ends with
a comment ``# exit N``. ``crontab`` blocks are recipes: ``tests/test_recipes.py`` runs them.

``IEVENTS_DOCS_REGENERATE=1 pytest tests/test_doc_examples.py`` writes the real output into
the ``console`` steps whose masked comparison differs, instead of failing; a page whose
output did not change is not written (docs/development/docs.md).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHELL_LANGS = ("sh", "console", "shell", "bash", "crontab")
REGENERATE_ENV = "IEVENTS_DOCS_REGENERATE"
# The shell metacharacters that need a real shell (pipes, redirections, variables, ...).
_SHELL_SYNTAX = re.compile(r"[|&;<>$`(){}*?~]|\bif\b")

_BLOCK = re.compile(r"^([ \t]*)```(\w*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.S | re.M)
_DIRECTIVE = re.compile(r"<!--\s*([\w-]+):\s*(.*?)\s*-->", re.S)


@dataclass
class Block:
    """One fenced block of a page, with the directives of the comments just before it."""

    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str  # without the indentation of the fence (a block in a list item)
    start: int  # offsets of the block's raw text in the page
    end: int
    indent: str = ""
    directives: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``docs/x.md:12``: for messages."""
        name = (
            self.page.relative_to(REPO_ROOT) if self.page.is_relative_to(REPO_ROOT) else self.page
        )
        return f"{name}:{self.line}"


def pages() -> list[Path]:
    """README.md and every page of docs/, in a stable order."""
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]


def blocks(page: Path, langs: tuple[str, ...] = SHELL_LANGS) -> list[Block]:
    """The fenced blocks of ``page`` in those languages, with their directives."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        indent, lang, raw = match.group(1), match.group(2), match.group(3)
        if lang not in langs:
            continue
        # The comments between the previous non-comment text and this fence.
        before = text[: match.start()].rstrip()
        directives: dict[str, str] = {}
        while before.endswith("-->"):
            opening = before.rfind("<!--")
            comment = _DIRECTIVE.fullmatch(before[opening:])
            if comment is None:
                break
            directives.setdefault(comment.group(1), " ".join(comment.group(2).split()))
            before = before[:opening].rstrip()
        found.append(
            Block(
                page=page,
                line=text.count("\n", 0, match.start()) + 1,
                lang=lang,
                text="".join(line.removeprefix(indent) for line in raw.splitlines(True)),
                start=match.start(3),
                end=match.end(3),
                indent=indent,
                directives=directives,
            )
        )
    return found


def logical_commands(script: str) -> list[str]:
    """Split a shell script into its commands: a line, or lines joined while a quote, a
    backslash continuation or an ``if``/``case`` is open. Blank and comment lines go."""
    commands: list[str] = []
    pending = ""
    for line in script.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending = f"{pending}\n{line}" if pending else line
        if pending.endswith("\\"):
            continue
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # an open quote
            continue
        opened = sum(words.count(w) for w in ("if", "case")) - sum(
            words.count(w) for w in ("fi", "esac")
        )
        if opened > 0:
            continue
        commands.append(pending)
        pending = ""
    if pending:
        commands.append(pending)
    return commands


def expected_exit(command: str) -> int:
    """The exit status a command's trailing ``# exit N`` comment promises (else 0)."""
    match = re.search(r"#\s*exit (\d+)\b[^\n]*$", command)
    return int(match.group(1)) if match else 0


def plain_ievents(command: str) -> list[str] | None:
    """The arguments of a plain ``ievents ...`` command (run in-process), else None."""
    command = command.replace("\\\n", " ")  # backslash continuations
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return None
    if not words or words[0] != "ievents":
        return None
    # Metacharacters outside quotes and comments need the shell; inside quotes they are data.
    unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "", command)
    unquoted = re.sub(r"(^|\s)#.*$", "", unquoted, flags=re.M)
    return None if _SHELL_SYNTAX.search(unquoted) else words[1:]


@dataclass
class ConsoleStep:
    """One ``$ command`` of a console block and the output shown under it."""

    command: str
    shown: str


def console_steps(text: str) -> list[ConsoleStep]:
    """The commands of a console block, each with the output shown after it."""
    steps: list[ConsoleStep] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append(ConsoleStep(line[2:], ""))
        elif steps and steps[-1].command.endswith("\\") and not steps[-1].shown:
            steps[-1].command += "\n" + line
        elif steps:
            steps[-1].shown += line + "\n"
    return steps


def console_text(steps: list[ConsoleStep]) -> str:
    """A console block's text from its steps (for regeneration)."""
    return "".join(f"$ {step.command}\n{step.shown}" for step in steps)


def regenerated_step(step: ConsoleStep, real: str) -> ConsoleStep | None:
    """The step showing the real output, or None when the shown one still holds.

    Shown and real output that differ only in what :func:`normalise` masks (a time, a
    duration, a rate) are the same: regenerating leaves such a step as written, so that
    a run on unchanged output changes no page.
    """
    if normalise(real) == normalise(step.shown):
        return None
    ending = "" if real.endswith("\n") or not real else "\n"
    return ConsoleStep(step.command, real + ending)


def rewrite_blocks(text: str, updates: list[tuple[Block, str]]) -> str:
    """The page's text with each block's content replaced, its indentation kept."""
    for block, content in sorted(updates, key=lambda update: update[0].start, reverse=True):
        indented = "".join(
            block.indent + line if line.strip() else line for line in content.splitlines(True)
        )
        text = text[: block.start] + indented + text[block.end :]
    return text


_NORMALISE = (
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?Z"), "<TIME>"),
    (re.compile(r"\b\d+(\.\d+)? (events|records)/s\b"), "<RATE>"),
    (re.compile(r"\b\d+(\.\d+)? ?(ms|s|min|h|d)\b"), "<DURATION>"),
    (re.compile(r"\b1\d{9}\b"), "<UNIX>"),
    (re.compile(r"ievents/\d+\.\d+\S*"), "ievents/<VERSION>"),
    # A fast run says "under 0.1 s" and no rate; a slower one "2.5 s, 400 events/s".
    (re.compile(r"(under )?<DURATION>(, <RATE>)?"), "<TIMING>"),
)


def normalise(text: str) -> str:
    """Output with what changes from run to run (times, durations, rates) masked."""
    for pattern, mask in _NORMALISE:
        text = pattern.sub(mask, text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
