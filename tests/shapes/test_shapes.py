"""Issue 18 §3: the shapes a carrier's onboarding analyst found wrong, one test each. Every file
goes through the real pipeline and is validated by pyx12 before its shape is checked."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from edi.pipeline import GeneratedFile, baselines, generate
from edi.profiles import load_profile
from edi.workspace import Workspace
from tests.support.workspace import (
    ExportBuilder,
    assert_valid_834,
    dates,
    edi,
    hd_lines,
    loop_for,
    member_loops,
)

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
AS_OF = date(2026, 11, 24)
WAIVED = "Subscriber voluntarily waived coverage"


def run(
    workspace: Workspace, export: ExportBuilder, carrier: str = "colonial", out: str = "out"
) -> tuple[GeneratedFile, list[list[str]]]:
    result = generate(
        workspace,
        carrier,
        now=NOW,
        as_of=AS_OF,
        source=export.write(),
        out_dir=workspace.home / out,
    )
    return result, assert_valid_834(result.path, load_profile(workspace, carrier))


def build(
    workspace: Workspace, export: ExportBuilder, carrier: str = "colonial"
) -> list[list[str]]:
    return run(workspace, export, carrier)[1]


def set_option(workspace: Workspace, carrier: str, table: str, line: str) -> None:
    """Adds `line` to a profile's table (the first line after its header)."""
    path = workspace.carriers_dir / f"{carrier}.toml"
    text = path.read_text()
    header = f"\n[{table}]\n" if table else None
    if header is None:
        text = text.replace("\n[interchange]\n", f"\n{line}\n\n[interchange]\n", 1)
    else:
        assert header in text
        text = text.replace(header, f"{header}{line}\n", 1)
    path.write_text(text)


def codes(result: GeneratedFile) -> list[tuple[str, str, str | None]]:
    return [(f.code, f.ref, f.dependent_id or f.subscriber_id) for f in result.report.findings]


# Mid-year change ------------------------------------------------------------------------------


def mid_year(export: ExportBuilder) -> None:
    export.subscriber(1)
    export.dependent(20, 1, "spouse")
    export.coverage(
        10,
        1,
        "colonial_accident_1",
        coverage_level="Employee + Spouse",
        dependent_ids=[20],
        original_effective_date="2026/01/01",
        change_effective_date="2026/06/01",
    )
    export.coverage(11, 1, "colonial_cancer_0")  # no change: no DTP*303


def test_mid_year_change_is_dtp_303_and_348_stays_original(
    workspace: Workspace, export: ExportBuilder
) -> None:
    mid_year(export)
    segs = build(workspace, export)
    loop = loop_for(segs, "E1")
    by_plan = {h["HD04"]: h for h in hd_lines(loop)}
    assert by_plan["ACCIDENT-1"]["348"] == "20260101" and by_plan["ACCIDENT-1"]["303"] == "20260601"
    assert "303" not in by_plan["CANCER-0"]
    assert dates(loop)["356"] == "20260101", "2000 DTP*356 stays the eligibility begin"
    spouse = hd_lines(loop_for(segs, "E1", "01"))
    assert [(h["348"], h["303"]) for h in spouse] == [("20260101", "20260601")]


def test_profile_may_ask_for_the_change_date_as_benefit_begin(
    workspace: Workspace, export: ExportBuilder
) -> None:
    set_option(workspace, "colonial", "members", 'benefit_begin = "change_effective_date"')
    mid_year(export)
    loop = loop_for(build(workspace, export), "E1")
    accident = next(h for h in hd_lines(loop) if h["HD04"] == "ACCIDENT-1")
    assert accident["348"] == "20260601" and "303" not in accident


def test_coverage_in_force_with_a_future_change_is_active(
    workspace: Workspace, export: ExportBuilder
) -> None:
    path = workspace.carriers_dir / "colonial.toml"
    text = path.read_text()
    assert "send_future_coverages = true" in text
    path.write_text(text.replace("send_future_coverages = true", "send_future_coverages = false"))
    export.subscriber(1)
    export.coverage(10, 1, "colonial_accident_1", change_effective_date="2027/01/01")
    export.coverage(
        11,
        1,
        "colonial_cancer_0",
        original_effective_date="2027/01/01",
        change_effective_date="2027/01/01",
    )
    result, segs = run(workspace, export)
    lines = hd_lines(loop_for(segs, "E1"))
    assert [(h["HD04"], h["HD01"], h["348"], h["303"]) for h in lines] == [
        ("ACCIDENT-1", "021", "20260101", "20270101")
    ]
    assert result.report.future_coverages == 0


