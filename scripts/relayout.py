#!/usr/bin/env python3
"""Move intercom_events_cli's modules to the layout by stage (issue 24, part 4), mechanically.

Run from the repository's root on a clean tree, then commit what it did as one commit:

    python3 scripts/relayout.py            # git mv + rewrite every reference
    python3 scripts/relayout.py --dry-run  # print the mapping and the files it would edit

It is meant to be re-run on a newer main (after other branches' merges): it reads the
mapping below, ``git mv``s each module, and rewrites every reference to a moved module:

- imports, found with the AST (absolute and relative, function-level, under
  ``TYPE_CHECKING``); a relative import is re-rendered from the importing file's new place
  with the right number of dots, an absolute one stays absolute; ``from pkg import mod``
  where ``mod`` moved becomes ``from newpkg import newmod as mod`` (the body unchanged);
- module names in strings, as the values of dict literals only: relative names
  (``"..config"``, the lazy tables), the bare names of ``__init__._LAZY`` and the
  ``"module:function"`` entries of ``cli/commands.py``;
- dotted names ``intercom_events_cli.old.module`` anywhere in text (``-m``, mock targets,
  ``-X importtime`` checks, docs) and paths ``intercom_events_cli/old/module.py``;
- in Markdown (docs, CONTRIBUTING, benchmarks' README), a package-relative path such as
  ``cli/usage.py`` or ``delivery.py`` when it is not part of a longer path.

Only imports and references change: each moved file keeps its content otherwise, so git's
rename detection lets edits made elsewhere to the old file follow it. Afterwards run
``ruff check --fix --select I`` and ``ruff format`` (import order and line length only).
It stops with a message if the tree is dirty or a module of the mapping is missing.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

PKG = "intercom_events_cli"

# Old module (relative to the package) -> new module. A module that becomes a package's
# __init__ maps to "x" with "x/__init__.py" (see PACKAGE_MODULES).
MAPPING: dict[str, str] = {
    # input/: text streams -> records with line numbers; the rejects file
    "readers": "input.readers",
    "input_records": "input.records",
    "input_csv": "input.csv_rows",
    "rejects": "input.rejects",
    "input_ndjson": "input.ndjson_blocks",
    # config/: settings and where each value came from
    "config": "config.settings",
    "profiles": "config.profiles",
    # delivery/: the engine and what runs it
    "delivery": "delivery.engine",
    "delivery_workers": "delivery.workers",
    "delivery_results": "delivery.results",
    "delivery_lanes": "delivery.lanes",
    "batch": "delivery.batch",
    "relay": "delivery.relay",
    "workspaces": "delivery.workspaces",
    "destination": "delivery.destination",
    "summary_cache": "delivery.summary_cache",
    "metrics": "delivery.metrics",
    "metrics_server": "delivery.metrics_server",
    # http/: one client, its transport, retry policy and pacing; the reads of the API
    "client": "http.client",
    "transport": "http.transport",
    "connections": "http.connections",
    "retry": "http.retry",
    "pacing": "http.pacing",
    "lookup": "http.lookup",
    # cli/
    "cli.usage": "cli.runner",
    "cli.lookup": "cli.check",
    "cli.outbox": "cli.outbox",  # becomes cli/outbox/__init__.py
    "cli.outbox_inspect": "cli.outbox.inspection",
    "cli.outbox_admin": "cli.outbox.admin",
    "cli.outbox_workspaces": "cli.outbox.workspaces",
}

# Names that a split moved out of a module, after the move: (module, name) -> new module.
# Applied by ``--symbols`` only (the split itself is a commit of its own: see the report).
SPLITS: dict[str, dict[str, list[str]]] = {
    # config.py was settings plus a secret registry, a warning sink and the outbox path.
    "config.settings": {
        "config.redaction": [
            "MIN_SECRET_LENGTH",
            "register_secret",
            "redact",
            "token_tail",
            "forget_secrets",
        ],
        "config.warning_sink": [
            "set_warning_sink",
            "reset_process_state",
            "warn_if_readable_by_others",
            "warn_once",
        ],
        "config.variables": [
            "TOKEN_ENV",
            "TOKEN_FILE_ENV",
            "REGION_ENV",
            "BASE_URL_ENV",
            "API_VERSION_ENV",
            "OUTBOX_ENV",
            "Variables",
            "load_environment",
        ],
        "config.outbox_path": [
            "BUSY_TIMEOUT_ENV",
            "DEFAULT_BUSY_TIMEOUT_S",
            "default_outbox_path",
            "resolve_outbox_path",
            "outbox_source",
            "busy_timeout_from_env",
        ],
    },
}
SPLITS["cli.render"] = {
    # render.py was over 500 lines: the --json objects of whole commands went out.
    "cli.render_json": [
        "capture_json",
        "stored_event",
        "flush_json",
        "summary_json",
        "schema_text",
        "status_json",
    ],
}
SPLITS["outbox.sql_store"] = {
    # sql_store.py was over 500 lines: the pieces its statements are built from went out.
    "outbox.sql_parts": [
        "IDS_PER_QUERY",
        "Rows",
        "Handle",
        "H",
        "chunks",
        "marks",
        "ANYONES",
        "pending_for",
        "meta_number",
        "new_claim_token",
        "ClaimRequest",
    ],
}
SYMBOLS: dict[tuple[str, str], str] = {
    (module, name): target
    for module, targets in SPLITS.items()
    for target, names in targets.items()
    for name in names
}

ACTIVE_SYMBOLS: dict[tuple[str, str], str] = {}  # SYMBOLS with --symbols, else none

# Modules of the top that stay there: the Event, the outcome and what every stage uses.
# A top-level module in neither list (one a merge brought) is reported: map it or keep it.
KEEP_AT_TOP = {
    "__init__",
    "__main__",
    "capture",
    "early_signals",
    "errors",
    "event",
    "extras",
    "fields",
    "frozen",
    "metadata",
    "outcome",
    "record_check",
    "textsafe",
}

# Modules that become a package's __init__.py.
PACKAGE_MODULES = {"cli.outbox"}

# New packages and the docstring of their __init__.py.
NEW_PACKAGES: dict[str, str] = {
    "input": "Input: NDJSON, CSV and gzip streams to records with line numbers; the rejects file.",
    "config": (
        "Settings: the token, region, base URL and timeouts, where each value came from,\n"
        "profiles, and the secrets kept out of every output."
    ),
    "delivery": (
        "Delivery: the engine that claims, sends, paces and settles outbox rows (``flush``,\n"
        "``batch``, the relay), workspaces, and the metrics of a run."
    ),
    "http": (
        "HTTP: one httpx client, its transport bounds and connections, the retry policy,\n"
        "rate-limit pacing, and the reads of Intercom's API (GET /me, a contact's events)."
    ),
}

TEXT_SUFFIXES = {".py", ".md", ".toml", ".yml", ".yaml", ".cfg", ".ini", ".txt", ".sh", ""}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def module_path(module: str, *, new: bool) -> Path:
    """The file of a module (relative to the package) before or after the move."""
    parts = module.split(".")
    if new and module in {MAPPING[m] for m in PACKAGE_MODULES}:
        return Path(PKG, *parts, "__init__.py")
    return Path(PKG, *parts[:-1], parts[-1] + ".py")


def file_module(path: Path) -> tuple[str, bool] | None:
    """The module (relative to the package) of a file in it, and whether it is a package."""
    if path.parts[0] != PKG or path.suffix != ".py":
        return None
    parts = list(path.with_suffix("").parts[1:])
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def new_name(module: str) -> str:
    """The new name of a module (relative), unchanged when it does not move."""
    return MAPPING.get(module, module)


def resolve(package: list[str], level: int, module: str | None) -> list[str]:
    """The absolute parts of a relative import made from ``package``."""
    base = package[: len(package) - (level - 1)] if level > 1 else list(package)
    return base + (module.split(".") if module else [])


def render_relative(from_package: list[str], target: list[str]) -> str:
    """``target`` (absolute parts) as a relative name from ``from_package``."""
    common = 0
    while common < min(len(from_package), len(target)) and from_package[common] == target[common]:
        common += 1
    dots = len(from_package) - common + 1
    return "." * dots + ".".join(target[common:])


class FileEdit:
    """The edits of one file, as (start, end, replacement) offsets in its text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))
        self.edits: list[tuple[int, int, str]] = []
        self.protected: list[tuple[int, int]] = []

    def offset(self, lineno: int, col: int) -> int:
        # ast columns are UTF-8 byte offsets.
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode()[:col].decode())

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self.offset(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )

    def apply(self) -> str:
        text = self.text
        for start, end, replacement in sorted(self.edits, reverse=True):
            text = text[:start] + replacement + text[end:]
        return text


