"""One test per rule of 834.md "Terminations and waived declines" (and the mapping rules around
them), each through the real writer and validated by pyx12 before its semantics are checked."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from edi.pipeline import generate
from edi.profiles import load_profile
from edi.workspace import Workspace
from tests.support.workspace import (
    ExportBuilder,
    assert_valid_834,
    dates,
    hd_lines,
    loop_for,
    member_loops,
)

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
AS_OF = date(2026, 11, 24)


def build(
    workspace: Workspace, export: ExportBuilder, carrier: str = "colonial"
) -> list[list[str]]:
    result = generate(
        workspace,
        carrier,
        now=NOW,
        as_of=AS_OF,
        source=export.write(),
        out_dir=workspace.home / "out",
    )
    return assert_valid_834(result.path, load_profile(workspace, carrier))


def test_whole_member_termination(workspace: Workspace, export: ExportBuilder) -> None:
    export.subscriber(
        1,
        termination_date="2026/10/31",
        termination_reason_id="employment_termination",
        employment_status="Terminated",
    )
    for cid, code in ((10, "colonial_accident_1"), (11, "colonial_cancer_0")):
        export.coverage(
            cid, 1, code, termination_date="2026/10/31", termination_reason="Employment Termination"
        )
    loop = loop_for(build(workspace, export), "E1")
    ins = loop[0]
    assert ins[1:4] == ["Y", "18", "024"] and ins[4] == "08" and ins[8] == "TE"
    assert dates(loop)["357"] == "20261031" and dates(loop)["337"] == "20261031"
    lines = hd_lines(loop)
    assert [line["HD01"] for line in lines] == ["024", "024"]
    assert all(line["349"] == "20261031" for line in lines)


def test_one_coverage_ended_member_still_covered(
    workspace: Workspace, export: ExportBuilder
) -> None:
    export.subscriber(1)
    export.coverage(10, 1, "colonial_accident_1")
    export.coverage(
        11, 1, "colonial_cancer_0", termination_date="2026/09/30", termination_reason="Plan Change"
    )
    loop = loop_for(build(workspace, export), "E1")
    assert loop[0][3] == "001" and loop[0][4] == "22"
    by_plan = {line["HD04"]: line for line in hd_lines(loop)}
    assert by_plan["ACCIDENT-1"]["HD01"] == "021" and "349" not in by_plan["ACCIDENT-1"]
    assert by_plan["CANCER-0"]["HD01"] == "024" and by_plan["CANCER-0"]["349"] == "20260930"
    assert "357" not in dates(loop)


def test_dependent_removed_by_divorce(workspace: Workspace, export: ExportBuilder) -> None:
    export.subscriber(1)
    export.dependent(20, 1, "spouse", termination_date="2026/10/15", termination_reason="Divorce")
    export.dependent(21, 1, "child")
    export.coverage(
        10, 1, "colonial_accident_1", coverage_level="Employee + Child", dependent_ids=[20, 21]
    )
    segs = build(workspace, export)
    spouse = loop_for(segs, "E1", "01")
    assert spouse[0][1:5] == ["N", "01", "024", "01"]
    assert hd_lines(spouse)[0]["HD01"] == "024" and hd_lines(spouse)[0]["349"] == "20261015"
    assert dates(spouse)["357"] == "20261015"
    assert loop_for(segs, "E1", "19")[0][3] == "021"
    assert loop_for(segs, "E1")[0][3] == "021"


def test_overage_dependent_and_death_use_profile_reasons(
    workspace: Workspace, export: ExportBuilder
) -> None:
    # Dated within a first file's lookback (initial_lookback_days, 60) since issue 18.
    export.subscriber(1)
    export.dependent(
        20, 1, "child", termination_date="2026/10/31", termination_reason="overage_dependent"
    )
    export.dependent(
        21, 1, "stepchild", termination_date="2026/10/20", termination_reason="DEPENDENT DEATH"
    )
    export.coverage(
        10, 1, "colonial_accident_1", coverage_level="Employee Only", dependent_ids=[20, 21]
    )
    segs = build(workspace, export)
    assert loop_for(segs, "E1", "19")[0][3:5] == ["024", "07"]
    assert loop_for(segs, "E1", "17")[0][3:5] == ["024", "03"]


def test_waived_decline_ends_earlier_election(workspace: Workspace, export: ExportBuilder) -> None:
    export.subscriber(1)
    export.coverage(10, 1, "colonial_accident_1")
    export.coverage(11, 1, "colonial_cancer_0", original_effective_date="2026/01/01")
    export.coverage(
        12,
        1,
        "colonial_cancer_0",
        plan_name="Decline",
        coverage_level="Decline",
        original_effective_date="",
        change_effective_date="",
        termination_date="2026/07/01",
        termination_reason="Subscriber voluntarily waived coverage",
    )
    loop = loop_for(build(workspace, export), "E1")
    cancer = [line for line in hd_lines(loop) if line["HD04"] == "CANCER-0"]
    assert cancer == [
        {
            "HD01": "024",
            "HD03": "AH",
            "HD04": "CANCER-0",
            "HD05": "EMP",
            "348": "20260101",
            "349": "20260630",
            "AMT": "10.00",
        }
    ]
    assert loop[0][3] == "001" and loop[0][4] == "14"


def test_waived_decline_without_election_is_omitted(
    workspace: Workspace, export: ExportBuilder
) -> None:
    export.subscriber(1)
    export.coverage(10, 1, "colonial_accident_1")
    export.coverage(
        12,
        1,
        "colonial_cancer_0",
        plan_name="Decline",
        coverage_level="Decline",
        termination_date="2026/01/01",
        termination_reason="Subscriber voluntarily waived coverage",
    )
    export.subscriber(2)
    export.coverage(
        13,
        2,
        "colonial_cancer_0",
        plan_name="Decline",
        coverage_level="Decline",
        termination_date="2026/01/01",
        termination_reason="Subscriber voluntarily waived coverage",
    )
    segs = build(workspace, export)
    assert [line["HD04"] for line in hd_lines(loop_for(segs, "E1"))] == ["ACCIDENT-1"]
    assert all(["REF", "0F", "E2"] not in loop for loop in member_loops(segs))


def test_decline_record_when_profile_asks(workspace: Workspace, export: ExportBuilder) -> None:
    export.subscriber(1, ssn="912000001")
    export.coverage(10, 1, "unum_group_accident_employee")
    export.coverage(
        12,
        1,
        "unum_vwb_std_employee",
        plan_name="Decline",
        coverage_level="Decline",
        termination_date="2026/01/01",
        termination_reason="Subscriber voluntarily waived coverage",
    )
    loop = loop_for(build(workspace, export, "unum"), "912000001")
    declined = [line for line in hd_lines(loop) if line["HD03"] == "STD"]
    # Issue 18: a decline record ends nothing (no HD 024, no DTP*349); DTP*303 dates it.
    assert declined == [
        {"HD01": "001", "HD03": "STD", "HD04": "VWB-STD-EMPLOYEE", "HD05": "", "303": "20260101"}
    ]
    assert loop[0][3:5] == ["001", "26"]


def test_first_uncovered_day_convention(workspace: Workspace, export: ExportBuilder) -> None:
    export.subscriber(1, ssn="912000001")
    export.coverage(
        10,
        1,
        "unum_group_accident_employee",
        termination_date="2026/11/01",
        termination_reason="Plan Change",
    )
    export.coverage(11, 1, "unum_vwb_std_employee")
    loop = loop_for(build(workspace, export, "unum"), "912000001")
    ended = [line for line in hd_lines(loop) if line["HD01"] == "024"]
    assert ended[0]["349"] == "20261031"


def test_future_dated_coverage_is_sent(workspace: Workspace, export: ExportBuilder) -> None:
    export.subscriber(1)
    export.coverage(
        10,
        1,
        "colonial_accident_1",
        original_effective_date="2027/01/01",
        change_effective_date="2027/01/01",
    )
    loop = loop_for(build(workspace, export), "E1")
    assert hd_lines(loop)[0]["348"] == "20270101" and loop[0][3] == "021"


def test_test_employee_never_reaches_carrier(workspace: Workspace, export: ExportBuilder) -> None:
    export.subscriber(1)
    export.coverage(10, 1, "colonial_accident_1")
    export.subscriber(2, test_employee=True)
    export.coverage(11, 2, "colonial_accident_1")
    segs = build(workspace, export)
    assert all(["REF", "0F", "E2"] not in loop for loop in member_loops(segs))
    assert ["QTY", "TO", "1"] in segs


def test_covered_dependents_and_relationships(workspace: Workspace, export: ExportBuilder) -> None:
    export.subscriber(1)
    export.dependent(20, 1, "Domestic Partner", ssn="912000020")
    export.dependent(21, 1, "child")
    export.dependent(22, 1, "child")
    export.coverage(
        10,
        1,
        "colonial_accident_1",
        coverage_level="Employee + Domestic Partner",
        dependent_ids=[20],
    )
    export.coverage(
        11, 1, "colonial_cancer_0", coverage_level="Employee + Child(ren)", dependent_ids=[21]
    )
    segs = build(workspace, export)
    partner = loop_for(segs, "E1", "53")
    assert [(h["HD04"], h["HD05"]) for h in hd_lines(partner)] == [("ACCIDENT-1", "ESP")]
    nm1 = next(seg for seg in partner if seg[0] == "NM1")
    assert nm1[8:10] == ["34", "912000020"]
    child = loop_for(segs, "E1", "19")
    assert [(h["HD04"], h["HD05"]) for h in hd_lines(child)] == [("CANCER-0", "ECH")]
    assert next(seg for seg in child if seg[0] == "NM1")[:3] == ["NM1", "IL", "1"]
    assert len(next(seg for seg in child if seg[0] == "NM1")) < 9, "masked SSN is not an SSN"
    assert ["QTY", "TO", "3"] in segs and ["QTY", "DT", "2"] in segs


def test_old_terminations_are_not_repeated(workspace: Workspace, export: ExportBuilder) -> None:
    export.subscriber(1)
    export.coverage(10, 1, "colonial_accident_1")
    export.coverage(
        11,
        1,
        "colonial_cancer_0",
        original_effective_date="2025/01/01",
        change_effective_date="2025/01/01",
        termination_date="2025/03/31",
        termination_reason="Plan Change",
    )
    result = generate(
        workspace, "colonial", now=NOW, as_of=AS_OF, source=export.write(), out_dir=workspace.home
    )
    loop = loop_for(assert_valid_834(result.path), "E1")
    assert [line["HD04"] for line in hd_lines(loop)] == ["ACCIDENT-1"]
    assert result.summary()["skipped"] == {"coverage-ended-before-lookback": 1}


@pytest.mark.parametrize("carrier", ["colonial", "unum", "allstate"])
def test_other_carriers_coverages_are_not_sent(
    workspace: Workspace, export: ExportBuilder, carrier: str
) -> None:
    export.subscriber(1, ssn="912000001")
    for cid, code in enumerate(
        ["colonial_accident_1", "unum_group_accident_employee", "allstate_accident", "medical_2"]
    ):
        export.coverage(cid + 10, 1, code)
    segs = build(workspace, export, carrier)
    codes = [line["HD04"] for loop in member_loops(segs) for line in hd_lines(loop)]
    assert len(codes) == 1
    profile = load_profile(workspace, carrier)
    assert codes[0] in {plan.plan_code for plan in profile.plans.values()}


def test_same_data_regenerates_same_bytes(workspace: Workspace, export: ExportBuilder) -> None:
    export.subscriber(1)
    export.coverage(10, 1, "colonial_accident_1")
    source = export.write()
    first = generate(workspace, "colonial", now=NOW, as_of=AS_OF, source=source)
    later = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    second = generate(workspace, "colonial", now=later, as_of=AS_OF, source=source)
    assert first.path == second.path and first.isa13 == second.isa13
    assert Path(first.path).read_bytes() == Path(second.path).read_bytes()
    export.coverages[0]["subscriber_premium"] = 11.0
    third = generate(workspace, "colonial", now=later, as_of=AS_OF, source=export.write())
    assert int(third.isa13) == int(first.isa13) + 1


@pytest.mark.parametrize("volumes", [1, 2])
def test_volume_in_the_reporting_category_loop(
    workspace: Workspace, export: ExportBuilder, volumes: int
) -> None:
    profile = workspace.carriers_dir / "unum.toml"
    text = profile.read_text()
    assert "[plans.unum__whole_life_employee]\nvolume = true" in text, "life plans report volume"
    code = "unum_group_accident_employee"
    text = text.replace(f"[plans.{code}]\n", f"[plans.{code}]\nvolume = true\n")
    profile.write_text(text)
    export.subscriber(1, ssn="912000001")
    export.coverage(10, 1, "unum__whole_life_employee", volume=25000)
    if volumes == 2:
        export.coverage(11, 1, "unum_group_accident_employee", volume="10000.50")
    export.coverage(12, 1, "unum_vwb_std_employee", volume=5000)  # a plan that does not report it
    loop = loop_for(build(workspace, export, "unum"), "912000001")
    tail = loop[loop.index(["LS", "2700"]) :]
    expected = [
        ["LS", "2700"],
        ["LX", "1"],
        ["N1", "75", "VOLUME WHOLE-LIFE-EMPLOYEE"],
        ["REF", "ZZ", "25000"],
        ["DTP", "007", "D8", "20260101"],
    ]
    if volumes == 2:
        expected += [
            ["LX", "2"],
            ["N1", "75", "VOLUME GROUP-ACCIDENT-EMPLOYEE"],
            ["REF", "ZZ", "10000.50"],
            ["DTP", "007", "D8", "20260101"],
        ]
    assert tail == [*expected, ["LE", "2700"]]