# Premium ---------------------------------------------------------------------------------------


def family(export: ExportBuilder) -> None:
    export.subscriber(1)
    export.dependent(20, 1, "spouse")
    export.dependent(21, 1, "child")
    export.coverage(
        10,
        1,
        "colonial_accident_1",
        coverage_level="Employee + Family",
        dependent_ids=[20, 21],
        subscriber_premium=30.0,
        org_premium=5.0,
    )


def test_premium_once_per_coverage_on_the_subscriber(
    workspace: Workspace, export: ExportBuilder
) -> None:
    family(export)
    segs = build(workspace, export)
    assert [h.get("AMT") for h in hd_lines(loop_for(segs, "E1"))] == ["35.00"]
    for relationship in ("01", "19"):
        assert all("AMT" not in h for h in hd_lines(loop_for(segs, "E1", relationship)))
    assert sum(1 for seg in segs if seg[0] == "AMT") == 1


def test_premium_on_every_member_when_the_profile_says_so(
    workspace: Workspace, export: ExportBuilder
) -> None:
    set_option(workspace, "colonial", "", 'premium_on = "every_member"')
    family(export)
    segs = build(workspace, export)
    assert [seg for seg in segs if seg[0] == "AMT"] == [["AMT", "P3", "35.00"]] * 3


# Death and retirement ---------------------------------------------------------------------------


def test_deceased_dependent_and_subscriber_carry_ins11_ins12(
    workspace: Workspace, export: ExportBuilder
) -> None:
    export.subscriber(1)
    export.dependent(
        20, 1, "spouse", termination_date="2026/10/20", termination_reason="Dependent Death"
    )
    export.dependent(21, 1, "child")
    export.coverage(
        10, 1, "colonial_accident_1", coverage_level="Employee + Children", dependent_ids=[20, 21]
    )  # the tier already says who is left: the spouse's cover ended with her death
    export.subscriber(
        2,
        employment_status="Terminated",
        termination_date="2026/11/02",
        termination_reason_id="death",
    )
    export.coverage(
        11, 2, "colonial_accident_1", termination_date="2026/11/02", termination_reason="Death"
    )
    export.subscriber(3, date_of_death="2026-11-10")  # PlanSource's own field, when sent
    export.coverage(12, 3, "colonial_accident_1", termination_date="2026/11/10")
    segs = build(workspace, export)
    spouse = loop_for(segs, "E1", "01")[0]
    assert spouse[3:5] == ["024", "03"] and spouse[11:13] == ["D8", "20261020"]
    child = loop_for(segs, "E1", "19")[0]
    assert len(child) <= 9, "the living are not given a date of death"
    assert len(loop_for(segs, "E1")[0]) <= 9
    employee = loop_for(segs, "E2")[0]
    assert employee[3:5] == ["024", "03"] and employee[11:13] == ["D8", "20261102"]
    assert loop_for(segs, "E3")[0][11:13] == ["D8", "20261110"]


def test_retiree_is_rt_with_retirement_date(workspace: Workspace, export: ExportBuilder) -> None:
    export.subscriber(1, employment_status="Retired", termination_date="2026/06/30")
    export.coverage(10, 1, "colonial_accident_1")  # retiree coverage continues
    export.subscriber(
        2,
        employment_status="Terminated",
        termination_date="2026/10/31",
        termination_reason_id="Retirement",
    )
    export.coverage(
        11, 2, "colonial_accident_1", termination_date="2026/10/31", termination_reason="Retirement"
    )
    export.subscriber(3, employment_status="Retired")  # no date PlanSource could give
    export.coverage(12, 3, "colonial_accident_1")
    export.subscriber(4, retirement_date="2027/03/31")  # not retired yet
    export.coverage(13, 4, "colonial_accident_1")
    result, segs = run(workspace, export)
    continuing = loop_for(segs, "E1")
    assert continuing[0][3] == "021" and continuing[0][8] == "RT"
    assert dates(continuing)["286"] == "20260630"
    ended = loop_for(segs, "E2")
    assert ended[0][3:5] == ["024", "04"] and ended[0][8] == "RT", "RT, not TE"
    assert dates(ended)["286"] == "20261031" and dates(ended)["337"] == "20261031"
    undated = loop_for(segs, "E3")
    assert undated[0][8] == "RT" and "286" not in dates(undated)
    assert codes(result) == [("retirement-date-missing", "2000/DTP*286", "3")]
    active = loop_for(segs, "E4")
    assert active[0][8] == "FT" and "286" not in dates(active)


