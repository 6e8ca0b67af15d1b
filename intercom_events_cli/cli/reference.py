"""The CLI reference (docs/cli.md), generated from the app itself.

``python -m intercom_events_cli.cli.reference > docs/cli.md`` writes it; a test checks that
the file is current, so README can link to it instead of copying every ``--help``.
"""

from __future__ import annotations

from typing import Any

import typer

from . import app


def _metavar(param: Any, ctx: Any) -> str:
    try:
        text = param.make_metavar(ctx)
    except TypeError:  # click < 8.2 takes no context
        text = param.make_metavar()
    return str(text)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _option_row(param: Any, ctx: Any) -> str:
    names = ", ".join(f"`{name}`" for name in [*param.opts, *param.secondary_opts])
    if not param.is_flag:
        names += f" `{_metavar(param, ctx)}`".replace("|", "\\|")
    choices = getattr(param.type, "choices", None)
    help_text = param.help or ""
    if choices:
        help_text += " Choices: " + ", ".join(f"`{choice}`" for choice in choices) + "."
    default = param.default
    shown = ""
    if param.show_default is not False and default not in (None, False, (), []):
        shown = f"`{default.value if hasattr(default, 'value') else default}`"
    return f"| {names} | {shown} | {_cell(help_text)} |"


def _command_section(command: Any, path: list[str], parent: Any) -> list[str]:
    ctx = typer.Context(command, info_name=path[-1], parent=parent)
    title = " ".join(path)
    lines = [f"## `{title}`", ""]
    pieces = " ".join(command.collect_usage_pieces(ctx))
    lines += ["```", f"{title} {pieces}".rstrip(), "```", ""]
    if command.help:
        lines += [command.help.strip(), ""]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.params if p.param_type_name == "option"]
    if arguments:
        lines += ["| argument | meaning |", "| --- | --- |"]
        for argument in arguments:
            lines.append(f"| `{_metavar(argument, ctx)}` | {_cell(argument.help or '')} |")
        lines.append("")
    if options:
        lines += ["| option | default | meaning |", "| --- | --- | --- |"]
        lines += [_option_row(option, ctx) for option in options]
        lines.append("| `-h`, `--help` | | Show the help and exit. |")
        lines.append("")
    sections = [lines]
    subcommands = getattr(command, "commands", {})
    for name in subcommands:
        sections.append(_command_section(subcommands[name], [*path, name], ctx))
    return [line for section in sections for line in section]


def render() -> str:
    """The whole reference as Markdown."""
    root = typer.main.get_command(app)
    header = [
        "# ievents command reference",
        "",
        "Generated from the app by `python -m intercom_events_cli.cli.reference > docs/cli.md`;",
        "`tests/test_reference.py` fails when it is out of date. `ievents COMMAND --help` shows",
        "the same. Options go after the command name.",
        "",
    ]
    body = _command_section(root, ["ievents"], None)
    return "\n".join(header + body).rstrip() + "\n"


if __name__ == "__main__":
    from .environment import current

    current().stdout.write(render())
