"""`edi show`: the 834 inspector, on our files and on a hand-written one from another sender."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edi.validate import validate_file
from tests.support.workspace import REPO, ExportBuilder, assert_valid_834, edi, segments

SAMPLE = REPO / "samples" / "out" / "ACME_colonial_834_20261124_000000001.834"
HANDWRITTEN = Path(__file__).parent / "fixtures" / "handwritten_audit.834"

MEMBER_KEYS = {"member_id", "relationship", "maintenance", "reason", "coverages"}
COVERAGE_KEYS = {"insurance_line", "plan", "tier", "maintenance", "begin", "end", "premium"}


def show_json(capsys: pytest.CaptureFixture[str], path: Path, *flags: str) -> dict[str, object]:
    code, out, err = edi(capsys, "show", str(path), "--json", *flags)
    assert code == 0, err
    return dict(json.loads(out))


def test_our_sample_one_entry_per_ins_loop(capsys: pytest.CaptureFixture[str]) -> None:
    assert_valid_834(SAMPLE)
    shown = show_json(capsys, SAMPLE)
    assert set(shown) == {"interchange", "members"}
    segs = segments(SAMPLE)
    ins = [s for s in segs if s[0] == "INS"]
    members = shown["members"]
    assert isinstance(members, list) and len(members) == len(ins)
    for member, seg in zip(members, ins, strict=True):
        assert set(member) == MEMBER_KEYS
        assert (member["relationship"], member["maintenance"]) == (seg[2], seg[3])
        assert all(set(c) == COVERAGE_KEYS for c in member["coverages"])
    assert sum(len(m["coverages"]) for m in members) == sum(s[0] == "HD" for s in segs)
    first = members[0]
    assert first["member_id"] == "AW1001" and first["reason"] is None
    assert first["coverages"][0] == {
        "insurance_line": "AH",
        "plan": "ACCIDENT-1",
        "tier": "FAM",
        "maintenance": "021",
        "begin": "2026-01-01",
        "end": None,
        "premium": "14.50",
    }
    termed = next(m for m in members if m["member_id"] == "AW1002")
    assert (termed["maintenance"], termed["reason"]) == ("024", "08")
    assert termed["coverages"][0]["end"] == "2026-10-31"
    interchange = shown["interchange"]
    assert isinstance(interchange, dict)
    assert (
        interchange["sender_id"] == "ACMEWIDGETS" and interchange["receiver_id"] == "COLONIALLIFE"
    )
    assert (interchange["isa13"], interchange["gs06"], interchange["st02"]) == (
        "000000001",
        "1",
        "0001",
    )
    assert interchange["test"] is True and interchange["file_type"] == "changes"


def test_names_and_ssns_hidden_unless_asked(capsys: pytest.CaptureFixture[str]) -> None:
    nm1 = next(s for s in segments(SAMPLE) if s[0] == "NM1" and s[1] == "IL")
    last, ssn = nm1[3], nm1[9]
    for flags in ([], ["--json"]):
        code, out, _ = edi(capsys, "show", str(SAMPLE), *flags)
        assert code == 0 and last not in out and ssn not in out
    code, out, _ = edi(capsys, "show", str(SAMPLE), "--show-names")
    assert last in out and ssn in out
    named = show_json(capsys, SAMPLE, "--show-names")["members"]
    assert isinstance(named, list) and named[0]["ssn"] == ssn


def test_text_says_codes_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = edi(capsys, "show", str(SAMPLE))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("interchange 000000001: test data, ZZ:ACMEWIDGETS → ZZ:COLONIALLIFE")
    assert "file type: 2 change file (updates only)" in out
    assert "member AW1001 subscriber 18 Self: 021 Addition" in out
    assert (
        "member AW1002 subscriber 18 Self: 024 Cancellation or termination, "
        "reason 08 Termination of employment" in out
    )
    assert "tier FAM Family, begin 2026-01-01, end -, premium 14.50" in out


def test_a_file_we_just_generated(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    export.subscriber(1)
    export.dependent(2, 1, "spouse")
    export.coverage(
        10, 1, "colonial_accident_1", dependent_ids=[2], coverage_level="Employee + Spouse"
    )
    source = export.write()
    code, out, err = edi(
        capsys,
        "generate",
        "-c",
        "colonial",
        "--source",
        str(source),
        "--out",
        str(edi_home / "out"),
        "--as-of",
        "2026-11-24",
    )
    assert code == 0, err
    path = Path(out.strip().splitlines()[-1])
    assert_valid_834(path)
    members = show_json(capsys, path)["members"]
    assert isinstance(members, list)
    assert [(m["member_id"], m["relationship"]) for m in members] == [("E1", "18"), ("E1", "01")]


def test_a_hand_written_834_from_someone_else(capsys: pytest.CaptureFixture[str]) -> None:
    """Other delimiters (| and >), a production audit file, a plan without HD05, RD-less dates."""
    assert validate_file(HANDWRITTEN).valid
    shown = show_json(capsys, HANDWRITTEN)
    interchange = shown["interchange"]
    assert isinstance(interchange, dict)
    assert interchange["sender_qualifier"] == "30" and interchange["usage"] == "P"
    assert interchange["test"] is False and interchange["file_type"] == "audit"
    assert (interchange["isa13"], interchange["gs06"], interchange["st02"]) == (
        "000000042",
        "42",
        "0042",
    )
    assert shown["members"] == [
        {
            "member_id": "EMP-77",
            "relationship": "18",
            "maintenance": "030",
            "reason": None,
            "coverages": [
                {
                    "insurance_line": "HLT",
                    "plan": "PPO GOLD",
                    "tier": "ESP",
                    "maintenance": "030",
                    "begin": "2025-01-01",
                    "end": None,
                    "premium": None,
                }
            ],
        },
        {
            "member_id": "EMP-77",
            "relationship": "01",
            "maintenance": "030",
            "reason": None,
            "coverages": [
                {
                    "insurance_line": "HLT",
                    "plan": "PPO GOLD",
                    "tier": "ESP",
                    "maintenance": "030",
                    "begin": "2025-01-01",
                    "end": "2025-12-31",
                    "premium": None,
                },
                {
                    "insurance_line": "DEN",
                    "plan": "DENTAL BASIC",
                    "tier": None,
                    "maintenance": "030",
                    "begin": "2025-01-01",
                    "end": None,
                    "premium": None,
                },
            ],
        },
    ]
    code, out, _ = edi(capsys, "show", str(HANDWRITTEN))
    assert code == 0
    assert "production data, 30:123456789 → ZZ:OTHERCARRIER" in out
    assert "file type: 4 audit file" in out and "DOE" not in out


def test_the_fixture_is_judged_by_pyx12(tmp_path: Path) -> None:
    """The hand-written file is valid because pyx12 says so, not because nothing looked."""
    broken = tmp_path / "broken.834"
    broken.write_text(HANDWRITTEN.read_text().replace("SE|23|0042", "SE|22|0042"))
    assert "SE|23|0042" in HANDWRITTEN.read_text()
    assert not validate_file(broken).valid


def test_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert edi(capsys, "show", str(tmp_path / "missing.834"))[0] == 2
    not_x12 = tmp_path / "notes.txt"
    not_x12.write_text("hello")
    code, _, err = edi(capsys, "show", str(not_x12))
    assert code == 1 and "[x12-not-interchange]" in err
    ack = tmp_path / "ack.999"
    ack.write_text(
        HANDWRITTEN.read_text().replace("ST|834|0042|005010X220A1", "ST|999|0042|005010X231A1")
    )
    code, _, err = edi(capsys, "show", str(ack))
    assert code == 1 and "[x12-not-834]" in err
