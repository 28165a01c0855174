"""Usage errors exit 2 in a few lines, never with a traceback (typer 0.29 bundles its own
click, whose errors the CLI must be the one to catch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["no-such-command"], "No such command"),
        (["--bogus"], "No such option"),
        (["generate"], "Missing option"),
        (["log", "list", "--bogus"], "No such option"),
    ],
)
def test_usage_errors_exit_2_without_a_traceback(
    edi_home: Path, args: list[str], says: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edi", "--home", str(edi_home), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and says in done.stderr
