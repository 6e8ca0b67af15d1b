"""CONTRIBUTING.md names files that exist: a module moved or renamed is a stale guide."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = REPO_ROOT / "intercom_events_cli"
# A file name with its folders (``cli/render.py``, ``pg_*.py``, ``tests/pg_server.py``),
# or a folder in backticks (``input/``, ``tests/contract/``).
FILE = re.compile(r"(?<![\w/.<*-])[\w.*-]*\w[\w/.*-]*\.(?:py|md|toml|yaml)(?![\w/])")
FOLDER = re.compile(r"`([\w.-]+(?:/[\w.-]+)*/)`")
SEARCHED = (PACKAGE, REPO_ROOT / "tests", REPO_ROOT / "benchmarks", REPO_ROOT / "scripts")


def named_paths(text: str) -> set[str]:
    """Every file or folder path the text names."""
    return set(FILE.findall(text)) | set(FOLDER.findall(text))


def exists(name: str) -> bool:
    """Whether ``name`` is a path from the repository or the package, or (a bare file
    name, as the guide writes the modules of a package it is describing) a file of the
    package, the tests, the benchmarks or the scripts."""
    for base in (REPO_ROOT, PACKAGE):
        if any(base.glob(name.rstrip("/"))):
            return True
    if "/" not in name:
        return any(any(folder.rglob(name)) for folder in SEARCHED)
    return False


def missing_paths(text: str) -> list[str]:
    return sorted(name for name in named_paths(text) if not exists(name))


def test_every_path_contributing_names_exists() -> None:
    text = (REPO_ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    names = named_paths(text)
    assert {"cli/render.py", "outbox/store.py", "input/", "tests/conftest.py"} <= names
    assert missing_paths(text) == []


def test_a_stale_path_is_found() -> None:
    text = "The engine is `delivery.py`; the options `cli/usage.py`, `input_csv.py`, `nowhere/`."
    assert missing_paths(text) == ["cli/usage.py", "delivery.py", "input_csv.py", "nowhere/"]
