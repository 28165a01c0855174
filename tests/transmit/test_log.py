"""The delivery log: chain, signed checkpoints, and every kind of tampering named by entry."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

import transmit

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def filled(tmp_path: Path, count: int = 12) -> transmit.DeliveryLog:
    log = transmit.DeliveryLog(tmp_path / "log.sqlite", tmp_path / "keys" / "log.pem")
    for n in range(1, count + 1):
        log.append(
            "delivery",
            now=NOW,
            carrier="colonial" if n % 2 else "unum",
            outcome="delivered",
            isa13=f"{n:09d}",
            plaintext_sha256=f"{n:064x}",
            member_count=n,
        )
    log.checkpoint(now=NOW)
    return log


def raw(log: transmit.DeliveryLog) -> sqlite3.Connection:
    """What an attacker with the database file can do: drop the triggers and edit rows."""
    db = sqlite3.connect(log.db_path, isolation_level=None)
    for trigger in (
        "entries_no_update",
        "entries_no_delete",
        "checkpoints_no_update",
        "checkpoints_no_delete",
    ):
        db.execute(f"DROP TRIGGER {trigger}")
    return db


def test_intact_log_verifies(tmp_path: Path) -> None:
    log = filled(tmp_path)
    report = log.verify()
    assert report.ok and report.entries == 12 and report.checkpoints == 12  # one per entry


def test_code_cannot_update_or_delete(tmp_path: Path) -> None:
    log = filled(tmp_path, 3)
    db = sqlite3.connect(log.db_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE entries SET body = '{}' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM entries WHERE seq = 1")


def test_tampered_row_is_named(tmp_path: Path) -> None:
    log = filled(tmp_path)
    db = raw(log)
    body = json.loads(db.execute("SELECT body FROM entries WHERE seq = 5").fetchone()[0])
    body["member_count"] = 999
    db.execute("UPDATE entries SET body = ? WHERE seq = 5", (json.dumps(body),))
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 5 and "altered" in report.problem


def test_deleted_row_is_named(tmp_path: Path) -> None:
    log = filled(tmp_path)
    raw(log).execute("DELETE FROM entries WHERE seq = 4")
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 4 and "missing" in report.problem


def test_rewritten_chain_is_caught_by_the_signed_checkpoint(tmp_path: Path) -> None:
    """Recomputing every hash after an edit fools the chain, not the signature."""
    log = filled(tmp_path)
    db = raw(log)
    rows = db.execute("SELECT seq, body FROM entries ORDER BY seq").fetchall()
    previous = transmit.log.GENESIS
    for seq, text in rows:
        body = json.loads(text)
        if seq == 3:
            body["outcome"] = "failed"
        entry_hash = transmit.log.chain_hash(previous, body)
        db.execute(
            "UPDATE entries SET body = ?, prev_hash = ?, entry_hash = ? WHERE seq = ?",
            (transmit.log.canonical(body), previous, entry_hash, seq),
        )
        previous = entry_hash
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 3 and "signed checkpoint" in report.problem


def test_truncated_tail_is_caught(tmp_path: Path) -> None:
    log = filled(tmp_path)
    raw(log).execute("DELETE FROM entries WHERE seq >= 11")
    report = log.verify()
    assert not report.ok and report.first_bad_seq == 11


def test_forged_checkpoint_signature(tmp_path: Path) -> None:
    log = filled(tmp_path)
    raw(log).execute("UPDATE checkpoints SET signature = ? WHERE entry_count = 10", ("AAAA" * 22,))
    report = log.verify()
    assert not report.ok and "signature" in report.problem


def _append_many(args: tuple[str, str, int]) -> None:
    db_path, key_path, worker = args
    log = transmit.DeliveryLog(Path(db_path), Path(key_path))
    for n in range(20):
        log.append("attempt", carrier=f"c{worker}", attempt=n)


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    log = filled(tmp_path, 1)
    with multiprocessing.get_context("fork").Pool(3) as pool:
        pool.map(_append_many, [(str(log.db_path), str(log.signing_key_path), w) for w in range(3)])
    report = log.verify()
    assert report.ok and report.entries == 61


def test_exports_and_report(tmp_path: Path) -> None:
    import csv
    import io

    log = filled(tmp_path)
    entries = log.entries(carrier="colonial")
    assert [e.seq for e in entries] == [1, 3, 5, 7, 9, 11]
    buffer = io.StringIO()
    log.export_csv(buffer, entries)
    rows = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert [r["isa13"] for r in rows] == [f"{n:09d}" for n in (1, 3, 5, 7, 9, 11)]
    buffer = io.StringIO()
    log.export_json(buffer, entries)
    assert json.loads(buffer.getvalue())[0]["entry_hash"] == entries[0].entry_hash
    page = log.render_html(tmp_path / "audit.html", log.entries(), log.verify(), NOW).read_text()
    assert "intact" in page and "colonial" in page and entries[0].entry_hash in page
    assert "BEGIN PUBLIC KEY" in log.export_public_key()
