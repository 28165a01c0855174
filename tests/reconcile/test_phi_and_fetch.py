"""No PHI in the delivery log, alerts or default JSON; `edi roster fetch` against a real sshd."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edi.workspace import Workspace
from tests.reconcile.conftest import full_file, reconcile
from tests.reconcile.rosters import (
    EXPECTED,
    PLANTED_VALUES,
    found_keys,
    plant_one_per_kind,
    roster_from,
    sample_phi,
)
from tests.reconcile.test_rosters import encrypt_to_workspace
from tests.support.servers import CarrierKey, SmtpServer, Sshd
from tests.support.workspace import SAMPLES, edi, log_entries


def test_phi_never_in_log_alerts_or_default_json(
    live_home: Path, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ours = full_file(capsys, live_home)
    roster = roster_from(ours, live_home / "in" / "planted.834", plant_one_per_kind)
    code, out, _ = reconcile(capsys, live_home, roster, "--json")
    assert code == 1
    assert found_keys(json.loads(out)) == EXPECTED
    default_json = out

    entries = [e for e in log_entries(capsys, live_home) if e["event"] == "reconciliation"]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["counts"]["demographic-mismatch"] == 5 and entry["new"] == len(EXPECTED)
    assert len(entry["roster_sha256"]) == 64 and entry["outcome"] == "discrepancies"
    assert entry["alerts_sent"] == ["email:sent"]
    assert len(smtp_server.messages) == 1
    alert = smtp_server.messages[0]
    assert "reconciliation-discrepancies" in alert["Subject"]
    alert_text = alert.as_string()
    assert "demographic-mismatch: 5" in alert_text

    _, listed, _ = edi(capsys, "discrepancies", "list", "--json", "--home", str(live_home))
    code, exported, _ = edi(capsys, "log", "export", "--format", "json", "--home", str(live_home))
    assert code == 0 and "reconciliation" in exported and "AW1145" in listed
    phi = [*sample_phi(SAMPLES), *PLANTED_VALUES]
    assert len(phi) > 50
    for text in (default_json, json.dumps(entries), alert_text, listed, exported):
        leaked = [value for value in phi if value in text.upper()]
        assert leaked == []
    # the control: the same values are on screen when asked for
    _, shown, _ = reconcile(capsys, live_home, roster, "--show-names")
    assert all(value in shown.upper() for value in PLANTED_VALUES)

    # nothing new the second time: no second alert; a clean roster logs "clean"
    reconcile(capsys, live_home, roster, "--json")
    assert len(smtp_server.messages) == 1
    equal = roster_from(ours, live_home / "in" / "equal.834")
    assert reconcile(capsys, live_home, equal, "--json")[0] == 0
    last = [e for e in log_entries(capsys, live_home) if e["event"] == "reconciliation"][-1]
    assert last["outcome"] == "clean" and last["resolved"] == len(EXPECTED)
    assert edi(capsys, "log", "verify", "--home", str(live_home))[0] == 0


def with_roster_folder(home: Path, outbound: Path) -> None:
    profile = home / "carriers" / "colonial.toml"
    profile.write_text(
        profile.read_text() + f'\n[roster]\nremote_dir = "{outbound}"\npattern = "*roster*"\n'
    )


def test_roster_fetch_over_sftp(
    live_home: Path,
    sshd: Sshd,
    carrier_key: CarrierKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outbound = sshd.facts.root / "outbound"
    outbound.mkdir()
    with_roster_folder(live_home, outbound)
    ours = full_file(capsys, live_home)
    plain = roster_from(ours, live_home / "in" / "ACME_roster_20261124.834", plant_one_per_kind)
    encrypted = encrypt_to_workspace(Workspace.open(live_home), carrier_key, plain)
    shutil.copyfile(encrypted, outbound / encrypted.name)
    (outbound / "unrelated.999").write_text("not a roster")

    args = ["--now", "2026-11-24T03:00:00+00:00", "roster", "fetch", "--carrier", "colonial"]
    home = ["--as-of", "2026-11-24", "--json", "--home", str(live_home)]
    code, out, err = edi(capsys, *args, *home)
    assert code == 1, err  # open errors
    fetched = json.loads(out)
    assert [f["remote_name"] for f in fetched] == [encrypted.name]
    assert fetched[0]["summary"]["demographic-mismatch"] == 5
    assert fetched[0]["new"] == len(EXPECTED)
    archived = Path(fetched[0]["archived"])
    assert archived.read_bytes() == encrypted.read_bytes()  # kept as received (encrypted)
    assert archived.parent == live_home / "state" / "rosters" / "colonial"

    code, out, _ = edi(capsys, *args, *home)
    assert code == 0 and json.loads(out) == []  # nothing new on the server

    # the carrier replaces it with a clean roster: fetched, reconciled, everything resolved
    clean = roster_from(ours, live_home / "in" / "ACME_roster_20261125.834")
    shutil.copyfile(
        encrypt_to_workspace_again(live_home, carrier_key, clean),
        outbound / "ACME_roster_20261125.834.pgp",
    )
    code, out, err = edi(capsys, *args, *home)
    assert code == 0, err
    fetched = json.loads(out)
    assert [f["remote_name"] for f in fetched] == ["ACME_roster_20261125.834.pgp"]
    assert fetched[0]["resolved"] == len(EXPECTED) and fetched[0]["open_errors"] == 0


def encrypt_to_workspace_again(home: Path, carrier: CarrierKey, plain: Path) -> Path:
    import subprocess

    target = plain.with_name(plain.name + ".pgp")
    subprocess.run(
        [
            *("gpg", "--homedir", str(carrier.gnupg), "--batch", "--yes", "--trust-model"),
            *("always", "-r", "edi@test.invalid", "-o", str(target), "--encrypt", str(plain)),
        ],
        check=True,
        capture_output=True,
    )
    return target


def test_roster_fetch_needs_a_roster_table(
    live_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = edi(capsys, "roster", "fetch", "--carrier", "colonial", "--home", str(live_home))
    assert code == 2 and "profile-no-roster" in err


def test_scheduler_fetches_and_reconciles_when_a_schedule_says_so(
    live_home: Path,
    sshd: Sshd,
    carrier_key: CarrierKey,
    smtp_server: SmtpServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from datetime import UTC, datetime

    from edi.scheduler import checks
    from edi.schedules import load_schedules

    outbound = sshd.facts.root / "outbound"
    outbound.mkdir()
    with_roster_folder(live_home, outbound)
    (live_home / "schedules").mkdir()
    (live_home / "schedules" / "colonial-weekly.toml").write_text(
        'carrier = "colonial"\ncron = "0 2 * * 1"\nreconcile = true\n'
    )
    ours = full_file(capsys, live_home)
    plain = roster_from(ours, live_home / "in" / "ACME_roster_1.834", plant_one_per_kind)
    shutil.copyfile(
        encrypt_to_workspace(Workspace.open(live_home), carrier_key, plain),
        outbound / "ACME_roster_1.834.pgp",
    )
    workspace = Workspace.open(live_home)
    moment = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    checks(workspace, load_schedules(workspace), lambda: moment)
    entries = [e for e in log_entries(capsys, live_home) if e["event"] == "reconciliation"]
    assert len(entries) == 1
    assert entries[0]["actor"]["schedule_id"] == "colonial-weekly"
    assert entries[0]["new"] == len(EXPECTED)
    checks(workspace, load_schedules(workspace), lambda: moment)  # nothing new: nothing logged
    assert len([e for e in log_entries(capsys, live_home) if e["event"] == "reconciliation"]) == 1

    # the carrier's folder is gone: the failed fetch is logged and alerted, not raised
    shutil.rmtree(outbound)
    checks(workspace, load_schedules(workspace), lambda: moment)
    failed = [e for e in log_entries(capsys, live_home) if e["event"] == "roster-fetch-failed"]
    assert len(failed) == 1 and failed[0]["outcome"] == "failed"
    assert any("roster-fetch-failed" in m["Subject"] for m in smtp_server.messages)


def test_a_roster_that_cannot_be_read_is_logged_alerted_and_kept(
    live_home: Path, sshd: Sshd, smtp_server: SmtpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    outbound = sshd.facts.root / "outbound"
    outbound.mkdir()
    with_roster_folder(live_home, outbound)
    (outbound / "ACME_roster_bad.834").write_text("ISA*this is not an interchange~")
    args = ["roster", "fetch", "--carrier", "colonial", "--json", "--home", str(live_home)]
    code, out, _ = edi(capsys, *args)
    assert code == 1
    fetched = json.loads(out)
    assert "x12-not-interchange" in fetched[0]["error"]
    assert Path(fetched[0]["archived"]).is_file()
    failed = [e for e in log_entries(capsys, live_home) if e["event"] == "reconciliation-failed"]
    assert len(failed) == 1
    assert any("reconciliation-failed" in m["Subject"] for m in smtp_server.messages)
    code, out, _ = edi(capsys, *args)
    assert code == 0 and json.loads(out) == []  # not fetched (nor alerted) again