def to_pkg_relative(parts: list[str]) -> str | None:
    if not parts or parts[0] != PKG:
        return None
    return ".".join(parts[1:])


def rewrite_python(path: Path, edit: FileEdit, old_modules: set[str]) -> None:
    """Rewrite the imports and module-name strings of one Python file."""
    tree = ast.parse(edit.text)
    info = file_module(path)
    old_package: list[str] = []
    new_package: list[str] = []
    if info is not None:
        module, is_package = info
        old_parts = [PKG, *module.split(".")] if module else [PKG]
        old_package = old_parts if is_package else old_parts[:-1]
        moved = new_name(module)
        new_is_package = is_package or module in PACKAGE_MODULES
        new_parts = [PKG, *moved.split(".")] if moved else [PKG]
        new_package = new_parts if new_is_package else new_parts[:-1]
    # Module names in strings are looked for only as the values of dict literals (the lazy
    # tables, the command table): elsewhere ".config" is a folder, not a module.
    dict_values = {
        id(value) for node in ast.walk(tree) if isinstance(node, ast.Dict) for value in node.values
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and info:
            rewrite_lazy_table(node, edit, old_package)
        if isinstance(node, ast.ImportFrom):
            rewrite_import_from(node, edit, old_package, new_package)
        elif isinstance(node, ast.Import):
            rewrite_import(node, edit)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and info
            and id(node) in dict_values
        ):
            rewrite_module_string(node, edit, path, old_package, new_package, old_modules)


