"""Compile the package and rewrite the test modules once per run, not once per process.

With ``-n auto`` every worker imports all test modules, and pytest rewrites the asserts
of each (an AST pass, about 1.4 s of CPU for the suite); every CLI subprocess compiles
the package modules it imports. Where the bytecode cache is not written
(``PYTHONDONTWRITEBYTECODE``, as on the CI machine) that is repeated by each of them.
So the controller writes the caches once before the workers start: the standard
``__pycache__`` pyc for the package and the helper modules, and pytest's own rewritten
pyc for the test modules, which every pytest reads even where it writes none. Python
and pytest check each pyc against its source, so a stale one is never used.

Where ``PYTHONDONTWRITEBYTECODE`` asked for no bytecode on disk, the files written here
are removed when the run ends (:func:`remove`); a run killed before its end leaves them,
as any Python run without that variable would (``__pycache__`` is ignored by git, and a
pyc that no longer matches its source is never used).
"""

from __future__ import annotations

import importlib.util
import py_compile
from pathlib import Path

import pytest


def _is_test_module(path: Path) -> bool:
    return path.name == "conftest.py" or path.name.startswith("test_")


def _is_fresh(source: Path, pyc: Path) -> bool:
    """Whether ``pyc`` is a timestamp pyc that Python would take for ``source``."""
    try:
        header = pyc.read_bytes()[:16]
        stat = source.stat()
    except OSError:
        return False
    return (
        header[:4] == importlib.util.MAGIC_NUMBER
        and int.from_bytes(header[4:8], "little") == 0
        and int.from_bytes(header[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF
        and int.from_bytes(header[12:16], "little") == stat.st_size & 0xFFFFFFFF
    )


def _rewrite_test_module(config: pytest.Config, source: Path) -> Path | None:
    """pytest's rewritten pyc for ``source``, as a worker would write it; None if not."""
    try:
        # pytest's own functions, so that the file is exactly the one its import hook
        # reads. They are private: any change in them only costs this speed-up.
        from _pytest.assertion import rewrite

        state = config.stash[rewrite.assertstate_key]
        pyc = rewrite.get_cache_dir(source) / (source.name[:-3] + rewrite.PYC_TAIL)
        if rewrite._read_pyc(source, pyc) is not None:
            return None
        pyc.parent.mkdir(exist_ok=True)
        source_hash, code = rewrite._rewrite_test(source, config)
        return pyc if rewrite._write_pyc(state, code, source_hash, pyc) else None
    except Exception:
        return None


def _compile_module(source: Path) -> Path | None:
    """The standard pyc of ``source`` if it had none up to date; else None."""
    pyc = Path(importlib.util.cache_from_source(str(source)))
    if _is_fresh(source, pyc):
        return None
    try:
        py_compile.compile(
            str(source),
            cfile=str(pyc),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
        )
    except (OSError, py_compile.PyCompileError):
        return None
    return pyc


def warm(config: pytest.Config) -> list[Path]:
    """Write the missing caches; return the files written (for :func:`remove`)."""
    written: list[Path] = []
    # pytest's own root: the paths its workers import the test modules by.
    for folder in ("intercom_events_cli", "tests", "benchmarks"):
        for source in sorted((config.rootpath / folder).rglob("*.py")):
            if folder == "tests" and _is_test_module(source):
                pyc = _rewrite_test_module(config, source)
            else:
                pyc = _compile_module(source)
            if pyc is not None:
                written.append(pyc)
    return written


def remove(written: list[Path]) -> None:
    """Delete ``written``, and the ``__pycache__`` folders that are left empty."""
    for pyc in written:
        pyc.unlink(missing_ok=True)
    for folder in {pyc.parent for pyc in written}:
        try:
            folder.rmdir()
        except OSError:
            pass  # not empty: it held bytecode before this run
