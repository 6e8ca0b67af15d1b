"""The one place ievents reaches below typer's public API (``tests/test_clickshim.py``).

typer (0.26 and later) vendors click as the private ``typer._click`` and exports only
part of it: the parser's exceptions (an unknown option, a bare group) and the current
context are not in ``typer``'s namespace. They are taken here, once; everything else in
``cli/`` uses ``typer``'s public names, ``typer.main.get_command`` and the documented
``cls=`` subclasses of ``TyperCommand`` and ``TyperGroup``. A typer release that moves
any of it fails ``tests/test_clickshim.py`` with a message naming what moved, instead of
the CLI failing at run time; the pin in ``pyproject.toml`` is the range that test passed on.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


def _click_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"typer._click.{name}")
    except ImportError as exc:
        raise ImportError(
            f"typer {typer.__version__} has no typer._click.{name}: ievents supports the typer "
            "range pinned in its pyproject.toml; cli/clickshim.py is what to update"
        ) from exc


exceptions: Any = _click_module("exceptions")
# Any: their attributes (ctx, option_name, possibilities) are click's, untyped here.
UsageError: Any = exceptions.UsageError
NoSuchOption: Any = exceptions.NoSuchOption
NoArgsIsHelpError: Any = exceptions.NoArgsIsHelpError
ClickException: Any = exceptions.ClickException


def current_context() -> Any:
    """The click context of the command running now, or None outside one."""
    return _click_module("globals").get_current_context(silent=True)


__all__ = [
    "ClickException",
    "NoArgsIsHelpError",
    "NoSuchOption",
    "TyperCommand",
    "TyperGroup",
    "UsageError",
    "current_context",
]