def rewrite_import_from(
    node: ast.ImportFrom, edit: FileEdit, old_package: list[str], new_package: list[str]
) -> None:
    if node.level:
        base = resolve(old_package, node.level, node.module)
    else:
        base = (node.module or "").split(".")
    relative = to_pkg_relative(base)
    if relative is None:
        return
    # Each imported name: is it a module that moves, or a name of the base module?
    groups: dict[str, list[str]] = {}
    for alias in node.names:
        full = f"{relative}.{alias.name}" if relative else alias.name
        if full in MAPPING and MAPPING[full] != full:
            target = MAPPING[full]
            parent, _, leaf = target.rpartition(".")
            bound = alias.asname or alias.name
            text = leaf if leaf == bound else f"{leaf} as {bound}"
            groups.setdefault(parent, []).append(text)
        else:
            text = alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"
            target = new_name(relative)
            groups.setdefault(ACTIVE_SYMBOLS.get((target, alias.name), target), []).append(text)

    def render(target: str) -> str:
        parts = [PKG, *target.split(".")] if target else [PKG]
        if node.level:
            return render_relative(new_package, parts)
        return ".".join(parts)

    start, end = edit.span(node)
    edit.protected.append((start, end))
    original = edit.text[start:end]
    if len(groups) == 1:
        (target,) = groups
        rendered = render(target)
        names_same = [
            alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"
            for alias in node.names
        ] == groups[target]
        current = "." * node.level + (node.module or "")
        if rendered == current and names_same:
            return
        if names_same:
            # Keep the statement's own layout: replace the module only.
            match = re.match(r"from\s+(\S+)\s+import", original)
            assert match is not None, original
            edit.edits.append((start + match.start(1), start + match.end(1), rendered))
            return
    indent = " " * node.col_offset
    statements = [f"from {render(t)} import {', '.join(names)}" for t, names in groups.items()]
    edit.edits.append((start, end, f"\n{indent}".join(statements)))


