"""Two snapshots per scenario: the first is delivered (its baseline committed), the second
produces a change file that pyx12 accepts, with exactly the expected INS/HD codes and dates."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from edi.errors import GuardTripped, NothingToSend
from edi.pipeline import baselines, generate, preview
from edi.profiles import load_profile
from edi.workspace import Workspace
from tests.support.workspace import (
    ExportBuilder,
    assert_valid_834,
    dates,
    hd_lines,
    member_loops,
)

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
AS_OF = date(2026, 11, 24)
CHANGES = """
[changes]
file_type = "changes"
max_terminations_pct = 50
max_disappearances = 1
"""


@pytest.fixture
def ws(edi_home: Path) -> Workspace:
    profile = edi_home / "carriers" / "colonial.toml"
    profile.write_text(profile.read_text() + CHANGES)
    return Workspace.open(edi_home)


def base_export(export: ExportBuilder) -> ExportBuilder:
    for sid in (1, 2, 3):
        export.subscriber(sid)
        export.coverage(sid * 10, sid, "colonial_accident_1")
    export.dependent(21, 2, "spouse")
    export.coverages[1].update(coverage_level="Employee + Spouse", dependent_ids=[21])
    return export


def deliver_first(ws: Workspace, export: ExportBuilder) -> None:
    """The first file (everyone) as if delivered: its proposal becomes the baseline."""
    first = generate(
        ws, "colonial", now=NOW, as_of=AS_OF, source=export.write(), out_dir=ws.home / "out"
    )
    assert first.file_type == "changes"
    assert first.body.members == sum(1 for _ in export.subscribers) + len(export.dependents)
    assert baselines(ws).commit("colonial", first.fingerprint, NOW)


def changed(ws: Workspace, export: ExportBuilder, **options: object) -> list[list[str]]:
    result = generate(
        ws,
        "colonial",
        now=NOW,
        as_of=AS_OF,
        source=export.write(),
        out_dir=ws.home / "out2",
        **options,
    )  # type: ignore[arg-type]
    return assert_valid_834(result.path, load_profile(ws, "colonial"))


def only(segs: list[list[str]]) -> list[list[list[str]]]:
    return list(member_loops(segs))


def test_addition(ws: Workspace, export: ExportBuilder) -> None:
    deliver_first(ws, base_export(export))
    export.subscriber(4)
    export.coverage(40, 4, "colonial_cancer_0")
    segs = changed(ws, export)
    (loop,) = only(segs)
    assert loop[0][1:4] == ["Y", "18", "021"] and ["REF", "0F", "E4"] in loop
    assert [(h["HD01"], h["HD04"]) for h in hd_lines(loop)] == [("021", "CANCER-0")]
    bgn = next(seg for seg in segs if seg[0] == "BGN")
    assert bgn[1] == "00" and bgn[8] == "2"  # BGN08 2: changes (update)


def test_demographic_change(ws: Workspace, export: ExportBuilder) -> None:
    deliver_first(ws, base_export(export))
    export.subscribers[0]["address_1"] = "99 New Address Rd"
    (loop,) = only(changed(ws, export))
    assert loop[0][3:5] == ["001", "25"] and hd_lines(loop) == []
    assert next(seg for seg in loop if seg[0] == "N3")[1] == "99 NEW ADDRESS RD"


def test_plan_change(ws: Workspace, export: ExportBuilder) -> None:
    deliver_first(ws, base_export(export))
    export.coverages[0].update(termination_date="2026/10/31", termination_reason="Plan Change")
    export.coverage(
        11,
        1,
        "colonial_accident_2",
        original_effective_date="2026/11/01",
        change_effective_date="2026/11/01",
    )
    (loop,) = only(changed(ws, export))
    assert loop[0][3:5] == ["001", "22"]
    assert [(h["HD01"], h["HD04"], h.get("349"), h.get("348")) for h in hd_lines(loop)] == [
        ("024", "ACCIDENT-1", "20261031", "20260101"),
        ("021", "ACCIDENT-2", None, "20261101"),
    ]


def test_coverage_level_change_and_dependent_added(ws: Workspace, export: ExportBuilder) -> None:
    deliver_first(ws, base_export(export))
    export.dependent(31, 3, "child")
    export.coverages[2].update(
        coverage_level="Employee + Child", dependent_ids=[31], change_effective_date="2026/11/01"
    )
    segs = changed(ws, export)
    subscriber, child = only(segs)
    assert subscriber[0][3] == "001"
    # Issue 18: DTP*348 stays the original effective date; the change is DTP*303.
    assert [(h["HD01"], h["HD05"], h["348"], h["303"]) for h in hd_lines(subscriber)] == [
        ("001", "ECH", "20260101", "20261101")
    ]
    assert child[0][1:4] == ["N", "19", "021"] and hd_lines(child)[0]["HD01"] == "021"


def test_dependent_removed(ws: Workspace, export: ExportBuilder) -> None:
    deliver_first(ws, base_export(export))
    export.dependents[0].update(termination_date="2026/11/15", termination_reason="Divorce")
    # The tier follows the dependents (tier-vs-dependents): the employee's line changes too.
    export.coverages[1].update(coverage_level="Employee Only")
    employee, loop = only(changed(ws, export))
    assert employee[0][1:4] == ["Y", "18", "001"] and hd_lines(employee)[0]["HD05"] == "EMP"
    assert loop[0][1:5] == ["N", "01", "024", "01"]
    assert dates(loop)["357"] == "20261115" and hd_lines(loop)[0]["349"] == "20261115"


def test_member_terminated(ws: Workspace, export: ExportBuilder) -> None:
    deliver_first(ws, base_export(export))
    export.subscribers[0].update(
        termination_date="2026/11/20",
        termination_reason_id="employment_termination",
        employment_status="Terminated",
    )
    export.coverages[0].update(
        termination_date="2026/11/20", termination_reason="Employment Termination"
    )
    (loop,) = only(changed(ws, export))
    assert (
        loop[0][3:5] == ["024", "08"]
        and dates(loop)["357"] == "20261120"
        and dates(loop)["337"] == "20261120"
    )
    assert [(h["HD01"], h["349"]) for h in hd_lines(loop)] == [("024", "20261120")]


def test_waived_after_election(ws: Workspace, export: ExportBuilder) -> None:
    base_export(export).coverage(13, 1, "colonial_cancer_0")
    deliver_first(ws, export)
    export.coverage(
        12,
        1,
        "colonial_accident_1",
        plan_name="Decline",
        coverage_level="Decline",
        original_effective_date="",
        change_effective_date="",
        termination_date="2026/12/01",
        termination_reason="Subscriber voluntarily waived coverage",
    )
    (loop,) = only(changed(ws, export))
    assert loop[0][3:5] == ["001", "14"]
    assert [(h["HD01"], h["349"]) for h in hd_lines(loop)] == [("024", "20261130")]


def test_reinstated(ws: Workspace, export: ExportBuilder) -> None:
    base_export(export)
    export.subscribers[0].update(
        termination_date="2026/10/31", termination_reason_id="employment_termination"
    )
    export.coverages[0].update(
        termination_date="2026/10/31", termination_reason="Employment Termination"
    )
    deliver_first(ws, export)
    export.subscribers[0].update(termination_date="", termination_reason_id="")
    export.coverages[0].update(termination_date="", termination_reason="")
    (loop,) = only(changed(ws, export))
    assert loop[0][3:5] == ["025", "41"]
    assert [h["HD01"] for h in hd_lines(loop)] == ["025"]


def test_disappeared_within_the_guard(ws: Workspace, export: ExportBuilder) -> None:
    deliver_first(ws, base_export(export))
    del export.subscribers[0]
    del export.coverages[0]
    (loop,) = only(changed(ws, export))
    assert ["REF", "0F", "E1"] in loop and loop[0][3:5] == ["024", "AI"]
    assert [(h["HD01"], h["349"]) for h in hd_lines(loop)] == [("024", "20261123")]
    assert dates(loop)["357"] == "20261123"


def test_disappeared_beyond_the_guard(ws: Workspace, export: ExportBuilder) -> None:
    deliver_first(ws, base_export(export))
    export.subscribers = export.subscribers[2:]
    export.dependents.clear()
    export.coverages = export.coverages[2:]
    with pytest.raises(GuardTripped) as tripped:
        changed(ws, export)
    assert "subscriber id=1" in str(tripped.value.details) and "subscriber id=2" in str(
        tripped.value.details
    )
    assert not list((ws.home / "out2").glob("*.834"))
    segs = changed(
        ws, export, allow_mass_termination=True, reason="carrier merger, confirmed by HR"
    )
    assert sorted(loop[0][3] for loop in only(segs)) == ["024", "024", "024"]


def test_unchanged_data_gives_no_change_file(ws: Workspace, export: ExportBuilder) -> None:
    deliver_first(ws, base_export(export))
    with pytest.raises(NothingToSend):
        changed(ws, export)
    assert not list((ws.home / "out2").glob("*.834"))


def test_baseline_moves_only_on_commit(ws: Workspace, export: ExportBuilder) -> None:
    deliver_first(ws, base_export(export))
    export.subscriber(4)
    export.coverage(40, 4, "colonial_cancer_0")
    first_try = changed(ws, export)  # written but never delivered: no commit
    second_try = changed(ws, export)
    assert only(first_try) == only(second_try) and len(only(second_try)) == 1
    assert (
        preview(ws, "colonial", now=NOW, as_of=AS_OF, source=export.write()).counts["addition"] == 1
    )


def test_full_file_keeps_everyone_and_terminates_the_disappeared(
    ws: Workspace, export: ExportBuilder
) -> None:
    deliver_first(ws, base_export(export))
    del export.subscribers[0]
    del export.coverages[0]
    segs = changed(ws, export, file_type="full")
    codes = {
        loop[0][2] + ":" + next(s[2] for s in loop if s[:2] == ["REF", "0F"]): loop[0][3]
        for loop in only(segs)
    }
    assert codes == {"18:E1": "024", "18:E2": "021", "01:E2": "021", "18:E3": "021"}
