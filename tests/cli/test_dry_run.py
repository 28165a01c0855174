"""`edi run --dry-run`: generate, validate, encrypt and say what would be sent; deliver nothing,
log nothing, consume no control number, propose no baseline."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from edi import pgstore
from tests.support.servers import Sshd
from tests.support.workspace import edi, log_entries

AS_OF = ["--as-of", "2026-11-24"]


def store_url(home: Path) -> str | None:
    """The shared store's URL when the workspace has one (`pytest --store postgres`)."""
    return os.environ["EDI_STORE_URL"] if "[store]" in (home / "edi.toml").read_text() else None


def control_rows(home: Path) -> list[tuple[object, ...]]:
    url = store_url(home)
    if url is not None:
        with psycopg.connect(url) as conn:
            return sorted(
                conn.execute(
                    "SELECT carrier, fingerprint, control_number, created_at "
                    "FROM edi_control_numbers"
                ).fetchall()
            )
    path = home / "state" / "control.sqlite"
    if not path.exists():
        return []
    with closing(sqlite3.connect(path)) as db:
        return sorted(db.execute("SELECT * FROM control_numbers").fetchall())


def state_digest(home: Path) -> dict[str, str]:
    """Every file under state/ with its content hash (sqlite WAL files included), and with a
    store every row of its tables."""
    state = home / "state"
    found = {
        str(p.relative_to(state)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(state.rglob("*"))
        if p.is_file() and not p.name.endswith((".lock", "-shm"))
    }
    url = store_url(home)
    if url is not None:
        with psycopg.connect(url) as conn:
            for table in (*pgstore.STATE_TABLES, *pgstore.LOG_TABLES, "edi_runs"):
                rows = sorted(repr(row) for row in conn.execute(f"SELECT * FROM {table}"))
                found[table] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return found


def test_dry_run_on_a_fresh_workspace_writes_nothing(
    live_home: Path, sshd: Sshd, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = edi(capsys, "run", "-c", "colonial", *AS_OF, "--dry-run")
    assert code == 0, err
    remote = out.strip().splitlines()[-1]
    assert remote.startswith(f"{sshd.inbox}/") and remote.endswith(".834.pgp")
    assert "dry run" in err and "nothing was sent, logged or reserved" in err
    assert "ISA13 000000001 would be used" in err
    assert list(sshd.inbox.iterdir()) == []
    assert not (live_home / "state").exists(), "no control number, baseline or log was created"
    assert not (live_home / "out").exists()


def test_dry_run_after_deliveries_changes_no_state(
    live_home: Path, sshd: Sshd, capsys: pytest.CaptureFixture[str]
) -> None:
    assert edi(capsys, "run", "-c", "colonial", *AS_OF)[0] == 0
    before_rows, before_state = control_rows(live_home), state_digest(live_home)
    before_log = log_entries(capsys, live_home)
    before_inbox = sorted(p.name for p in sshd.inbox.iterdir())
    assert len(before_rows) == 1

    code, out, err = edi(
        capsys, "run", "-c", "colonial", *AS_OF, "--type", "audit", "--dry-run", "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["dry_run"] is True and summary["outcome"] == "would-send"
    assert summary["generated"]["file_type"] == "audit"
    assert summary["generated"]["isa13"] == "000000002"
    assert summary["findings"] == [] and summary["generated"]["valid"] is True
    assert summary["remote_path"] == f"{sshd.inbox}/{summary['encrypted_file']}"

    assert control_rows(live_home) == before_rows, "no control number consumed"
    assert state_digest(live_home) == before_state
    assert log_entries(capsys, live_home) == before_log
    assert sorted(p.name for p in sshd.inbox.iterdir()) == before_inbox

    # The dry run told the truth: the real run uses the ISA13 it announced.
    code, out, _ = edi(capsys, "run", "-c", "colonial", *AS_OF, "--type", "audit", "--json")
    assert code == 0 and json.loads(out)["isa13"] == "000000002"


def test_dry_run_of_delivered_content_says_nothing_would_be_sent(
    live_home: Path, sshd: Sshd, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = edi(capsys, "run", "-c", "colonial", *AS_OF, "--json")
    delivered = json.loads(out)["remote_path"]
    code, out, err = edi(capsys, "run", "-c", "colonial", *AS_OF, "--dry-run")
    assert code == 0
    assert "a real run would send nothing" in err
    assert out.strip() == delivered


def test_dry_run_needs_delivery_settings(
    edi_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = edi(capsys, "run", "-c", "colonial", *AS_OF, "--dry-run")
    assert code == 2 and "[profile-no-delivery]" in err
    assert not (edi_home / "state").exists()