# Names and addresses ----------------------------------------------------------------------------


def test_names_are_transliterated_not_stripped(workspace: Workspace, export: ExportBuilder) -> None:
    export.subscriber(1, last_name="Strauß-Østergård", first_name="Łukasz", middle_name="Zoë")
    export.dependent(20, 1, "spouse", last_name="Ibáñez", first_name="Ærøskøbing")
    export.coverage(
        10, 1, "colonial_accident_1", coverage_level="Employee + Spouse", dependent_ids=[20]
    )
    result, segs = run(workspace, export)
    names = [seg[3:6] for seg in segs if seg[0] == "NM1" and seg[1] == "IL"]
    assert names == [["STRAUSS-OSTERGARD", "LUKASZ", "ZOE"], ["IBANEZ", "AEROSKOBING"]]
    assert result.report.findings == []


def test_letters_x12_cannot_carry_are_a_finding(
    workspace: Workspace, export: ExportBuilder
) -> None:
    export.subscriber(1, middle_name="明")
    export.coverage(10, 1, "colonial_accident_1")
    result, segs = run(workspace, export)
    assert codes(result) == [("text-not-transliterated", "2100A/NM105", "1")]
    assert next(seg for seg in segs if seg[0] == "NM1")[5] == "", "no NM105 left"
    assert "明" not in json.dumps(result.summary(), ensure_ascii=False)


def test_long_address_continues_in_n302_and_cuts_are_findings(
    workspace: Workspace, export: ExportBuilder
) -> None:
    street = "12345 North Saint Lawrence Seaway Industrial Park Boulevard Building 7"  # 70
    export.subscriber(
        1, address_1=street, address_2="Suite 1200", last_name="Vandenberghe" + "-Abcdefgh" * 6
    )
    export.coverage(10, 1, "colonial_accident_1")
    export.subscriber(2, address_1="1 Main St", address_2="Unit " + "9" * 60)  # N302 too long
    export.coverage(11, 2, "colonial_accident_1")
    result, segs = run(workspace, export)
    n3 = next(seg for seg in loop_for(segs, "E1") if seg[0] == "N3")
    assert len(n3[1]) <= 55 and len(n3[2]) <= 55
    assert f"{n3[1]} {n3[2]}" == street.upper() + " SUITE 1200", "nothing lost"
    nm1 = next(seg for seg in loop_for(segs, "E1") if seg[0] == "NM1")
    assert len(nm1[3]) == 60
    n3_cut = next(seg for seg in loop_for(segs, "E2") if seg[0] == "N3")
    assert len(n3_cut[2]) == 55
    assert codes(result) == [
        ("value-truncated", "2100A/NM103", "1"),
        ("value-truncated", "2100A/N302", "2"),
    ]
    shown = json.dumps(result.summary()["findings"])
    assert "VANDENBERGHE" not in shown.upper() and "9999" not in shown, "no PHI in findings"
    assert all(f["severity"] == "warning" for f in result.summary()["findings"])  # type: ignore[attr-defined]


def test_a_short_address_is_untouched(workspace: Workspace, export: ExportBuilder) -> None:
    export.subscriber(1, address_1="1 Main St", address_2="Apt 2")
    export.coverage(10, 1, "colonial_accident_1")
    n3 = next(seg for seg in loop_for(build(workspace, export), "E1") if seg[0] == "N3")
    assert n3 == ["N3", "1 MAIN ST", "APT 2"]


# Declines -------------------------------------------------------------------------------------


def test_decline_record_ends_nothing(workspace: Workspace, export: ExportBuilder) -> None:
    """Unum asks for decline records: they never end a coverage nor terminate a member."""
    declined = {
        "plan_name": "Decline",
        "coverage_level": "Decline",
        "original_effective_date": "",
        "change_effective_date": "",
        "termination_date": "2026/01/01",
        "termination_reason": WAIVED,
    }
    export.subscriber(1, ssn="912000001")  # only a decline at this carrier
    export.coverage(10, 1, "unum_vwb_std_employee", **declined)
    export.subscriber(2, ssn="912000002")  # an election and a decline
    export.coverage(11, 2, "unum_group_accident_employee")
    export.coverage(12, 2, "unum_vwb_std_employee", **declined)
    segs = build(workspace, export, "unum")
    only_decline = loop_for(segs, "912000001")
    assert only_decline[0][3:5] == ["001", "26"] and only_decline[0][8] == "FT"
    assert hd_lines(only_decline) == [
        {"HD01": "001", "HD03": "STD", "HD04": "VWB-STD-EMPLOYEE", "HD05": "", "303": "20260101"}
    ]
    assert "357" not in dates(only_decline)
    both = loop_for(segs, "912000002")
    assert both[0][3:5] == ["001", "26"]
    assert [h["HD01"] for h in hd_lines(both)] == ["001", "021"]
    assert not any(seg[0] == "HD" and seg[1] == "024" for seg in segs)
    assert not any(seg[:2] == ["DTP", "349"] or seg[:2] == ["DTP", "357"] for seg in segs)


