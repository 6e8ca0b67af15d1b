"""Usage errors from the option parser, in ievents' one error style.

typer prints click's usage errors in a rich box: box-drawing characters in cron mail and
bold that survives ``NO_COLOR``. Here they become the same ``ievents: error: ...`` line
plus a hint as every other error, and with ``--json`` also one JSON object on stdout.
``--help`` is :mod:`.helpformat`'s plain text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import typer

from ..errors import ExitCode
from .clickshim import (
    ClickException,
    NoArgsIsHelpError,
    NoSuchOption,
    UsageError,
    current_context,
)
from .commands import COMMANDS, command_path
from .environment import current
from .output import Output


def _before_separator(argv: Sequence[str]) -> list[str]:
    args = list(argv)
    return args[: args.index("--")] if "--" in args else args


def _unquoted_json_metadata(argv: Sequence[str]) -> str | None:
    """The ``-m`` value that looks like JSON cut at a space by the shell, if any."""
    args = _before_separator(argv)
    for index, arg in enumerate(args):
        value: str | None = None
        if arg in ("-m", "--metadata") and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith("--metadata="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-m") and len(arg) > 2:
            value = arg[2:]
        if value is not None and ":=" in value:
            json_part = value.split(":=", 1)[1]
            opened = json_part.count("{") + json_part.count("[")
            closed = json_part.count("}") + json_part.count("]")
            if opened > closed:
                return value
    return None


# How alike a mistyped option and a real one must be to be suggested: click's own cutoff
# (0.6) offers --verbose for --bogus; 0.75 keeps --dry-rn -> --dry-run, --retry -> --retries.
SUGGEST_CUTOFF = 0.75


def close_options(given: str, possibilities: Sequence[str]) -> list[str]:
    """The options close enough to ``given`` to be what was meant, best first."""
    import difflib

    scored = [(difflib.SequenceMatcher(None, given, name).ratio(), name) for name in possibilities]
    return [name for score, name in sorted(scored, reverse=True) if score >= SUGGEST_CUTOFF]


def hint_for(exc: Any, argv: Sequence[str]) -> str:
    """The most useful hint for a usage error, given the whole command line."""
    args = _before_separator(argv)
    ctx = exc.ctx
    # An option missing its value is raised without a context: the command line names it.
    named = ctx.command_path if ctx is not None else command_path(args)
    help_hint = f"see '{named} --help'"
    if any(arg == "--token" or arg.startswith("--token=") for arg in args):
        return (
            "the token is never a flag (it would show in ps and shell history): set "
            "INTERCOM_ACCESS_TOKEN, or use --token-file PATH or a profile (--profile NAME)"
        )
    cut = _unquoted_json_metadata(argv)
    if cut is not None:
        key = cut.split(":=", 1)[0]
        return (
            f"the shell split the JSON of -m {cut!r} at a space; quote the whole option, "
            f'e.g. -m \'{key}:={{"amount": 2999, "currency": "usd"}}\''
        )
    if isinstance(exc, NoSuchOption):
        is_root = ctx is not None and ctx.parent is None
        command = next((arg for arg in args if arg in COMMANDS), None)
        if is_root and command is not None:
            return f"options go after the command name: ievents {command} {exc.option_name} ..."
        close = close_options(exc.option_name, exc.possibilities or ())
        if close:
            return f"did you mean {' or '.join(close)}? ({help_hint})"
    return help_hint


# click's words for a value that is not a number at all ("'x' is not a valid int range").
_NOT_A_NUMBER = (
    (re.compile(r"is not a valid int(eger)?( range)?\b"), "is not a whole number"),
    (re.compile(r"is not a valid float( range)?\b"), "is not a number"),
)


def _message(exc: Any) -> str:
    # NoSuchOption appends "(Possible options: ...)"; that suggestion goes in the hint.
    text = exc.message if isinstance(exc, NoSuchOption) else exc.format_message()
    text = re.sub(r"\s+", " ", text).strip()
    for pattern, words in _NOT_A_NUMBER:
        text = pattern.sub(words, text)
    return text[0].lower() + text[1:] if text[:1].isupper() and text[1:2].islower() else text


def current_help_hint() -> str:
    """``see 'ievents outbox purge --help'`` for the command running now (else ievents)."""
    ctx = current_context()
    return f"see '{ctx.command_path if ctx is not None else 'ievents'} --help'"


def report_usage_error(exc: Any, argv: Sequence[str], *, stdout: Any = None) -> int:
    """Print a usage error in ievents' style (plus a JSON object with ``--json``); exit code."""
    args = _before_separator(argv)
    ui = Output(
        json_mode="--json" in args,
        no_color="--no-color" in args,
        stdout=stdout,
    )
    message = _message(exc)
    hint = hint_for(exc, argv)
    if ui.json_mode:
        ui.json(
            {
                "ok": False,
                "exit_code": int(ExitCode.USAGE),
                "error": {"code": "usage_error", "message": message, "hint": hint},
            }
        )
    ui.error(message, hint)
    return int(ExitCode.USAGE)


def report_interrupted(argv: Sequence[str]) -> int:
    """Ctrl-C or SIGTERM outside a command's body: said (and, with ``--json``, the error
    document every exit prints); exit 130."""
    ui = Output(json_mode="--json" in _before_separator(argv))
    if ui.json_mode:
        ui.json(
            {
                "ok": False,
                "exit_code": int(ExitCode.INTERRUPTED),
                "error": {"code": "interrupted", "message": "interrupted", "hint": None},
            }
        )
    ui.error("interrupted")
    return int(ExitCode.INTERRUPTED)


def run(command: Any, argv: Sequence[str]) -> int:
    """Run the click ``command`` (the root group) on ``argv`` and return its exit code,
    printing usage errors our way."""
    try:
        # As typer's app(...) does, with a command built once (cli.command()).
        result = command(args=list(argv), prog_name="ievents", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        # A bare group (ievents, ievents outbox): its commands, not the whole help.
        from .helpformat import short_command_list

        Output().stderr.write(short_command_list(exc.ctx.command, exc.ctx))
        return int(ExitCode.USAGE)
    except UsageError as exc:
        return report_usage_error(exc, argv)
    except (typer.Abort, KeyboardInterrupt):
        return report_interrupted(argv)
    except ClickException as exc:  # a file option that cannot be opened
        Output().error(exc.format_message())
        return int(exc.exit_code)
    if result == ExitCode.INTERRUPTED and not current().ending_said:
        # typer answers a Ctrl-C that lands while it parses (or after a command's result
        # was written) with a bare Exit(130), where every command that ends 130 has said
        # why (an error line, --json).
        return report_interrupted(argv)
    return result if isinstance(result, int) else 0
