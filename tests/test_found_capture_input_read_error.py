"""Found in the capture bug hunt: an input file that fails while it is read.

A read error (EIO from a failing disk or a network mount, here ``/proc/self/mem``, whose
first read always fails) stopped ``batch`` with "internal error: OSError: [Errno 5]
Input/output error", exit 1, "this is a bug in ievents". It is a problem with the input,
said as one: what could not be read and why, exit 65, and nothing sent.
"""

from __future__ import annotations

import sys

import pytest
from conftest import RunCli
from fake_intercom import FakeIntercom

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="/proc/self/mem is Linux's"
)


@pytest.mark.parametrize("format", ["ndjson", "csv"])
def test_an_input_read_error_is_named_not_an_internal_error(
    run_cli_process: RunCli, fake: FakeIntercom, format: str
) -> None:
    result = run_cli_process("batch", "/proc/self/mem", "--format", format)
    assert result.code == 65, result
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("ievents: error:") and "Input/output error" in first, first
    assert fake.requests == []
