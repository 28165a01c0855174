"""A workspace with the sample export as source, and our own full colonial file in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.workspace import REPO, SAMPLES, edi

NOW = "2026-11-24T02:00:00+00:00"
AS_OF = "2026-11-24"


@pytest.fixture
def recon_home(edi_home: Path) -> Path:
    (edi_home / "edi.toml").write_text(f'source = "{SAMPLES}"\nsample_data = true\n')
    return edi_home


@pytest.fixture
def our_file(recon_home: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """What we would send colonial: the full file at the as-of date (validated by generate)."""
    return full_file(capsys, recon_home)


def full_file(capsys: pytest.CaptureFixture[str], home: Path) -> Path:
    code, out, err = edi(
        capsys,
        "--now",
        NOW,
        "generate",
        "--carrier",
        "colonial",
        "--type",
        "full",
        "--as-of",
        AS_OF,
        "--out",
        str(home / "out"),
        "--home",
        str(home),
    )
    assert code == 0, err
    return Path(out.strip())


def reconcile(
    capsys: pytest.CaptureFixture[str], home: Path, roster: Path, *extra: str, now: str = NOW
) -> tuple[int, str, str]:
    return edi(
        capsys,
        "--now",
        now,
        "reconcile",
        "--carrier",
        "colonial",
        str(roster),
        "--as-of",
        AS_OF,
        "--home",
        str(home),
        *extra,
    )


__all__ = ["AS_OF", "NOW", "REPO", "full_file", "reconcile"]
