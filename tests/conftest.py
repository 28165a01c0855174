"""Fixture modules are plugins so each area keeps its own servers and data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.support.workspace",
    "tests.support.servers",
    "tests.support.plansource_server",
]

REPO = Path(__file__).resolve().parents[1]
# What a test could leave in the repository's own (demo) workspace.
GUARDED = ("state", "out")


def _footprint() -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for name in GUARDED:
        root = REPO / name
        if root.exists():
            for path in [root, *root.rglob("*")]:
                if path.is_file() or path == root:
                    stat = path.lstat()
                    found[str(path.relative_to(REPO))] = (stat.st_size, stat.st_mtime_ns)
    return found


@pytest.fixture(autouse=True)
def _repository_workspace_untouched() -> Iterator[None]:
    """Tests use temporary workspaces only: nothing may appear in or change under the
    repository's state/ or out/ (a test once reserved a control number a later `edi generate`
    in the repository reused)."""
    before = _footprint()
    yield
    after = _footprint()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"the test wrote into the repository's workspace: {changed}"
