"""The SQLite-path benchmark at a tiny size, against HEAD, so it cannot rot (no timing ratio is
asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.bench_sqlite_path import COMMANDS, REPO, TREES, main


@pytest.fixture
def scratch() -> Iterator[Path]:
    """Short: gpg-agent's socket path must fit in a unix socket address."""
    folder = Path(tempfile.mkdtemp(prefix="bsq-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_sqlite_path_bench_times_both_commands_in_both_trees(
    scratch: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.json"
    main(
        [
            "--ref",
            "HEAD",
            "--sizes",
            "20",
            "--repeat",
            "1",
            "--scratch",
            str(scratch),
            "--out",
            str(out),
        ]
    )
    results = json.loads(out.read_text())
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert results["reference_commit"] == results["current_commit"] == head
    assert results["sizes"] == [20] and results["repeat"] == 1
    (row,) = results["rows"]
    assert row["employees"] == 20
    for command in COMMANDS:
        for tree in TREES:
            assert row[command][f"{tree}_s"] > 0
            assert row[command][f"{tree}_cpu_s"] > 0
            assert len(row[command]["wall_s"][tree]) == 1
    assert set(results["load_avg_1m"]) == {"start", "end"}
    assert not (scratch / "ref-tree").exists()  # the reference worktree is removed
    worktrees = subprocess.run(
        ["git", "-C", str(REPO), "worktree", "list", "--porcelain"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(scratch) not in worktrees
