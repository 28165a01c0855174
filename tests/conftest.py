"""Fixture modules are plugins so each area keeps its own servers and data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.support.workspace",
    "tests.support.servers",
    "tests.support.plansource_server",
    "tests.support.postgres",
]

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="Where live workspaces keep control numbers, baselines and the delivery log.",
    )


# The store tests: both stores are their parameters or their subject, in the first pass.
STORE_TESTS = Path(__file__).parent / "scaleout"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under --store postgres, the tests that use a workspace (`edi_home`, and so `live_home`,
    `recon_home`, `workspace`; the console's `console_home`) run again with its state in
    PostgreSQL; tests about the SQLite files themselves (`sqlite_only`) and tests with no
    workspace are deselected (they ran in the SQLite pass)."""
    if config.getoption("--store") != "postgres":
        return

    def on_postgres(item: pytest.Item) -> bool:
        fixtures = getattr(item, "fixturenames", ())
        # Tests asking for pg_url themselves are PostgreSQL tests already.
        uses_a_workspace = "edi_home" in fixtures or "console_home" in fixtures
        if not uses_a_workspace or "pg_url" in fixtures:
            return False
        return (
            STORE_TESTS not in item.path.parents and item.get_closest_marker("sqlite_only") is None
        )

    dropped = [item for item in items if not on_postgres(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if on_postgres(item)]


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
