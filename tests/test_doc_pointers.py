"""Where a message sends the user to read more, that place exists.

The manual moved from the README into docs/: a hint that names a README section, or a docs
page that is not there, leaves the user with nowhere to go. A wheel ships no docs, so a hint
names the page by its title and its path in the repository, not by a README section.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT, RunCli
from pg_server import APP_PASSWORD, APP_USER

PACKAGE = REPO_ROOT / "intercom_events_cli"
DOCS_PATH = re.compile(r"docs/[\w./-]+\.md")


def message_strings(path: Path) -> list[str]:
    """The string constants of a module that are not docstrings: what it may print."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_message_points_at_the_readme_and_every_docs_page_named_exists() -> None:
    named: set[str] = set()
    for module in sorted(PACKAGE.rglob("*.py")):
        for text in message_strings(module):
            where = module.relative_to(REPO_ROOT)
            assert "README" not in text, f"{where} sends the user to the README: {text!r}"
            named.update(DOCS_PATH.findall(text))
    for page in named:
        assert (REPO_ROOT / page).is_file(), f"a message names {page}, which does not exist"
    # The PostgreSQL privilege hint's page has the section the hint names.
    assert "docs/operations/postgresql.md" in named
    page = (REPO_ROOT / "docs/operations/postgresql.md").read_text(encoding="utf-8")
    assert "**Privileges.**" in page


def test_a_missing_privilege_names_the_docs_page_that_says_what_to_grant(
    run_cli: RunCli, pg_uri: str
) -> None:
    psycopg = pytest.importorskip("psycopg")
    # The DBA made the schema (as the superuser) and let the application's role read it,
    # not write to it: storing an event is refused.
    made = run_cli("send", "e", "--user-id", "0", "--queue", env={"IEVENTS_OUTBOX": pg_uri})
    assert made.code == 0, made
    with psycopg.connect(pg_uri, autocommit=True) as db:
        db.execute(
            f"GRANT USAGE ON SCHEMA ievents TO {APP_USER}; "
            f"GRANT SELECT ON ALL TABLES IN SCHEMA ievents TO {APP_USER}"
        )
    uri = pg_uri.replace("ievents_test@", f"{APP_USER}:{APP_PASSWORD}@")
    result = run_cli("send", "e", "--user-id", "1", "--queue", env={"IEVENTS_OUTBOX": uri})
    assert result.code == 78, result
    # It names what is missing and the statement that grants it (since outbox-pg), not
    # only "permission denied".
    assert f"the role {APP_USER} lacks INSERT" in result.stderr, result.stderr
    assert "GRANT SELECT, INSERT, UPDATE, DELETE" in result.stderr, result.stderr
    assert "README" not in result.stderr
    assert "docs/operations/postgresql.md" in result.stderr
    assert "Privileges" in result.stderr
    assert APP_PASSWORD not in result.stdout + result.stderr