def rewrite_import(node: ast.Import, edit: FileEdit) -> None:
    start, end = edit.span(node)
    edit.protected.append((start, end))
    changed = False
    rendered = []
    for alias in node.names:
        parts = alias.name.split(".")
        relative = to_pkg_relative(parts)
        name = alias.name
        if relative is not None:
            # The longest moved prefix of the dotted name.
            for cut in range(len(parts) - 1, 0, -1):
                prefix = ".".join(parts[1 : cut + 1])
                if prefix in MAPPING and MAPPING[prefix] != prefix:
                    name = ".".join([PKG, MAPPING[prefix], *parts[cut + 1 :]])
                    changed = True
                    break
        rendered.append(name if alias.asname is None else f"{name} as {alias.asname}")
    if changed:
        edit.edits.append((start, end, f"import {', '.join(rendered)}"))


def rewrite_lazy_table(node: ast.Dict, edit: FileEdit, package: list[str]) -> None:
    """``{"name": "..module"}`` (a package's lazy names): follow a name a split moved."""
    for key, value in zip(node.keys, node.values, strict=True):
        if not (isinstance(key, ast.Constant) and isinstance(value, ast.Constant)):
            continue
        if not (isinstance(key.value, str) and isinstance(value.value, str)):
            continue
        match = RELATIVE_NAME.match(value.value)
        if not match:
            continue
        parts = resolve(package, len(match.group(1)), match.group(2))
        module = to_pkg_relative(parts)
        target = ACTIVE_SYMBOLS.get((module or "", key.value))
        if target is not None:
            start, end = edit.span(value)
            edit.protected.append((start, end))
            rendered = render_relative(package, [PKG, *target.split(".")])
            edit.edits.append((start, end, f'"{rendered}"'))


MODULE_FUNCTION = re.compile(r"^([a-z_][\w.]*):([a-z_]\w*)$")
RELATIVE_NAME = re.compile(r"^(\.+)([a-z_][\w.]*)?$")


def rewrite_module_string(
    node: ast.Constant,
    edit: FileEdit,
    path: Path,
    old_package: list[str],
    new_package: list[str],
    old_modules: set[str],
) -> None:
    value: str = node.value
    start, end = edit.span(node)
    quote = edit.text[start]
    if quote not in "\"'" or edit.text[start + 1 : start + 3] == quote * 2:
        return  # f-strings, prefixed or triple-quoted strings: not module names
    replacement: str | None = None
    relative_match = RELATIVE_NAME.match(value)
    module_function = MODULE_FUNCTION.match(value)
    if relative_match and value != ".":
        parts = resolve(old_package, len(relative_match.group(1)), relative_match.group(2))
        old = to_pkg_relative(parts)
        if old is not None and old in old_modules:
            replacement = render_relative(new_package, [PKG, *new_name(old).split(".")])
    elif path == Path(PKG, "cli", "commands.py") and module_function:
        # "module:function", relative to the cli package (importlib with __package__).
        old = f"cli.{module_function.group(1)}"
        if old in old_modules:
            new = new_name(old).removeprefix("cli.")
            replacement = f"{new}:{module_function.group(2)}"
    elif path == Path(PKG, "__init__.py") and value in old_modules:
        replacement = new_name(value)  # the _LAZY table: relative names without dots
    if replacement is not None and replacement != value:
        edit.edits.append((start, end, f"{quote}{replacement}{quote}"))


