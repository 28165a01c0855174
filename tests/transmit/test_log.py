"""The delivery log: chain, signed checkpoints, and every kind of tampering named by entry."""

from __future__ import annotations

import itertools
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


def witnessed_log(tmp_path: Path, **options: object) -> transmit.DeliveryLog:
    return transmit.DeliveryLog(
        tmp_path / "log.sqlite",
        tmp_path / "keys" / "log.pem",
        witness_dir=tmp_path / "witness",
        **options,  # type: ignore[arg-type]
    )


def witness_lines(log: transmit.DeliveryLog) -> list[dict[str, object]]:
    assert log.witness_path is not None
    return [json.loads(line) for line in log.witness_path.read_text().splitlines()]


def test_reading_creates_nothing(tmp_path: Path) -> None:
    log = witnessed_log(tmp_path)
    assert log.entries() == [] and log.get(1) is None and log.head() is None
    report = log.verify()
    assert report.ok and report.entries == 0
    assert log.checkpoint(now=NOW) == 0
    with pytest.raises(transmit.LogError, match="missing"):
        log.export_public_key()
    assert list(tmp_path.iterdir()) == []


def test_every_checkpoint_is_chained_and_witnessed(tmp_path: Path) -> None:
    log = witnessed_log(tmp_path)
    for n in range(1, 6):
        log.append("attempt", now=NOW, carrier="colonial", attempt=n)
    lines = witness_lines(log)
    assert [line["count"] for line in lines] == [1, 2, 3, 4, 5]
    assert lines[0]["prev"] == transmit.log.GENESIS
    for before, after in itertools.pairwise(lines):
        assert after["prev"] == transmit.log.checkpoint_hash(
            int(before["count"]),  # type: ignore[call-overload]
            str(before["head"]),
            str(before["prev"]),
        )
    head = log.head()
    assert head is not None and lines[-1] == {**head.as_json()}
    assert head.head == log.entries()[-1].entry_hash and head.signed_by(log.public_key())
    assert set(lines[-1]) == {
        "count",
        "head",
        "prev",
        "signature",
        "signed_at",
        "key",
        "checkpoint_hash",
    }
    assert log.verify().witnessed == 5


def test_a_witness_line_lost_in_a_crash_is_written_by_the_next_append(tmp_path: Path) -> None:
    """The checkpoint commits before its witness line: a crash between leaves the log one
    ahead of its witness, which is no tampering and is caught up on the next write."""
    log = witnessed_log(tmp_path)
    for n in range(3):
        log.append("attempt", now=NOW, attempt=n)
    assert log.witness_path is not None
    lines = log.witness_path.read_text().splitlines()
    log.witness_path.write_text("\n".join(lines[:-1]) + "\n")
    report = log.verify()
    assert report.ok and report.witnessed == 2
    log.append("attempt", now=NOW, attempt=3)
    assert [line["count"] for line in witness_lines(log)] == [1, 2, 3, 4]
    assert log.verify().ok


def test_concurrent_appends_keep_one_witness(tmp_path: Path) -> None:
    log = witnessed_log(tmp_path)
    log.append("attempt", now=NOW, attempt=0)
    with multiprocessing.get_context("fork").Pool(3) as pool:
        pool.map(_append_witnessed, [(str(tmp_path), w) for w in range(3)])
    assert [line["count"] for line in witness_lines(log)] == list(range(1, 62))
    report = log.verify()
    assert report.ok and report.entries == 61 and report.witnessed == 61


def _append_witnessed(args: tuple[str, int]) -> None:
    folder, worker = args
    log = witnessed_log(Path(folder))
    for n in range(20):
        log.append("attempt", carrier=f"c{worker}", attempt=n)


def test_the_end_of_a_run_announces_the_signed_head(tmp_path: Path) -> None:
    heads: list[transmit.Checkpoint] = []
    log = witnessed_log(tmp_path, announce=heads.append)
    log.append("attempt", now=NOW, attempt=1)
    assert heads == []  # per entry: witnessed, not announced
    log.append("delivery", now=NOW, outcome="delivered")
    assert log.checkpoint(now=NOW) == 2
    (head,) = heads
    assert head.text == f"2:{log.entries()[-1].entry_hash}" and head.signed_by(log.public_key())
    assert head.key == transmit.log.key_id(log.public_key())


LEGACY_SCHEMA = """
CREATE TABLE entries (seq INTEGER PRIMARY KEY, body TEXT NOT NULL, prev_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL);
CREATE TABLE checkpoints (id INTEGER PRIMARY KEY, entry_count INTEGER NOT NULL,
    head_hash TEXT NOT NULL, signed_at TEXT NOT NULL, signature TEXT NOT NULL);
"""


def legacy_log(tmp_path: Path, count: int) -> None:
    """A log written before checkpoints were chained: unchained `count:head` signatures."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "log.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "keys" / "log.pem").chmod(0o600)
    db = sqlite3.connect(tmp_path / "log.sqlite", isolation_level=None)
    db.executescript(LEGACY_SCHEMA)
    previous = transmit.log.GENESIS
    for seq in range(1, count + 1):
        body = {"seq": seq, "recorded_at": NOW.isoformat(), "event": "attempt"}
        entry_hash = transmit.log.chain_hash(previous, body)
        db.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?)",
            (seq, transmit.log.canonical(body), previous, entry_hash),
        )
        previous = entry_hash
        signature = base64.b64encode(key.sign(f"{seq}:{entry_hash}".encode())).decode()
        db.execute(
            "INSERT INTO checkpoints (entry_count, head_hash, signed_at, signature) "
            "VALUES (?, ?, ?, ?)",
            (seq, entry_hash, NOW.isoformat(), signature),
        )
    db.close()


def test_a_log_from_before_chained_checkpoints_verifies_and_continues(tmp_path: Path) -> None:
    legacy_log(tmp_path, 3)
    log = witnessed_log(tmp_path)
    assert log.verify().ok
    log.append("attempt", now=NOW, attempt=4)
    report = log.verify()
    assert report.ok and report.entries == 4 and report.witnessed == 4
    assert [line["count"] for line in witness_lines(log)] == [4]


def test_a_tampered_old_log_is_not_signed_over(tmp_path: Path) -> None:
    legacy_log(tmp_path, 3)
    db = sqlite3.connect(tmp_path / "log.sqlite", isolation_level=None)
    db.execute("UPDATE entries SET body = replace(body, 'attempt', 'delivery') WHERE seq = 2")
    db.close()
    log = witnessed_log(tmp_path)
    with pytest.raises(transmit.LogError, match="entry 2 was altered"):
        log.append("attempt", now=NOW, attempt=4)
    assert not log.verify().ok