def test_full_file_never_ends_an_election_the_carrier_never_received(
    workspace: Workspace, export: ExportBuilder
) -> None:
    for sid in (1, 2):
        export.subscriber(sid)
        export.coverage(sid * 10, sid, "colonial_accident_1")
    export.coverage(21, 2, "colonial_cancer_0")
    first, _ = run(workspace, export)
    assert first.file_type == "full"
    assert baselines(workspace).commit("colonial", first.fingerprint, NOW)
    decline = {
        "plan_name": "Decline",
        "coverage_level": "Decline",
        "original_effective_date": "",
        "change_effective_date": "",
        "termination_date": "2026/11/01",
        "termination_reason": WAIVED,
    }
    export.coverage(11, 1, "colonial_cancer_0")  # entered late, never sent, then declined
    export.coverage(12, 1, "colonial_cancer_0", **decline)
    export.coverage(22, 2, "colonial_cancer_0", **decline)  # the carrier has this one
    _, segs = run(workspace, export, out="out2")
    never_sent = loop_for(segs, "E1")
    assert never_sent[0][3:5] == ["021", ""]
    assert [h["HD04"] for h in hd_lines(never_sent)] == ["ACCIDENT-1"]
    had = loop_for(segs, "E2")
    assert had[0][3:5] == ["001", "14"]
    assert {h["HD04"]: (h["HD01"], h.get("349")) for h in hd_lines(had)} == {
        "ACCIDENT-1": ("021", None),
        "CANCER-0": ("024", "20261031"),
    }


# Dependents no longer listed --------------------------------------------------------------------


def unlisted(export: ExportBuilder, ended: str, reason: str = "Divorce") -> None:
    export.subscriber(1)
    export.dependent(20, 1, "spouse", termination_date=ended, termination_reason=reason)
    export.dependent(21, 1, "child")
    # PlanSource took the spouse off the coverage when the divorce was entered.
    export.coverage(
        10,
        1,
        "colonial_accident_1",
        coverage_level="Employee + Child",
        dependent_ids=[21],
        change_effective_date="2026/10/16",
    )


def test_unlisted_dependent_is_terminated_explicitly_on_a_first_file(
    workspace: Workspace, export: ExportBuilder
) -> None:
    unlisted(export, "2026/10/15")
    result, segs = run(workspace, export)
    spouse = loop_for(segs, "E1", "01")
    assert spouse[0][1:5] == ["N", "01", "024", "01"]
    assert dates(spouse) == {"357": "20261015"}
    assert hd_lines(spouse) == []
    assert loop_for(segs, "E1", "19")[0][3] == "021"
    assert loop_for(segs, "E1")[0][3] == "021"
    assert result.report.dependent_terminations == 1


def test_unlisted_dependent_death_and_overage(workspace: Workspace, export: ExportBuilder) -> None:
    unlisted(export, "2026/11/01", reason="Dependent Death")
    export.dependent(
        22, 1, "stepchild", termination_date="2026/10/31", termination_reason="Overage Dependent"
    )
    segs = build(workspace, export)
    dead = loop_for(segs, "E1", "01")[0]
    assert dead[3:5] == ["024", "03"] and dead[11:13] == ["D8", "20261101"]
    assert loop_for(segs, "E1", "17")[0][3:5] == ["024", "07"]


def test_first_file_sends_only_terminations_within_initial_lookback(
    workspace: Workspace, export: ExportBuilder
) -> None:
    unlisted(export, "2026/09/20")  # 65 days before the as-of date: older than 60
    export.coverage(
        11, 1, "colonial_cancer_0", termination_date="2026/09/01", termination_reason="Plan Change"
    )
    result, segs = run(workspace, export)
    assert all(loop[0][2] != "01" for loop in member_loops(segs))
    assert [h["HD04"] for h in hd_lines(loop_for(segs, "E1"))] == ["ACCIDENT-1"]
    assert result.report.history_skipped == 2
    set_option(workspace, "colonial", "members", "initial_lookback_days = 90")
    _, wider = run(workspace, export, out="out-wider")
    assert loop_for(wider, "E1", "01")[0][3:5] == ["024", "01"]


