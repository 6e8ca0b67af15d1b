"""The package's modules import each other without cycles.

Every intra-package import counts, at module level or inside a function (a function-level
import only hides a cycle until that function runs). Imports under ``if TYPE_CHECKING:``
never run and do not count. Two imports made by name count too: a name a package's
``__init__`` imports lazily (its ``_LAZY`` table: ``from .outbox import State`` imports
``outbox.rows``), and the backend modules the outbox registry imports
(``outbox.store.BACKENDS``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import intercom_events_cli
from intercom_events_cli.outbox.store import BACKENDS

PACKAGE = "intercom_events_cli"
ROOT = Path(intercom_events_cli.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def runtime_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement except those under ``if TYPE_CHECKING:``."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(inner) for inner in ast.walk(child))
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in skipped
    ]


def lazy_names(path: Path, package: str) -> dict[str, str]:
    """A package ``__init__``'s ``_LAZY`` table: name -> the module it is imported from."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "_LAZY":
            table = ast.literal_eval(node.value)
            parts = package.split(".")
            resolved = {}
            for name, relative in table.items():
                level = len(relative) - len(relative.lstrip("."))
                base = parts[: len(parts) - (level - 1)]
                resolved[name] = ".".join([*base, relative.lstrip(".")])
            return resolved
    return {}


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from . import x`` counts ``x``)."""
    modules = {module_name(path): path for path in ROOT.rglob("*.py")}
    lazy = {
        name: lazy_names(path, name) for name, path in modules.items() if path.name == "__init__.py"
    }
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [target, *(f"{target}.{alias.name}" for alias in node.names)]
                table = lazy.get(target, {})
                targets += [table[alias.name] for alias in node.names if alias.name in table]
            graph[name].update(t for t in targets if t in modules and t != name)
    store = f"{PACKAGE}.outbox.store"
    graph[store].update(f"{PACKAGE}.outbox.{backend.module}" for backend in BACKENDS)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_graph_sees_the_package_and_its_function_level_imports() -> None:
    graph = import_graph()
    assert len(graph) > 30
    # The registry's backends, imported by name, and what they import inside functions.
    assert "intercom_events_cli.outbox.pg_backend" in graph["intercom_events_cli.outbox.store"]
    assert "intercom_events_cli.outbox.pg_outbox" in graph["intercom_events_cli.outbox.pg_backend"]
    # A lazy name of a package: ``from ..outbox import State`` imports outbox.rows.
    assert "intercom_events_cli.outbox.rows" in graph["intercom_events_cli.capture"]
    assert "intercom_events_cli.cli.capture" in graph["intercom_events_cli.cli.send"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_in_the_package() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
