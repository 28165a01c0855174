"""Reconciliation end to end: planted differences, equal rosters, lifecycle, exit codes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from edi.validate import validate_file
from tests.reconcile.conftest import reconcile
from tests.reconcile.rosters import EXPECTED, found_keys, plant_one_per_kind, roster_from
from tests.support.workspace import edi

CONTRACT_KEYS = {
    "id",
    "kind",
    "subscriber_id",
    "member_id",
    "dependent_id",
    "coverage_id",
    "field",
    "severity",
    "status",
}
LATER = "2026-11-25T02:00:00+00:00"


def valid_roster(path: Path) -> Path:
    report = validate_file(path, None)
    assert report.valid, "\n".join(f.line() for f in report.findings)
    return path


def test_planted_differences_are_exactly_the_discrepancies(
    recon_home: Path, our_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    roster = valid_roster(
        roster_from(our_file, recon_home / "in" / "planted.834", plant_one_per_kind)
    )
    code, out, err = reconcile(capsys, recon_home, roster, "--json")
    assert code == 1, err
    report = json.loads(out)
    assert set(report) == {"carrier", "as_of", "summary", "discrepancies"}
    assert report["carrier"] == "colonial" and report["as_of"] == "2026-11-24"
    assert found_keys(report) == EXPECTED
    assert len(report["discrepancies"]) == len(EXPECTED)
    for row in report["discrepancies"]:
        assert set(row) == CONTRACT_KEYS
        assert row["status"] == "open"
    assert report["summary"] == {
        "missing-at-carrier": 1,
        "unexpected-at-carrier": 1,
        "terminated-but-active": 1,
        "plan-mismatch": 1,
        "tier-mismatch": 1,
        "effective-date-mismatch": 1,
        "demographic-mismatch": 5,
    }
    unexpected = next(d for d in report["discrepancies"] if d["kind"] == "unexpected-at-carrier")
    assert unexpected["member_id"] == "AW9999"
    severities = {d["field"]: d["severity"] for d in report["discrepancies"] if d["field"]}
    assert severities["birthdate"] == "error" and severities["address"] == "warning"


def test_equal_roster_has_none_and_resolves_the_earlier_ones(
    recon_home: Path, our_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    planted = roster_from(our_file, recon_home / "in" / "planted.834", plant_one_per_kind)
    code, out, _ = reconcile(capsys, recon_home, planted, "--json")
    assert code == 1
    earlier = {d["id"] for d in json.loads(out)["discrepancies"]}

    equal = valid_roster(roster_from(our_file, recon_home / "in" / "equal.834"))
    code, out, err = reconcile(capsys, recon_home, equal, "--json", now=LATER)
    assert code == 0, err
    report = json.loads(out)
    assert report["discrepancies"] == []
    assert set(report["summary"].values()) == {0}

    code, out, _ = edi(
        capsys, "discrepancies", "list", "--status", "resolved", "--json", "--home", str(recon_home)
    )
    assert code == 0
    resolved = json.loads(out)
    assert {row["id"] for row in resolved} == earlier
    for row in resolved:
        assert row["notes"][-1]["status"] == "resolved"
        assert row["notes"][-1]["note"] == "fixed at source or carrier"
        assert row["last_seen"] < row["notes"][-1]["at"]
    code, out, _ = edi(capsys, "discrepancies", "list", "--json", "--home", str(recon_home))
    assert json.loads(out) == []


def test_ids_are_stable_and_last_seen_moves(
    recon_home: Path, our_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    planted = roster_from(our_file, recon_home / "in" / "planted.834", plant_one_per_kind)
    _, first_out, _ = reconcile(capsys, recon_home, planted, "--json")
    _, second_out, _ = reconcile(capsys, recon_home, planted, "--json", now=LATER)
    first_ids = [d["id"] for d in json.loads(first_out)["discrepancies"]]
    assert first_ids == [d["id"] for d in json.loads(second_out)["discrepancies"]]
    assert len(set(first_ids)) == len(EXPECTED)
    code, out, _ = edi(capsys, "discrepancies", "show", first_ids[0], "--home", str(recon_home))
    assert code == 0
    shown = json.loads(out)
    assert shown["first_seen"].startswith("2026-11-24") and shown["last_seen"].startswith(
        "2026-11-25"
    )
    assert shown["status"] == "open" and len(shown["notes"]) == 1
    code, out, _ = edi(capsys, "discrepancies", "list", "--home", str(recon_home))
    assert code == 0 and len(out.splitlines()) == len(EXPECTED)
    assert all(i in out for i in first_ids) and "PLANTEDNAME" not in out


def test_ignored_stays_ignored_and_resolved_reopens(
    recon_home: Path, our_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    planted = roster_from(our_file, recon_home / "in" / "planted.834", plant_one_per_kind)
    _, out, _ = reconcile(capsys, recon_home, planted, "--json")
    rows = json.loads(out)["discrepancies"]
    errors = [d for d in rows if d["severity"] == "error"]
    home = ["--home", str(recon_home)]
    assert (
        edi(capsys, "discrepancies", "ignore", errors[0]["id"], "--note", "carrier agrees", *home)[
            0
        ]
        == 0
    )
    assert (
        edi(capsys, "discrepancies", "resolve", errors[1]["id"], "--note", "sent a fix", *home)[0]
        == 0
    )
    code, _, err = edi(capsys, "discrepancies", "ignore", errors[2]["id"], "--note", " ", *home)
    assert code == 2 and "note" in err

    _, out, _ = reconcile(capsys, recon_home, planted, "--json", now=LATER)
    statuses = {d["id"]: d["status"] for d in json.loads(out)["discrepancies"]}
    assert statuses[errors[0]["id"]] == "ignored"
    assert statuses[errors[1]["id"]] == "open"  # it came back: reopened
    _, out, _ = edi(capsys, "discrepancies", "show", errors[1]["id"], *home)
    assert [n["status"] for n in json.loads(out)["notes"]] == ["open", "resolved", "open"]

    # Ignoring every error leaves only warnings: reconcile then exits 0.
    for row in errors[1:]:
        edi(capsys, "discrepancies", "ignore", row["id"], "--note", "known", *home)
    code, out, _ = reconcile(capsys, recon_home, planted, "--json", now=LATER)
    assert code == 0
    assert {d["status"] for d in json.loads(out)["discrepancies"] if d["severity"] == "error"} == {
        "ignored"
    }


@pytest.mark.sqlite_only
def test_store_is_private_and_holds_no_values(
    recon_home: Path, our_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    planted = roster_from(our_file, recon_home / "in" / "planted.834", plant_one_per_kind)
    reconcile(capsys, recon_home, planted, "--json")
    store = recon_home / "state" / "discrepancies.sqlite"
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.parent).st_mode) == 0o700
    import sqlite3

    with sqlite3.connect(store) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(discrepancies)")]
        dump = "\n".join(db.iterdump())
    assert columns == [
        "id",
        "carrier",
        "kind",
        "subscriber_id",
        "member_id",
        "dependent_id",
        "coverage_id",
        "field",
        "severity",
        "status",
        "first_seen",
        "last_seen",
        "notes",
    ]
    for value in ("PLANTEDNAME", "999887777", "99 PLANTED RD", "19820715", "O'BRIEN", "901311001"):
        assert value not in dump
    assert not list((recon_home / "state").glob(".reconcile-*"))  # the scratch store is gone


def test_terminal_summary_and_show_names(
    recon_home: Path, our_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    planted = roster_from(our_file, recon_home / "in" / "planted.834", plant_one_per_kind)
    code, out, _ = reconcile(capsys, recon_home, planted)
    assert code == 1
    assert "demographic-mismatch" in out and "PLANTEDNAME" not in out
    code, out, _ = reconcile(capsys, recon_home, planted, "--show-names")
    assert code == 1
    assert "PLANTEDNAME" in out and "999887777" in out


def test_usage_errors(recon_home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = reconcile(capsys, recon_home, tmp_path / "absent.834")
    assert code == 2 and "does not exist" in err
    junk = tmp_path / "junk.834"
    junk.write_text("this is not an interchange")
    code, _, err = reconcile(capsys, recon_home, junk)
    assert code == 1 and "ISA" in err
    code, _, _ = edi(capsys, "discrepancies", "show", "feedface", "--home", str(recon_home))
    assert code == 2
    code, _, _ = edi(
        capsys, "discrepancies", "list", "--status", "bogus", "--home", str(recon_home)
    )
    assert code == 2


def test_a_large_roster_is_read_by_a_second_process(
    recon_home: Path,
    our_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from edi import reconcile as module

    monkeypatch.setattr(module, "PARALLEL_FROM_BYTES", 0)
    planted = roster_from(our_file, recon_home / "in" / "planted.834", plant_one_per_kind)
    code, out, _ = reconcile(capsys, recon_home, planted, "--json")
    assert code == 1
    assert found_keys(json.loads(out)) == EXPECTED
    not_834 = tmp_path / "ack.999"
    not_834.write_text(planted.read_text().replace("ST*834*", "ST*999*"))
    code, _, err = reconcile(capsys, recon_home, not_834)
    assert code == 1 and "roster-not-834" in err
    assert not list((recon_home / "state").glob(".reconcile-*"))


def test_held_subscribers_are_named_as_held(
    edi_home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tests.reconcile.conftest import full_file
    from tests.support.workspace import ExportBuilder

    profile = edi_home / "carriers" / "colonial.toml"
    profile.write_text(
        profile.read_text().replace(
            "send_contact = true\n", 'send_contact = true\non_bad_record = "quarantine"\n'
        )
    )
    export = ExportBuilder(tmp_path / "export")
    export.subscriber(1)
    export.coverage(10, 1, "colonial_accident_1")
    export.subscriber(2)
    export.coverage(11, 2, "colonial_pet_insurance_0")  # claimed, no [plans] entry: held
    (edi_home / "edi.toml").write_text(f'source = "{export.write()}"\n')
    ours = full_file(capsys, edi_home)
    roster = valid_roster(roster_from(ours, edi_home / "in" / "roster.834"))
    code, _, err = reconcile(capsys, edi_home, roster)
    assert code == 0, err
    assert "1 PlanSource subscriber(s) held" in err
