"""The checked-in samples: reproducible, valid, and right about every scenario of
samples/README.md (looked up by PlanSource id, never by name)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from edi.pipeline import generate
from edi.profiles import load_profile
from edi.workspace import Workspace
from tests.support.workspace import assert_valid_834, dates, hd_lines, loop_for, member_loops

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
PINNED = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SSN = {
    1001: "901311001",
    1005: "905351005",
    1009: "909391009",
    1010: "910401010",
    1017: "917471017",
}


def sample_file(carrier: str) -> Path:
    (path,) = sorted((SAMPLES / "out").glob(f"ACME_{carrier}_834_*.834"))
    return path


def test_make_samples_is_reproducible(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(SAMPLES / "make_samples.py"), "--out", str(tmp_path)], check=True
    )
    for name in ("subscribers.json", "dependents.json", "coverages.json"):
        assert (tmp_path / name).read_bytes() == (SAMPLES / "plansource" / name).read_bytes()


@pytest.mark.parametrize("carrier", ["colonial", "unum", "allstate"])
def test_golden_files_regenerate_byte_for_byte(
    workspace: Workspace, tmp_path: Path, carrier: str
) -> None:
    result = generate(
        workspace,
        carrier,
        now=PINNED,
        as_of=date(2026, 11, 24),
        source=SAMPLES / "plansource",
        out_dir=tmp_path,
    )
    assert result.path.name == sample_file(carrier).name
    assert result.path.read_bytes() == sample_file(carrier).read_bytes()


@pytest.fixture(scope="module")
def files() -> dict[str, list[list[str]]]:
    home = Workspace.open(REPO)
    return {
        c: assert_valid_834(sample_file(c), load_profile(home, c))
        for c in ("colonial", "unum", "allstate")
    }


def ids_in(segs: list[list[str]]) -> set[str]:
    return {seg[2] for loop in member_loops(segs) for seg in loop if seg[:2] == ["REF", "0F"]}


def test_all_three_carriers_and_dependents(files: dict[str, list[list[str]]]) -> None:
    assert "AW1001" in ids_in(files["colonial"]) and SSN[1001] in ids_in(files["unum"])
    assert "1001" in ids_in(files["allstate"])
    spouse = loop_for(files["allstate"], "1001", "01")
    assert [h["HD05"] for h in hd_lines(spouse)] == ["ESP"]
    name = next(seg for seg in loop_for(files["colonial"], "AW1001") if seg[0] == "NM1")
    assert name[3] == "O'BRIEN SMITH JR" and name[5] == "ZOE"
    address = next(seg for seg in loop_for(files["colonial"], "AW1001") if seg[0] == "N3")
    assert address[1] == "12 ELM ST APT 4"
    child = next(seg for seg in loop_for(files["colonial"], "AW1001", "19") if seg[0] == "NM1")
    assert len(child) <= 8, "a dependent without an SSN has no NM108/NM109"


def test_employment_termination(files: dict[str, list[list[str]]]) -> None:
    loop = loop_for(files["colonial"], "AW1002")
    assert loop[0][3:5] == ["024", "08"] and loop[0][8] == "TE"
    assert dates(loop)["357"] == "20261031" and dates(loop)["337"] == "20261031"
    assert [(h["HD01"], h["349"]) for h in hd_lines(loop)] == [("024", "20261031")]


def test_single_coverage_end(files: dict[str, list[list[str]]]) -> None:
    loop = loop_for(files["colonial"], "AW1003")
    assert loop[0][3] == "001"
    assert {h["HD04"]: (h["HD01"], h.get("349")) for h in hd_lines(loop)} == {
        "ACCIDENT-1": ("021", None),
        "CANCER-1": ("024", "20260930"),
    }


def test_dependent_removals(files: dict[str, list[list[str]]]) -> None:
    aged_off = [loop for loop in member_loops(files["colonial"]) if ["REF", "0F", "AW1004"] in loop]
    assert [
        (loop[0][2], loop[0][3], loop[0][4] if len(loop[0]) > 4 else "") for loop in aged_off
    ] == [("18", "021", ""), ("19", "024", "07"), ("19", "021", "")]
    assert loop_for(files["unum"], SSN[1005], "01")[0][3:5] == ["024", "01"]
    assert loop_for(files["allstate"], "1006", "17")[0][3:5] == ["024", "03"]
    assert loop_for(files["allstate"], "1006", "10")[0][3] == "021"


def test_waived_declines(files: dict[str, list[list[str]]]) -> None:
    ended = loop_for(files["colonial"], "AW1007")
    cancer = [h for h in hd_lines(ended) if h["HD04"] == "CANCER-1"]
    assert [(h["HD01"], h["348"], h["349"]) for h in cancer] == [("024", "20260101", "20260831")]
    assert ended[0][4] == "14"
    unum_ended = loop_for(files["unum"], SSN[1009])
    assert [h["HD01"] for h in hd_lines(unum_ended) if h["HD03"] == "AG"] == ["024"]
    assert "AW1008" not in ids_in(files["colonial"])
    assert "1010" in ids_in(files["allstate"])
    assert all(h["HD04"] != "ACCIDENT" for h in hd_lines(loop_for(files["allstate"], "1010")))
    decline_record = loop_for(files["unum"], SSN[1010])
    assert decline_record[0][3:5] == ["001", "26"]
    # Issue 18: a decline record ends nothing (HD 001 dated by DTP*303, no DTP*349).
    assert [
        (h["HD01"], h["HD03"], "348" in h, "349" in h, h.get("303"))
        for h in hd_lines(decline_record)
        if h["HD03"] == "STD"
    ] == [("001", "STD", False, False, "20260101")]


def test_future_test_and_non_carrier_employees(files: dict[str, list[list[str]]]) -> None:
    future = loop_for(files["colonial"], "AW1011")
    assert [h["348"] for h in hd_lines(future)] == ["20270101"]
    for carrier, segs in files.items():
        present = ids_in(segs)
        assert not {"AW1012", "1012", "AW1015", "1015"} & present, carrier
        assert not any(i.startswith(("90121", "9121")) and i.endswith("1012") for i in present)


def test_relationships_and_mid_year_change(files: dict[str, list[list[str]]]) -> None:
    assert loop_for(files["unum"], "914441014", "53")[0][2] == "53"
    assert loop_for(files["allstate"], "1016", "53")[0][2] == "53"
    assert loop_for(files["allstate"], "1016", "15")[0][2] == "15"
    changed = loop_for(files["colonial"], "AW1013")
    # Issue 18: DTP*348 stays the original effective date; the change is DTP*303.
    assert [(h["348"], h["303"]) for h in hd_lines(changed)] == [("20260101", "20260601")]
    assert dates(changed)["356"] == "20260101"
    spouse = loop_for(files["colonial"], "AW1013", "01")
    assert [h.get("AMT") for h in hd_lines(changed)] == ["18.25"]
    assert [h.get("AMT") for h in hd_lines(spouse)] == [None], "premium on the subscriber only"


def test_first_uncovered_day_and_reason_forms(files: dict[str, list[list[str]]]) -> None:
    loop = loop_for(files["unum"], SSN[1017])
    assert loop[0][3:5] == ["024", "08"]
    assert [h["349"] for h in hd_lines(loop)] == ["20261115"]


def test_counts_match(files: dict[str, list[list[str]]]) -> None:
    for segs in files.values():
        loops = list(member_loops(segs))
        subscribers = sum(1 for loop in loops if loop[0][1] == "Y")
        assert ["QTY", "TO", str(len(loops))] in segs
        assert ["QTY", "ET", str(subscribers)] in segs
        assert ["QTY", "DT", str(len(loops) - subscribers)] in segs


SSN.update({1019: "919491019", 1020: "920501020", 1022: "922521022"})
SPOUSES = {"01", "53"}


def test_death(files: dict[str, list[list[str]]]) -> None:
    for carrier, member in (("colonial", "AW1018"), ("allstate", "1018")):
        ins = loop_for(files[carrier], member)[0]
        assert ins[3:5] == ["024", "03"] and ins[11:13] == ["D8", "20261105"], carrier
    dependent = loop_for(files["allstate"], "1006", "17")[0]
    assert dependent[11:13] == ["D8", "20261020"]


def test_retiree(files: dict[str, list[list[str]]]) -> None:
    for carrier, member in (("colonial", "AW1019"), ("unum", SSN[1019])):
        loop = loop_for(files[carrier], member)
        assert loop[0][3] == "021" and loop[0][8] == "RT", carrier
        assert dates(loop)["286"] == "20260630"


def test_transliteration(files: dict[str, list[list[str]]]) -> None:
    for carrier, member in (("colonial", "AW1020"), ("unum", SSN[1020]), ("allstate", "1020")):
        nm1 = next(seg for seg in loop_for(files[carrier], member) if seg[0] == "NM1")
        assert nm1[3:6] == ["STRAUSS-OSTERGARD", "LUKASZ", "JURGEN"], carrier


def test_long_address(files: dict[str, list[list[str]]]) -> None:
    n3 = next(seg for seg in loop_for(files["allstate"], "1021") if seg[0] == "N3")
    assert n3[1:] == [
        "12345 NORTH SAINT LAWRENCE SEAWAY INDUSTRIAL PARK",
        "BOULEVARD BUILDING 7 SUITE 1200",
    ]


def test_divorce_termination_of_an_unlisted_spouse(files: dict[str, list[list[str]]]) -> None:
    # Unum reads PlanSource's termination_date as the first uncovered day.
    for carrier, member, end in (
        ("colonial", "AW1022", "20261015"),
        ("unum", SSN[1022], "20261014"),
    ):
        spouse = loop_for(files[carrier], member, "01")
        assert spouse[0][3:5] == ["024", "01"] and dates(spouse) == {"357": end}
        assert loop_for(files[carrier], member, "19")[0][3] == "021"
    assert all(["REF", "0F", "1022"] not in loop for loop in member_loops(files["allstate"]))


def tier_problems(segs: list[list[str]]) -> list[str]:
    """Active lines whose HD05 disagrees with the dependents carrying the same plan."""
    problems: list[str] = []
    families: list[list[list[list[str]]]] = []
    for loop in member_loops(segs):
        if loop[0][1] == "Y":
            families.append([loop])
        else:
            families[-1].append(loop)
    for subscriber, *dependents in families:
        for line in hd_lines(subscriber):
            if line["HD01"] == "024" or line["HD05"] not in ("EMP", "ESP", "ECH", "FAM"):
                continue
            kinds = {
                "spouse" if loop[0][2] in SPOUSES else "child"
                for loop in dependents
                for h in hd_lines(loop)
                if h["HD04"] == line["HD04"] and h["HD01"] != "024"
            }
            expected = {
                "EMP": set(),
                "ESP": {"spouse"},
                "ECH": {"child"},
                "FAM": {"spouse", "child"},
            }[line["HD05"]]
            if kinds != expected:
                member = next(seg[2] for seg in subscriber if seg[:2] == ["REF", "0F"])
                problems.append(f"{member} {line['HD04']} {line['HD05']} {sorted(kinds)}")
    return problems


@pytest.mark.parametrize("carrier", ["colonial", "unum", "allstate"])
def test_tiers_agree_with_dependents(files: dict[str, list[list[str]]], carrier: str) -> None:
    assert tier_problems(files[carrier]) == []
