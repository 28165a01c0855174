"""A workspace with the sample export as source, and our own full colonial file in it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import CarrierKey, make_carrier_key, name_the_store
from tests.support.workspace import (
    REPO,
    SAMPLES,
    check_no_sqlite_state,
    edi,
    keep_state_in_store,
    on_store_pass,
)

NOW = "2026-11-24T02:00:00+00:00"
AS_OF = "2026-11-24"


@pytest.fixture
def short_base() -> Iterator[Path]:
    """gpg-agent's socket lives in the GnuPG home and its path must stay under ~108 characters:
    pytest's tmp_path under xdist is too long for `state/gnupg` inside a workspace."""
    base = Path(tempfile.mkdtemp(prefix="edi-rc-", dir="/tmp"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def edi_home(
    short_base: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """The shared fixture's workspace, at a short path (see short_base)."""
    home = short_base / "ws"
    shutil.copytree(REPO / "carriers", home / "carriers")
    monkeypatch.setenv("EDI_HOME", str(home))
    store_pass = on_store_pass(request)
    if store_pass:
        keep_state_in_store(home, request, monkeypatch)
    yield home
    if store_pass:
        check_no_sqlite_state(home)


@pytest.fixture
def carrier_key(short_base: Path) -> CarrierKey:
    return make_carrier_key(short_base, "carrier")


@pytest.fixture
def recon_home(edi_home: Path, request: pytest.FixtureRequest) -> Path:
    """With `pytest --store postgres`, its discrepancies, control numbers, baselines and log
    live in a fresh PostgreSQL database instead of state/*.sqlite."""
    (edi_home / "edi.toml").write_text(f'source = "{SAMPLES}"\nsample_data = true\n')
    if request.config.getoption("--store") == "postgres":
        name_the_store(edi_home)  # edi_home put the state in the store, as the workers' role
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