def text_patterns(markdown: bool) -> list[tuple[re.Pattern[str], str]]:
    moved = sorted(
        (m for m in MAPPING if module_path(m, new=False) != module_path(MAPPING[m], new=True)),
        key=len,
        reverse=True,
    )
    patterns: list[tuple[re.Pattern[str], str]] = []
    for old in moved:
        if MAPPING[old] != old:
            dotted = re.compile(rf"(?<![\w.]){PKG}\.{re.escape(old)}(?!\w)")
            patterns.append((dotted, f"{PKG}.{MAPPING[old]}"))
        old_path = module_path(old, new=False).as_posix()
        new_path = module_path(MAPPING[old], new=True).as_posix()
        patterns.append((re.compile(rf"(?<![\w/.]){re.escape(old_path)}(?![\w/])"), new_path))
        if markdown:
            short_old = old_path.removeprefix(PKG + "/")
            short_new = new_path.removeprefix(PKG + "/")
            patterns.append(
                (re.compile(rf"(?<![\w/.-]){re.escape(short_old)}(?![\w/])"), short_new)
            )
    return patterns


def symbol_patterns() -> list[tuple[re.Pattern[str], str]]:
    """``intercom_events_cli.module.name`` for a name a split moved (docstrings, mocks)."""
    return [
        (
            re.compile(rf"(?<![\w.]){PKG}\.{re.escape(module)}\.{name}(?!\w)"),
            f"{PKG}.{target}.{name}",
        )
        for (module, name), target in ACTIVE_SYMBOLS.items()
    ]


def rewrite_text(edit: FileEdit, markdown: bool) -> None:
    taken = list(edit.protected) + [(s, e) for s, e, _ in edit.edits]
    for pattern, replacement in text_patterns(markdown) + symbol_patterns():
        for match in pattern.finditer(edit.text):
            s, e = match.span()
            if any(s < te and ts < e for ts, te in taken):
                continue
            edit.edits.append((s, e, replacement))
            taken.append((s, e))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="change nothing; say what")
    parser.add_argument(
        "--symbols",
        action="store_true",
        help="after the move and the splits: point imports of a name a split moved (SPLITS)"
        " at its new module; moves nothing",
    )
    args = parser.parse_args()
    if args.symbols:
        MAPPING.clear()
        PACKAGE_MODULES.clear()
        NEW_PACKAGES.clear()
        ACTIVE_SYMBOLS.update(SYMBOLS)
    if not Path(PKG).is_dir():
        sys.exit(f"relayout: run from the repository's root ({PKG}/ not found here)")
    dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    if dirty and not args.dry_run and not args.symbols:
        sys.exit("relayout: the tree has uncommitted changes; commit or stash them first")
    for old in MAPPING:
        if not module_path(old, new=False).is_file():
            sys.exit(f"relayout: {module_path(old, new=False)} is missing: update MAPPING")
    tracked = [Path(p) for p in git("ls-files").splitlines()]
    if not args.symbols:
        for path in tracked:
            top = path.parent == Path(PKG) and path.suffix == ".py"
            if top and path.stem not in KEEP_AT_TOP and path.stem not in MAPPING:
                print(f"relayout: {path} is in neither MAPPING nor KEEP_AT_TOP: it stays")
    old_modules = {m for p in tracked if (i := file_module(p)) for m in [i[0]] if m}

    # 1. Rewrite references in place (old paths), so that AST offsets are the files' own.
    changed: list[Path] = []
    for path in tracked:
        if path.suffix not in TEXT_SUFFIXES or not path.is_file() or path.is_symlink():
            continue
        if path.parts[0] in {".cache", "site"} or path == Path(__file__).relative_to(Path.cwd()):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        edit = FileEdit(text)
        if path.suffix == ".py":
            rewrite_python(path, edit, old_modules)
        rewrite_text(edit, markdown=path.suffix == ".md")
        new_text = edit.apply()
        if new_text != text:
            changed.append(path)
            if not args.dry_run:
                path.write_text(new_text, encoding="utf-8")

    # 2. Move the files.
    for old, new in MAPPING.items():
        source, destination = module_path(old, new=False), module_path(new, new=True)
        print(f"{source} -> {destination}")
        if args.dry_run or source == destination:
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        git("mv", str(source), str(destination))
    for package, doc in NEW_PACKAGES.items():
        init = Path(PKG, package, "__init__.py")
        if args.dry_run or init.exists():
            continue
        init.write_text(f'"""{doc}"""\n', encoding="utf-8")
        git("add", str(init))
    print(f"{len(changed)} files rewritten:", *map(str, changed), sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
