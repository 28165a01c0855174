"""The carrier's side: a CSV census round trip, an encrypted roster, a tolerant 834 reader."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import transmit
from edi.workspace import Workspace
from tests.reconcile.conftest import reconcile
from tests.reconcile.rosters import (
    CENSUS_PROFILE,
    EXPECTED,
    census_from,
    found_keys,
    loop_of,
    plant_one_per_kind,
    roster_from,
    split,
    write,
)
from tests.support.servers import CarrierKey
from tests.support.workspace import log_entries


def with_census_profile(home: Path) -> None:
    profile = home / "carriers" / "colonial.toml"
    profile.write_text(profile.read_text() + CENSUS_PROFILE)


def test_csv_census_round_trip(
    recon_home: Path, our_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with_census_profile(recon_home)
    census = census_from(our_file, recon_home / "in" / "census.csv")
    code, out, err = reconcile(capsys, recon_home, census, "--json")
    assert code == 0, err
    assert json.loads(out)["discrepancies"] == []

    def edit(rows: list[dict[str, str]]) -> None:
        row = next(r for r in rows if r["Member ID"] == "AW1112")
        row["Tier"] = "Employee + Spouse"  # a PlanSource-style name, mapped through the profile
        row = next(r for r in rows if r["Member ID"] == "AW1145")
        row["Tier"] = "Employee Only"  # the same tier (EMP) by name: no discrepancy
        row = next(r for r in rows if r["Member ID"] == "AW1134")
        row["Effective"] = "02/01/2026"
        rows.remove(next(r for r in rows if r["Member ID"] == "AW1139"))

    census = census_from(our_file, recon_home / "in" / "census2.csv", edit)
    code, out, _ = reconcile(capsys, recon_home, census, "--json")
    assert code == 1
    assert found_keys(json.loads(out)) == {
        ("tier-mismatch", "1112", None, "5099", "HD05"),
        ("effective-date-mismatch", "1134", None, "5195", "348"),
        ("missing-at-carrier", "1139", None, None, None),
    }


def test_census_with_missing_columns_is_refused(
    recon_home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with_census_profile(recon_home)
    census = tmp_path / "census.csv"
    census.write_text("Member ID,Relation\nAW1001,Employee\n")
    code, _, err = reconcile(capsys, recon_home, census)
    assert code == 1
    assert "roster-csv-columns" in err and "DOB" in err


def encrypt_to_workspace(workspace: Workspace, carrier: CarrierKey, plain: Path) -> Path:
    """The carrier encrypts its roster to the workspace's own public key."""
    ours = transmit.create_key(workspace.gnupg_home, "ACME EDI <edi@test.invalid>")
    public = transmit.export_public_key(workspace.gnupg_home, ours, workspace.home / "ours.asc")
    base = ["gpg", "--homedir", str(carrier.gnupg), "--batch", "--yes"]
    subprocess.run([*base, "--import", str(public)], check=True, capture_output=True)
    target = plain.with_name(plain.name + ".pgp")
    subprocess.run(
        [*base, "--trust-model", "always", "-r", ours, "-o", str(target), "--encrypt", str(plain)],
        check=True,
        capture_output=True,
    )
    return target


def test_encrypted_roster(
    recon_home: Path,
    our_file: Path,
    carrier_key: CarrierKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    workspace = Workspace.open(recon_home)
    plain = roster_from(our_file, recon_home / "in" / "planted.834", plant_one_per_kind)
    encrypted = encrypt_to_workspace(workspace, carrier_key, plain)
    assert transmit.is_encrypted(encrypted) and not transmit.is_encrypted(plain)
    plain.unlink()
    code, out, _ = reconcile(capsys, recon_home, encrypted, "--json")
    assert code == 1
    assert found_keys(json.loads(out)) == EXPECTED
    entry = next(e for e in log_entries(capsys, recon_home) if e["event"] == "reconciliation")
    assert entry["roster_encrypted"] is True
    assert entry["roster_sha256"] == transmit.sha256_file(encrypted)
    assert not any((recon_home / "state" / "rosters" / ".scratch").iterdir())


def test_roster_encrypted_to_another_key_fails_cleanly(
    recon_home: Path,
    our_file: Path,
    carrier_key: CarrierKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plain = roster_from(our_file, recon_home / "in" / "roster.834")
    target = plain.with_name("roster.834.pgp")
    subprocess.run(
        [
            *("gpg", "--homedir", str(carrier_key.gnupg), "--batch", "--yes"),
            *("--trust-model", "always", "-r", carrier_key.fingerprint),
            *("-o", str(target), "--encrypt", str(plain)),
        ],
        check=True,
        capture_output=True,
    )
    transmit.create_key(Workspace.open(recon_home).gnupg_home, "ACME EDI <edi@test.invalid>")
    code, _, err = reconcile(capsys, recon_home, target)
    assert code == 1 and "pgp-decrypt-failed" in err


def test_reader_tolerates_what_carriers_get_wrong(
    recon_home: Path, our_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header, loops, trailer = split(our_file)
    from tests.reconcile.rosters import as_carrier_sends

    as_carrier_sends(header, loops)
    # a member loop without REF*0F, and no N3/N4 on another subscriber
    nameless = loop_of(loops, "AW1139")
    nameless.remove(["REF", "0F", "AW1139"])
    moved = loop_of(loops, "AW1120")
    for tag in ("N3", "N4"):
        moved.remove(next(s for s in moved if s[0] == tag))
    roster = write(recon_home / "in" / "sloppy.834", header, loops, trailer)
    text = roster.read_text().replace(f"SE*{trailer[0][1]}*", "SE*7*")  # a wrong count
    roster.write_text(text)
    from edi.validate import validate_file

    assert not validate_file(roster, None).valid  # pyx12 rejects it; reconcile reads it anyway
    code, out, err = reconcile(capsys, recon_home, roster, "--json")
    assert "SE01 says 7 segments" in err
    assert "no REF*0F" in err
    report = json.loads(out)
    # the member without an id counts as missing; the missing address is not a mismatch
    assert found_keys(report) == {("missing-at-carrier", "1139", None, None, None)}
    assert code == 1
