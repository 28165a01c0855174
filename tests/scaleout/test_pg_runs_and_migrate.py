"""`edi run` with a PostgreSQL-configured workspace against the real sshd, and `edi store migrate
--from-sqlite` moving a workspace's control numbers, baselines and delivery log into the store."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from edi import pgmigrate, store
from edi.delivery_config import delivery_log
from edi.workspace import Workspace
from edi.x12.control import ControlNumbers
from tests.scaleout.helpers import add_store
from tests.support.servers import CarrierKey, Sshd
from tests.support.workspace import assert_valid_834, edi, log_entries

AS_OF = ("--as-of", "2026-11-24")
NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
STATE_FILES = ("control.sqlite", "baseline.sqlite", "delivery-log.sqlite")
TABLES = (
    "edi_control_numbers",
    "edi_control_floor",
    "edi_baseline_members",
    "edi_baseline_proposed",
    "edi_baseline_history",
    "edi_log_entries",
    "edi_log_checkpoints",
    "edi_migrations",
)


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
            for table in TABLES
        }


def remote(sshd: Sshd) -> list[Path]:
    return sorted(p for p in sshd.inbox.iterdir() if not p.name.startswith("."))


def with_store(home: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    add_store(home, "acme")
    monkeypatch.setenv("EDI_STORE_URL", url)
    store.init_schema(url)


def test_edi_run_on_a_postgres_workspace_delivers_once_and_the_log_verifies(
    live_home: Path,
    sshd: Sshd,
    carrier_key: CarrierKey,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with_store(live_home, pg_url, monkeypatch)
    code, out, err = edi(capsys, "run", "--carrier", "colonial", *AS_OF)
    assert code == 0, err
    (delivered,) = remote(sshd)
    plain = live_home / "decrypted.834"
    plain.write_bytes(carrier_key.decrypt(delivered))
    assert_valid_834(plain)
    code, out, err = edi(capsys, "run", "--carrier", "colonial", *AS_OF)
    assert code == 0 and "already delivered" in err and "nothing was sent" in err
    assert remote(sshd) == [delivered]
    outcomes = [e["outcome"] for e in log_entries(capsys, live_home) if e["event"] == "delivery"]
    assert outcomes == ["delivered", "already-delivered"]
    code, out, _ = edi(capsys, "log", "verify", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["witnessed"] == report["entries"]
    rows = counts(pg_url)
    assert rows["edi_control_numbers"] == 1 and rows["edi_baseline_members"] > 0
    assert rows["edi_log_entries"] == report["entries"]
    assert not [name for name in STATE_FILES if (live_home / "state" / name).exists()]
    code, out, _ = edi(capsys, "baseline", "show", "--carrier", "colonial")
    assert code == 0 and json.loads(out)["members"] == rows["edi_baseline_members"]


def test_migrate_moves_a_workspace_and_its_runs_carry_on(
    live_home: Path,
    sshd: Sshd,
    carrier_key: CarrierKey,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert edi(capsys, "run", "--carrier", "colonial", *AS_OF)[0] == 0  # on SQLite
    (delivered,) = remote(sshd)
    before = log_entries(capsys, live_home)
    code, out, _ = edi(capsys, "log", "head")
    sqlite_head = out.strip().splitlines()[0]
    with_store(live_home, pg_url, monkeypatch)
    code, out, err = edi(capsys, "store", "migrate", "--from-sqlite")
    assert code == 0, err
    assert f"{len(before)} log entries" in out and f"head {sqlite_head}" in out
    assert "1 control numbers" in out
    rows = counts(pg_url)
    assert rows["edi_log_entries"] == len(before) and rows["edi_migrations"] == 1
    # The store's log is the same log: same entries, same head, the witness goes on.
    assert log_entries(capsys, live_home) == before
    assert edi(capsys, "log", "head")[1].strip().splitlines()[0] == sqlite_head
    assert edi(capsys, "log", "verify")[0] == 0
    # The migrated log knows the file was delivered; the migrated baseline and control
    # numbers make the same file again.
    code, _, err = edi(capsys, "run", "--carrier", "colonial", *AS_OF)
    assert code == 0 and "already delivered" in err
    assert remote(sshd) == [delivered]
    assert counts(pg_url)["edi_control_numbers"] == 1
    assert edi(capsys, "log", "verify")[0] == 0
    # A second migration is refused and changes nothing.
    rows = counts(pg_url)
    code, _, err = edi(capsys, "store", "migrate", "--from-sqlite")
    assert code == 2 and "migrate-already-done" in err and "already migrated" in err
    assert counts(pg_url) == rows


@pytest.fixture
def sqlite_state(edi_home: Path) -> Iterator[Workspace]:
    (edi_home / "edi.toml").write_text("")
    ws = Workspace.open(edi_home)
    ControlNumbers(ws.state_dir / "control.sqlite").allocate("colonial", "fp", NOW)
    log = delivery_log(ws)
    for n in range(5):
        log.append("delivery", now=NOW, carrier="colonial", outcome="delivered", isa13=str(n))
    log.checkpoint(now=NOW)
    yield ws


def test_migrate_refuses_a_tampered_sqlite_log(
    sqlite_state: Workspace,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with closing(sqlite3.connect(sqlite_state.state_dir / "delivery-log.sqlite")) as db:
        db.execute("DROP TRIGGER entries_no_update")
        db.execute("UPDATE entries SET body = replace(body, 'delivered', 'failed') WHERE seq = 2")
        db.commit()
    with_store(sqlite_state.home, pg_url, monkeypatch)
    code, _, err = edi(capsys, "store", "migrate", "--from-sqlite")
    assert code == 1 and "migrate-source-log-broken" in err and "entry 2 was altered" in err
    assert set(counts(pg_url).values()) == {0}


def test_a_copy_that_does_not_verify_in_the_store_leaves_it_unchanged(
    sqlite_state: Workspace,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = pgmigrate.log_rows

    def garbled(path: Path) -> Iterator[tuple[Any, ...]]:
        for seq, body, prev, entry_hash in real(path):
            yield seq, body.replace('"isa13":"3"', '"isa13":"7"'), prev, entry_hash

    monkeypatch.setattr(pgmigrate, "log_rows", garbled)
    with_store(sqlite_state.home, pg_url, monkeypatch)
    code, _, err = edi(capsys, "store", "migrate", "--from-sqlite")
    assert code == 1 and "migrate-verify-failed" in err and "entry 4 was altered" in err
    assert set(counts(pg_url).values()) == {0}  # not even the control numbers
    monkeypatch.setattr(pgmigrate, "log_rows", real)
    code, out, err = edi(capsys, "store", "migrate", "--from-sqlite")
    assert code == 0, err
    assert "1 control numbers" in out and "5 log entries" in out


def test_migrate_refuses_a_store_that_already_holds_the_workspace(
    sqlite_state: Workspace,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with_store(sqlite_state.home, pg_url, monkeypatch)
    from edi import stores

    stores.control_numbers(Workspace.open(sqlite_state.home)).allocate("unum", "x", NOW)
    code, _, err = edi(capsys, "store", "migrate", "--from-sqlite")
    assert code == 2 and "migrate-store-not-empty" in err and "edi_control_numbers" in err
    assert counts(pg_url)["edi_log_entries"] == 0
