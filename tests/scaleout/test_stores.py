"""The store interface, each test run on both implementations: SQLite (a workspace without
`[store]`, today's files under state/) and PostgreSQL (a workspace with `[store]`, rows keyed by
its name in a real server)."""

from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

import transmit
from edi import store, stores
from edi.delivery_config import delivery_log
from edi.members import CoverageLine, Member, Person
from edi.pgstore import PgBaselineStore, PgControlNumbers, PgLogBackend
from edi.workspace import Workspace
from edi.x12.control import ControlNumbers, LoggedNumber
from tests.scaleout.helpers import add_store

NOW = datetime(2026, 11, 24, 2, 0, 30, tzinfo=UTC)
STATE_FILES = ("control.sqlite", "baseline.sqlite", "delivery-log.sqlite")


@pytest.fixture(params=["sqlite", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ws(kind: str, edi_home: Path, request: pytest.FixtureRequest) -> Workspace:
    (edi_home / "edi.toml").write_text("")
    if kind == "postgres":
        url = request.getfixturevalue("pg_url")
        request.getfixturevalue("monkeypatch").setenv("EDI_STORE_URL", url)
        add_store(edi_home, "acme")
        store.init_schema(url)
    return Workspace.open(edi_home)


def other_workspace(ws: Workspace, name: str) -> Workspace:
    """A second employer on the same store (PostgreSQL) or in its own folder (SQLite)."""
    home = ws.home.parent / name
    (home / "carriers").mkdir(parents=True)
    text = f'name = "{name}"\n[store]\n' if ws.settings.store else ""
    (home / "edi.toml").write_text(text)
    return Workspace.open(home)


def member(number: int, *, ended: bool = False, dependent: bool = False) -> Member:
    line = CoverageLine(
        coverage_id=f"C{number}",
        lookup_code="LIFE",
        status="terminated" if ended else "active",
        maintenance="024" if ended else "021",
        insurance_line="AG",
        plan_code="BASIC",
        level="EMP",
        begin=date(2026, 1, 1),
        end=date(2026, 6, 30) if ended else None,
        premium=Decimal("12.50"),
    )
    return Member(
        subscriber_id=str(number),
        dependent_id=f"{number}01" if dependent else None,
        relationship="19" if dependent else "18",
        maintenance="024" if ended else "021",
        reason=None,
        benefit_status="A",
        employment_status="FT",
        member_id=str(number),
        group_number="G1",
        person=Person(last_name="X", first_name="Y", birthdate=date(1980, 1, 1)),
        dates=(("356", date(2026, 1, 1)),),
        coverages=(line,),
    )


def test_the_factory_chooses_by_the_workspace_settings(kind: str, ws: Workspace) -> None:
    chosen = (
        stores.control_numbers(ws),
        stores.baselines(ws),
        stores.log_backend(ws),
    )
    if kind == "sqlite":
        assert isinstance(chosen[0], ControlNumbers)
        assert isinstance(chosen[2], transmit.SqliteBackend)
    else:
        assert isinstance(chosen[0], PgControlNumbers)
        assert isinstance(chosen[1], PgBaselineStore)
        assert isinstance(chosen[2], PgLogBackend)


def test_control_numbers_once_per_content_and_never_reused(kind: str, ws: Workspace) -> None:
    numbers = stores.control_numbers(ws)
    first = numbers.allocate("colonial", "fp-a", NOW)
    assert (first.control_number, first.created_at) == (1, NOW.replace(second=0))
    assert numbers.allocate("colonial", "fp-a", NOW + timedelta(days=1)) == first
    assert numbers.allocate("colonial", "fp-b", NOW).control_number == 2
    assert numbers.allocate("unum", "fp-a", NOW).control_number == 1
    assert numbers.lookup("colonial", 2) == "fp-b"
    assert numbers.lookup("colonial", 3) is None
    # What the log knows and the store lacks comes back; new numbers start above it.
    logged = [LoggedNumber(7, "fp-g", NOW.isoformat()), LoggedNumber(9)]
    restoration = numbers.restore_from_log("colonial", logged)
    assert restoration is not None
    assert (restoration.restored, restoration.store_highest, restoration.log_highest) == (1, 2, 9)
    assert numbers.lookup("colonial", 7) == "fp-g"
    assert numbers.allocate("colonial", "fp-c", NOW).control_number == 10
    assert numbers.restore_from_log("colonial", logged) is None
    files = {name for name in STATE_FILES if (ws.state_dir / name).exists()}
    assert files == ({"control.sqlite"} if kind == "sqlite" else set())


def test_two_employers_never_share_control_numbers_or_baselines(ws: Workspace) -> None:
    other = other_workspace(ws, "globex")
    assert stores.control_numbers(ws).allocate("colonial", "fp", NOW).control_number == 1
    assert stores.control_numbers(ws).allocate("colonial", "fp2", NOW).control_number == 2
    assert stores.control_numbers(other).allocate("colonial", "fp2", NOW).control_number == 1
    assert stores.control_numbers(other).lookup("colonial", 2) is None
    stores.baselines(ws).propose("colonial", "f1", [member(1)])
    assert stores.baselines(ws).commit("colonial", "f1", NOW)
    assert stores.baselines(ws).has_baseline("colonial")
    assert not stores.baselines(other).has_baseline("colonial")
    assert stores.baselines(other).get("colonial", "S1") is None


def test_a_baseline_moves_only_when_its_file_is_committed(ws: Workspace) -> None:
    baselines = stores.baselines(ws)
    assert not baselines.has_baseline("colonial")
    proposal = baselines.proposal("colonial", "token-1")
    passed = list(proposal.tee([member(1), member(2), member(2, dependent=True)]))
    proposal.keep(member(3, ended=True))
    proposal.finish("fp-1")
    assert [m.key for m in passed] == ["S1", "S2", "D201"]
    assert not baselines.has_baseline("colonial")  # proposed, not delivered
    assert not baselines.commit("colonial", "fp-other", NOW)
    assert baselines.commit("colonial", "fp-1", NOW)
    assert baselines.get("colonial", "S1") == member(1)
    assert baselines.get("colonial", "S9") is None
    # A discarded proposal leaves the baseline where it was.
    dropped = baselines.proposal("colonial", "token-2")
    list(dropped.tee([replace(member(1), group_number="G2")]))
    dropped.discard()
    assert not baselines.commit("colonial", "token-2", NOW)
    assert baselines.get("colonial", "S1") == member(1)
    reader = baselines.lookup("colonial")
    try:
        assert reader.active_subscribers() == 2  # S3 has only an ended line; D201 a dependent
        assert reader.get("S2") == member(2)
        assert [m.key for m in reader.others()] == ["D201", "S1", "S3"]
    finally:
        reader.close()
    shown = baselines.show("colonial")
    assert (shown["members"], shown["subscribers"], shown["dependents"]) == (4, 3, 1)
    assert baselines.reset("colonial", "carrier reloaded", NOW) == 4
    assert not baselines.has_baseline("colonial")
    history = baselines.show("colonial")["history"]
    assert [h["action"] for h in history] == ["reset", "commit"]
    assert history[0]["reason"] == "carrier reloaded" and history[1]["fingerprint"] == "fp-1"


def test_a_log_has_the_same_chain_checkpoints_and_witness(kind: str, ws: Workspace) -> None:
    log = delivery_log(ws)
    assert not log.backend.exists() and log.entries() == [] and log.head() is None
    assert log.checkpoint(now=NOW) == 0 and not log.backend.exists()  # reading creates nothing
    for n in range(5):
        log.append("delivery", now=NOW, carrier="colonial", outcome="delivered", isa13=str(n))
    assert log.checkpoint(now=NOW) == 5
    entries = log.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == transmit.log.GENESIS
    assert all(
        e.entry_hash == transmit.log.chain_hash(e.prev_hash, e.body)
        and (i == 0 or e.prev_hash == entries[i - 1].entry_hash)
        for i, e in enumerate(entries)
    )
    assert log.get(3) == entries[2] and log.get(9) is None
    head = log.head()
    assert head is not None and head.text == f"5:{entries[-1].entry_hash}"
    assert log.witness_path is not None
    witnessed = [json.loads(line) for line in log.witness_path.read_text().splitlines()]
    assert [w["count"] for w in witnessed] == [1, 2, 3, 4, 5]
    report = log.verify(auditor_head=(5, entries[-1].entry_hash))
    assert report.ok and (report.entries, report.checkpoints, report.witnessed) == (5, 5, 5)
    assert log.last_delivery("colonial", "nope") is None
    files = {name for name in STATE_FILES if (ws.state_dir / name).exists()}
    assert files == ({"delivery-log.sqlite"} if kind == "sqlite" else set())


def test_a_log_cut_short_or_rolled_back_is_caught_by_its_witness(ws: Workspace) -> None:
    log = delivery_log(ws)
    for n in range(3):
        log.append("attempt", now=NOW, carrier="colonial", attempt=n)
    assert log.witness_path is not None
    kept = log.witness_path.read_text()
    log.append("attempt", now=NOW, carrier="colonial", attempt=4)
    # The log as it was at entry 3 while the witness records 4: a rollback.
    lines = kept.splitlines()
    log.witness_path.write_text("\n".join(lines[:2]) + "\n")
    report = log.verify()
    assert not report.ok  # the witness now lacks 2 of the log's checkpoints
    assert any("lacks 2 of the log's checkpoints" in p for p in report.problems)
    with pytest.raises(transmit.LogError) as refused:
        log.append("attempt", now=NOW, carrier="colonial", attempt=5)
    assert refused.value.code == "log-witness-behind"


def test_a_log_whose_witness_outlives_it_is_never_restarted(kind: str, ws: Workspace) -> None:
    """A store wiped (or a workspace pointed at an empty store) while its witness remains: the
    tool refuses to start a fresh log there."""
    log = delivery_log(ws)
    log.append("attempt", now=NOW, carrier="colonial")
    if kind == "sqlite":
        (ws.state_dir / "delivery-log.sqlite").unlink()
    else:
        fresh = other_workspace(ws, "acme-empty")
        (fresh.home / "state").mkdir()
        (fresh.home / "state" / "keys").symlink_to(ws.state_dir / "keys")
        (fresh.home / "state" / "witness").symlink_to(ws.state_dir / "witness")
        log = delivery_log(fresh)
    with pytest.raises(transmit.LogError) as refused:
        log.append("attempt", now=NOW, carrier="colonial")
    assert refused.value.code == "log-missing"
    assert "missing while its witness" in refused.value.message
    assert not log.verify().ok


@pytest.mark.parametrize("kind", ["postgres"], indirect=True)  # rows of several workspaces
def test_postgres_log_rows_are_keyed_by_workspace(ws: Workspace) -> None:
    other = other_workspace(ws, "globex")
    delivery_log(ws).append("attempt", now=NOW, carrier="colonial")
    delivery_log(other).append("attempt", now=NOW, carrier="colonial")
    delivery_log(other).append("attempt", now=NOW, carrier="unum")
    url = store.workspace_url(ws)
    assert url is not None
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT workspace, seq FROM edi_log_entries ORDER BY workspace, seq"
        ).fetchall()
    assert rows == [("acme", 1), ("globex", 1), ("globex", 2)]
    assert delivery_log(ws).verify().ok and delivery_log(other).verify().ok
    assert [e.seq for e in delivery_log(ws).entries()] == [1]


@pytest.mark.parametrize("kind", ["postgres"], indirect=True)
def test_a_postgres_baseline_copy_stays_in_the_workspace_and_goes_away(ws: Workspace) -> None:
    """The reader's local copy holds PHI: under state/scratch, owner-only, removed by close."""
    baselines = stores.baselines(ws)
    baselines.propose("colonial", "fp-1", [member(1)])
    assert baselines.commit("colonial", "fp-1", NOW)
    copies = ws.state_dir / "scratch" / ".baseline-copies"
    reader = baselines.lookup("colonial")
    try:
        (folder,) = list(copies.iterdir())
        assert folder.stat().st_mode & 0o077 == 0 and (folder / "baseline.sqlite").exists()
        assert reader.get("S1") is not None
    finally:
        reader.close()
    assert list(copies.iterdir()) == []


def _append_many(args: tuple[str, str, int]) -> None:
    home, url, worker = args
    if url:
        os.environ["EDI_STORE_URL"] = url
    log = delivery_log(Workspace.open(Path(home)))
    for n in range(15):
        log.append("attempt", now=NOW, carrier=f"c{worker}", attempt=n)


def test_concurrent_appends_from_several_processes_keep_one_chain(ws: Workspace) -> None:
    """Workers on several machines append to one employer's log: one chain, every entry signed
    and witnessed (the store's locks serialize them as SQLite's do on one host)."""
    delivery_log(ws).append("attempt", now=NOW, carrier="colonial")
    url = store.workspace_url(ws) or ""
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        pool.map(_append_many, [(str(ws.home), url, w) for w in range(3)])
    report = delivery_log(ws).verify()
    assert report.ok, report.problems
    assert (report.entries, report.checkpoints, report.witnessed) == (46, 46, 46)
