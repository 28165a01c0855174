"""CLI commands against a temporary workspace leave the repository exactly as it was: no
state/, no out/, nothing new or changed that git would see (ignored files included)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.workspace import REPO

# Caches any Python or tool run may write; they are not workspace state.
NOISE = (
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    ".import_linter_cache",
)


def git_status() -> list[str]:
    done = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(line for line in done.stdout.splitlines() if not any(n in line for n in NOISE))


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_cli_commands_leave_git_status_unchanged(tmp_path: Path) -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    before = git_status()
    home = tmp_path / "ws"
    env = {**os.environ, "PYTHONPATH": str(REPO), "EDI_HOME": str(home)}
    sample = REPO / "samples" / "out" / "ACME_colonial_834_20261124_000000001.834"

    def edi(*args: str) -> int:
        return subprocess.run(
            [sys.executable, "-m", "edi", *args], cwd=REPO, env=env, capture_output=True
        ).returncode

    assert edi("init", str(home)) == 0
    shutil.copytree(REPO / "carriers", home / "carriers", dirs_exist_ok=True)
    source = str(REPO / "samples" / "plansource")
    assert edi("generate", "-c", "colonial", "--source", source, "--as-of", "2026-11-24") == 0
    assert edi("diff", "-c", "colonial", "--source", source, "--as-of", "2026-11-24") == 0
    assert edi("validate", str(sample), "-c", "colonial") == 0
    assert edi("show", str(sample)) == 0
    assert edi("status") == 0
    assert edi("log", "list") == 0
    assert edi("log", "verify") == 0
    assert edi("schedules", "list") == 0
    assert edi("baseline", "show", "-c", "colonial") == 0
    assert (home / "out" / "colonial").is_dir(), "the commands did write: into the workspace"
    assert git_status() == before
