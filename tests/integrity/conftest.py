"""Each integrity test gives its child runs their own system temp folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def child_system_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PYTEST_CURRENT_TEST_TMP", str(tmp_path))
    yield tmp_path / "system-temp"