def test_no_termination_when_the_subscriber_is_not_covered_at_the_carrier(
    workspace: Workspace, export: ExportBuilder
) -> None:
    unlisted(export, "2026/10/15")
    export.subscriber(2)
    export.dependent(30, 2, "spouse", termination_date="2026/10/15", termination_reason="Divorce")
    export.coverage(12, 2, "unum_group_accident_employee")
    segs = build(workspace, export)
    assert all(["REF", "0F", "E2"] not in loop for loop in member_loops(segs))
    # At Unum, which sends decline records: a decline alone is not being covered.
    export.subscriber(3, ssn="912000003")
    export.dependent(40, 3, "spouse", termination_date="2026/10/15", termination_reason="Divorce")
    export.coverage(
        13,
        3,
        "unum_vwb_std_employee",
        plan_name="Decline",
        coverage_level="Decline",
        termination_date="2026/01/01",
        termination_reason=WAIVED,
    )
    unum = build(workspace, export, "unum")
    assert [loop[0][2] for loop in member_loops(unum) if ["REF", "0F", "912000003"] in loop] == [
        "18"
    ]


def test_change_file_ends_the_unlisted_dependents_lines_on_plansource_dates(
    workspace: Workspace, export: ExportBuilder
) -> None:
    profile = workspace.carriers_dir / "colonial.toml"
    profile.write_text(profile.read_text() + '\n[changes]\nfile_type = "changes"\n')
    export.subscriber(1)
    export.dependent(20, 1, "spouse")
    export.coverage(
        10, 1, "colonial_accident_1", coverage_level="Employee + Spouse", dependent_ids=[20]
    )
    first, _ = run(workspace, export)
    assert baselines(workspace).commit("colonial", first.fingerprint, NOW)
    export.dependents[0].update(termination_date="2026/11/15", termination_reason="Divorce")
    export.coverages[0].update(
        coverage_level="Employee Only", dependent_ids=[], change_effective_date="2026/11/16"
    )
    _, segs = run(workspace, export, out="out2")
    spouse = loop_for(segs, "E1", "01")
    assert spouse[0][3:5] == ["024", "01"]
    assert dates(spouse)["357"] == "20261115"
    assert [(h["HD01"], h["349"]) for h in hd_lines(spouse)] == [("024", "20261115")]


@pytest.mark.parametrize("carrier", ["colonial", "unum", "allstate"])
def test_profiles_load_the_new_options(workspace: Workspace, carrier: str) -> None:
    profile = load_profile(workspace, carrier)
    assert profile.members.benefit_begin == "original_effective_date"
    assert profile.premium_on == "subscriber"
    assert profile.members.initial_lookback_days == 60


def test_unknown_option_value_is_a_config_error(workspace: Workspace) -> None:
    from edi.errors import ConfigError

    set_option(workspace, "colonial", "", 'premium_on = "everyone"')
    with pytest.raises(ConfigError, match="premium_on"):
        load_profile(workspace, "colonial")


def test_cli_lists_warnings_by_code_and_id_without_phi(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    last = "Vandenberghe" + "-Abcdefgh" * 6
    for sid in (1, 2):
        export.subscriber(sid, last_name=last)
        export.coverage(sid * 10, sid, "colonial_accident_1")
    args = ("generate", "-c", "colonial", "--source", str(export.write()), "--as-of", "2026-11-24")
    code, stdout, stderr = edi(capsys, *args)
    assert code == 0, stderr
    assert_valid_834(Path(stdout.strip().splitlines()[-1]))
    shown = " ".join(stderr.split())  # however the console wraps it
    assert "value-truncated (2100A/NM103) x2: subscriber id=1, subscriber id=2" in shown
    assert "VANDENBERGHE" not in (stdout + stderr).upper()
    code, stdout, _ = edi(capsys, *args, "--json")
    findings = json.loads(stdout)["findings"]
    assert [(f["code"], f["subscriber_id"]) for f in findings] == [
        ("value-truncated", "1"),
        ("value-truncated", "2"),
    ]
    assert "VANDENBERGHE" not in stdout.upper()
