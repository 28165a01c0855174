"""Reconciliation's discrepancies in the shared PostgreSQL store: rows keyed by workspace, no
SQLite file, no PHI; another employer's credentials are refused; `edi store migrate` moves them;
the console reads them. (The lifecycle tests of test_reconcile.py run on this store too, under
`pytest --store postgres`.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from edi.console.data import ConsoleData
from edi.workspace import Workspace
from tests.reconcile.conftest import reconcile
from tests.reconcile.rosters import EXPECTED, plant_one_per_kind, roster_from
from tests.scaleout.helpers import grant_employers
from tests.support.postgres import PostgresServer
from tests.support.servers import use_postgres_store
from tests.support.workspace import edi

PHI = ("PLANTEDNAME", "999887777", "99 PLANTED RD", "19820715", "O'BRIEN", "901311001")
RECONCILE_TABLES = ("edi_discrepancies", "edi_reconciliations", "edi_rosters")


@pytest.fixture
def pg_home(recon_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """recon_home (workspace 'acme') with its state in the store; our_file is made after it."""
    use_postgres_store(recon_home, pg_url, monkeypatch)
    return recon_home


def rows(url: str, table: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT * FROM {table}").fetchall()


def listed(capsys: pytest.CaptureFixture[str], home: Path) -> list[dict[str, object]]:
    code, out, err = edi(
        capsys, "discrepancies", "list", "--status", "all", "--json", "--home", str(home)
    )
    assert code == 0, err
    found: list[dict[str, object]] = json.loads(out)
    return found


def test_discrepancies_live_in_the_store_without_phi(
    pg_home: Path, our_file: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    planted = roster_from(our_file, pg_home / "in" / "planted.834", plant_one_per_kind)
    code, out, err = reconcile(capsys, pg_home, planted, "--json")
    assert code == 1, err
    ids = {d["id"] for d in json.loads(out)["discrepancies"]}
    assert len(ids) == len(EXPECTED)
    stored = rows(pg_url, "edi_discrepancies")
    assert {row[0] for row in stored} == {"acme"} and {row[1] for row in stored} == ids
    assert [row[2] for row in rows(pg_url, "edi_reconciliations")] == ["colonial"]
    assert not (pg_home / "state" / "discrepancies.sqlite").exists()
    dump = "\n".join(repr(rows(pg_url, table)) for table in RECONCILE_TABLES)
    for value in PHI:
        assert value not in dump
    # What the CLI lists is what the store holds, notes and detail included.
    shown = listed(capsys, pg_home)
    assert {d["id"] for d in shown} == ids
    assert all(d["notes"][0]["status"] == "open" for d in shown)  # type: ignore[index]
    # The console reads the same rows from the store.
    console = ConsoleData(Workspace.open(pg_home), lambda: datetime.now(UTC))
    seen = console.discrepancies()
    assert seen is not None and {d["id"] for d in seen} == ids
    assert all(d["notes"] and "found by reconciliation" in d["notes"][0] for d in seen)


def test_the_console_shows_not_reconciled_before_a_run(pg_home: Path) -> None:
    console = ConsoleData(Workspace.open(pg_home), lambda: datetime.now(UTC))
    assert console.discrepancies() is None
    assert console.discrepancy_groups()["reconciled"] is False


def test_another_employers_credentials_are_refused(
    pg_home: Path,
    our_file: Path,
    pg_url: str,
    postgres_server: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    planted = roster_from(our_file, pg_home / "in" / "planted.834", plant_one_per_kind)
    assert reconcile(capsys, pg_home, planted, "--json")[0] == 1
    passwords = {name: f"{name}-Secret-9" for name in ("acme", "globex")}
    urls = grant_employers(capsys, monkeypatch, postgres_server, pg_url, passwords)
    with psycopg.connect(urls["globex"]) as conn:
        for table in RECONCILE_TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)
    # acme's own role sees its discrepancies; globex's role on acme's workspace is refused.
    monkeypatch.setenv("EDI_STORE_URL", urls["acme"])
    assert len(listed(capsys, pg_home)) == len(EXPECTED)
    monkeypatch.setenv("EDI_STORE_URL", urls["globex"])
    code, out, err = edi(capsys, "discrepancies", "list", "--json", "--home", str(pg_home))
    assert code == 1 and "store-access-denied" in err and "workspace 'acme'" in err
    assert "Secret-9" not in out + err


def test_migrate_moves_discrepancies_into_the_store(
    recon_home: Path,
    our_file: Path,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    planted = roster_from(our_file, recon_home / "in" / "planted.834", plant_one_per_kind)
    _, out, _ = reconcile(capsys, recon_home, planted, "--json")  # on SQLite
    first = json.loads(out)["discrepancies"][0]["id"]
    home = ["--home", str(recon_home)]
    assert edi(capsys, "discrepancies", "ignore", first, "--note", "carrier agrees", *home)[0] == 0
    before = listed(capsys, recon_home)
    use_postgres_store(recon_home, pg_url, monkeypatch)
    code, out, err = edi(capsys, "store", "migrate", "--from-sqlite", *home)
    assert code == 0, err
    assert f"{len(EXPECTED)} discrepancies" in out
    assert listed(capsys, recon_home) == before  # statuses, notes and details as they were
    # The lifecycle carries on in the store: the ignored one stays ignored.
    _, out, _ = reconcile(capsys, recon_home, planted, "--json", now="2026-11-25T02:00:00+00:00")
    statuses = {d["id"]: d["status"] for d in json.loads(out)["discrepancies"]}
    assert statuses[first] == "ignored" and len(rows(pg_url, "edi_reconciliations")) == 2
