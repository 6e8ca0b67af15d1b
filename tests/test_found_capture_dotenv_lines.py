"""Found in the capture bug hunt: a ``.env`` line that cannot be parsed.

An unclosed quote on the token's line made python-dotenv print its own line on stderr
("python-dotenv could not parse statement starting at line 2", in no ievents format,
naming no file), and the run then said the ``.env`` had no token at all.
"""

from __future__ import annotations

from pathlib import Path

from conftest import RunCli
from fake_intercom import FakeIntercom


def test_an_unparsable_dotenv_line_is_an_ievents_warning_naming_file_and_line(
    run_cli_process: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    dotenv = tmp_path / "work" / ".env"
    dotenv.write_text('INTERCOM_API_VERSION=2.14\nINTERCOM_ACCESS_TOKEN="tok_unclosed_quote_1\n')
    dotenv.chmod(0o600)

    result = run_cli_process("send", "ev", "--user-id", "1", env={"INTERCOM_ACCESS_TOKEN": None})

    assert result.code == 78, result
    lines = result.stderr.splitlines()
    assert all(line.startswith(("ievents: ", "  hint: ")) for line in lines), result.stderr
    warning = next(line for line in lines if line.startswith("ievents: warning:"))
    assert str(dotenv) in warning and "line 2" in warning, warning
    assert fake.requests == []
