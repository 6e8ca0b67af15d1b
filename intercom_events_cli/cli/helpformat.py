"""``--help`` that fits: plain text, one line per option where it can, nothing cut.

typer's rich help draws boxes, squeezes the text into a narrow column beside range notes
and cuts long defaults with "…"; at 80 columns ``flush --help`` ran to 100 lines. Here a
command's help is its usage line, its summary and examples (the docstring), its arguments
and its options by panel, each option on one line when it fits, wrapped (never cut) when
not. Examples (indented lines in a docstring) are never wrapped, so they copy as one line.
The commands and groups of :mod:`.commands` format their help with :func:`render_help`.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Any

from .environment import current

MIN_WIDTH = 60
MAX_WIDTH = 100
NAME_COLUMN = 24  # "-m, --metadata KEY=VALUE" fits; longer names put their help below
# The panel of the options every command shares, and what its heading says about them.
HEADINGS = {"Settings": "Settings (a flag, else the variable named, a profile, .env)"}


def reflow_help(text: str) -> str:
    """Join a docstring's wrapped lines so that --help wraps them to the terminal.

    typer's rich help keeps every line break, so source lines wrapped at 90 columns
    break again at 80. A line is joined to the one before unless that one ends a
    sentence or a label (``.``, ``:``) or the line starts an item (``-``, ``Example``);
    blank lines still separate paragraphs.
    """
    paragraphs = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        lines: list[str] = []
        for line in paragraph.split("\n"):
            if (
                lines
                and not lines[-1].endswith((".", ":"))
                and not line.startswith(("-", "Example", " "))
                and not lines[-1].startswith(" ")
            ):
                lines[-1] += " " + line
            else:
                lines.append(line)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def help_width() -> int:
    """The width to wrap to: ``COLUMNS`` (the run's variables), else the terminal's, 60-100."""
    import shutil

    text = current().environ.get("COLUMNS", "")
    width = int(text) if text.isdigit() else shutil.get_terminal_size((80, 24)).columns
    return max(MIN_WIDTH, min(MAX_WIDTH, width))


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    """Wrap a paragraph; indented lines (examples) stay whole, so they copy as one line."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(" ") or not line.strip():
            lines.append(indent + line if line.strip() else "")
        else:
            lines += textwrap.wrap(
                line, width, initial_indent=indent, subsequent_indent=indent
            ) or [""]
    return lines


def option_metavar(param: Any) -> str:
    """``PATH``, ``us|eu|au`` (choices), ``N``: never typer's ``<str>`` or ``TEXT``."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    choices = getattr(param.type, "choices", None)
    if param.metavar:
        return str(param.metavar)
    if choices:
        return "|".join(str(getattr(choice, "value", choice)) for choice in choices)
    return str(param.name or "VALUE").upper()


def _default_text(param: Any) -> str:
    if getattr(param, "is_flag", False) or param.show_default is False:
        return ""
    default = param.default
    if default in (None, "", (), []) or callable(default):
        return ""
    if isinstance(param.show_default, str):
        return f" [default: {param.show_default}]"
    return f" [default: {getattr(default, 'value', default)}]"


def _names(param: Any) -> str:
    opts = sorted([*param.opts, *param.secondary_opts], key=lambda name: name.startswith("--"))
    names = ", ".join(opts)
    metavar = option_metavar(param)
    return f"{names} {metavar}" if metavar else names


def _rows(rows: list[tuple[str, str]], width: int, column: int = 0) -> list[str]:
    """``  NAME  help`` rows: help wrapped in its column; a long NAME puts help below."""
    column = column or min(NAME_COLUMN, max((len(name) for name, _ in rows), default=0))
    text_width = max(20, width - column - 4)
    lines: list[str] = []
    for name, text in rows:
        wrapped = textwrap.wrap(text, text_width) or [""]
        if len(name) > column:
            lines.append(f"  {name}")
            lines += [" " * (column + 4) + part for part in wrapped]
            continue
        lines.append(f"  {name.ljust(column)}  {wrapped[0]}".rstrip())
        lines += [" " * (column + 4) + part for part in wrapped[1:]]
    return lines


def _sections(command: Any, ctx: Any) -> list[tuple[str, list[tuple[str, str]]]]:
    """(panel title, rows) in the order the panels first appear; --help joins the last."""
    arguments = [
        (param.make_metavar(ctx), param.help or "")
        for param in command.get_params(ctx)
        if param.param_type_name == "argument" and not param.hidden
    ]
    panels: dict[str, list[tuple[str, str]]] = {}
    help_row: tuple[str, str] | None = None
    for param in command.get_params(ctx):
        if param.param_type_name != "option" or param.hidden:
            continue
        row = (_names(param), (param.help or "") + _default_text(param))
        if param.name == "help":
            help_row = row
            continue
        panels.setdefault(getattr(param, "rich_help_panel", None) or "", []).append(row)
    # Options of no panel come first, under "Options".
    loose = panels.pop("", [])
    sections = [("Arguments", arguments)] if arguments else []
    sections += [("Options", loose)] if loose else []
    sections += [(HEADINGS.get(title, title), rows) for title, rows in panels.items()]
    if help_row is not None:
        if sections and sections[-1][0] != "Arguments":
            sections[-1][1].append(help_row)
        else:
            sections.append(("Options", [help_row]))
    return sections


def command_list(group: Any, ctx: Any, width: int) -> list[str]:
    """``Commands:`` and one line per command: its name and the first line of its help."""
    rows = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        summary = (command.help or "").strip().split("\n\n", 1)[0].replace("\n", " ")
        rows.append((name, summary))
    return ["Commands:", *_rows(rows, width)]


def render_help(command: Any, ctx: Any) -> str:
    """The whole ``--help`` text of ``command`` (a group lists its commands too)."""
    width = help_width()
    pieces = " ".join(command.collect_usage_pieces(ctx))
    lines = [f"Usage: {ctx.command_path} {pieces}".rstrip(), ""]
    if command.help:
        lines += _wrap(command.help.strip(), width)
        lines.append("")
    if hasattr(command, "list_commands"):
        lines += [*command_list(command, ctx, width), ""]
    sections = _sections(command, ctx)
    names = [len(name) for _, rows in sections for name, _ in rows]
    column = min(NAME_COLUMN, max(names, default=0))
    # No blank line between option panels: their flush-left headings part them, and
    # the help stays under 40 lines.
    for title, rows in sections:
        lines += [f"{title}:", *_rows(rows, width, column)]
    return "\n".join(lines).rstrip() + "\n"


def short_command_list(group: Any, ctx: Any) -> str:
    """What a bare ``ievents`` (or ``ievents outbox``) prints: usage and the commands."""
    width = help_width()
    lines = [f"Usage: {ctx.command_path} COMMAND [OPTIONS]", ""]
    lines += command_list(group, ctx, width)
    lines += ["", f"See '{ctx.command_path} COMMAND --help' for a command's options."]
    return "\n".join(lines) + "\n"
