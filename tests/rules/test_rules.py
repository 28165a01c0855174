"""The business edits beyond their scenario folders: what a pass scenario puts in the file,
quarantine (hold the family, send everyone else, lose nothing), the [rules] table, and
`edi validate --carrier` on any 834."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from edi.errors import ValidationFailed
from edi.pipeline import baselines, generate
from edi.profiles import load_profile
from edi.workspace import Workspace
from tests.rules.fixtures import FIXTURES, merged_export, prepare_profile, scenario, scenarios
from tests.support.workspace import (
    ExportBuilder,
    assert_valid_834,
    edi,
    hd_lines,
    loop_for,
    member_loops,
)

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
AS_OF = date(2026, 11, 24)


def build(home: Path, name: str, out: Path) -> list[list[str]]:
    s = scenario(FIXTURES / "pass" / name)
    prepare_profile(home, s.carrier, s.profile)
    ws = Workspace.open(home)
    result = generate(ws, s.carrier, now=NOW, as_of=s.as_of, source=s.folder, out_dir=out)
    return assert_valid_834(result.path, load_profile(ws, s.carrier))


def test_tier_from_dependents_sends_the_derived_tier(edi_home: Path, tmp_path: Path) -> None:
    loop = loop_for(build(edi_home, "tier-from-dependents", tmp_path), "E2001")
    assert [line["HD05"] for line in hd_lines(loop)] == ["ECH"]  # PlanSource said FAM


def test_exempt_overage_children_carry_ins10_and_ins09(edi_home: Path, tmp_path: Path) -> None:
    segs = build(edi_home, "overage-disabled-student-or-ended", tmp_path)
    kids = [loop[0] for loop in member_loops(segs) if loop[0][1] == "N"]
    assert len(kids) == 3
    padded = [ins + [""] * (11 - len(ins)) for ins in kids]
    assert [(ins[9], ins[10]) for ins in padded] == [("", "Y"), ("F", ""), ("", "")]
    assert padded[2][3] == "024"  # the third one's cover ended


def test_spouse_and_child_plans_are_on_the_dependents_loops(edi_home: Path, tmp_path: Path) -> None:
    segs = build(edi_home, "plans-cover-whom-they-say", tmp_path)
    loops = list(member_loops(segs))
    plans = {loop[0][2]: {line["HD04"] for line in hd_lines(loop)} for loop in loops}
    assert plans["18"] == {
        "VWB-STD-EMPLOYEE",
        "GROUP-CRITICAL-ILLNESS-EMPLOYEE",
        "GROUP-ACCIDENT-EMPLOYEE",
    }
    assert plans["01"] == {"GROUP-CRITICAL-ILLNESS-SPOUSE", "GROUP-ACCIDENT-EMPLOYEE"}
    assert plans["19"] == {
        "GROUP-CRITICAL-ILLNESS-EMPLOYEE",
        "WHOLE-LIFE-CHILD",
        "GROUP-ACCIDENT-EMPLOYEE",
    }


def test_lookup_codes_match_trimmed_and_case_folded_and_the_unclaimed_are_listed(
    edi_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = scenario(FIXTURES / "pass" / "lookup-codes-trimmed-and-case-folded")
    code, out, err = edi(
        capsys,
        "generate",
        "--carrier",
        "colonial",
        "--source",
        str(s.folder),
        "--out",
        str(tmp_path),
        "--as-of",
        "2026-11-24",
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["subscribers"] == 2 and summary["coverage_lines"] == 2
    medical = next(
        c["id"] for c in s.records("coverages") if c["benefit_lookup_code"] == "medical_2"
    )
    assert summary["unclaimed_coverages"] == {"count": 1, "coverage_ids": [str(medical)]}
    assert summary["skipped"] == {"unclaimed-lookup-code": 1}


def test_skipped_records_are_counted_by_reason(edi_home: Path, tmp_path: Path) -> None:
    s = scenario(FIXTURES / "pass" / "old-termination-counted-not-lost")
    result = generate(
        Workspace.open(edi_home),
        "colonial",
        now=NOW,
        as_of=AS_OF,
        source=s.folder,
        out_dir=tmp_path,
    )
    assert result.summary()["skipped"] == {"coverage-ended-before-lookback": 1}


# Quarantine -----------------------------------------------------------------------------------


def _plain(kind: str) -> list:  # type: ignore[type-arg]
    """Scenarios that need no profile lines of their own."""
    return [s for s in scenarios(kind) if not s.profile]


@pytest.mark.parametrize("carrier", ["colonial", "unum"])
def test_quarantine_holds_every_failing_family_and_sends_everyone_else(
    edi_home: Path, tmp_path: Path, carrier: str, capsys: pytest.CaptureFixture[str]
) -> None:
    failing, passing = _plain("fail"), _plain("pass")
    source = merged_export(tmp_path / "merged", failing + passing)
    prepare_profile(edi_home, carrier, quarantine=True)
    code, out, err = edi(
        capsys,
        "generate",
        "--carrier",
        carrier,
        "--source",
        str(source),
        "--out",
        str(tmp_path / "out"),
        "--as-of",
        "2026-11-24",
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    held = {entry["subscriber_id"]: entry for entry in summary["held"]}
    expected = {sid for s in failing if s.carrier == carrier for sid in s.subscriber_ids()}
    assert set(held) == expected
    for s in failing:
        if s.carrier == carrier:
            (sid,) = s.subscriber_ids()
            findings = held[sid]["findings"]
            assert sorted(f["code"] for f in findings if f["severity"] == "error") == s.findings
            assert all(f["subscriber_id"] == sid for f in findings)
            assert set(findings[0]) == {
                "code",
                "severity",
                "subscriber_id",
                "dependent_id",
                "coverage_id",
            }
    sent = sum(len(s.subscriber_ids()) for s in passing if s.carrier == carrier)
    assert summary["subscribers"] == sent > 0
    assert summary["held_subscribers"] == len(expected)
    assert summary["skipped"]["held-member"] >= len(expected)
    assert_valid_834(Path(summary["file"]), load_profile(Workspace.open(edi_home), carrier))


def test_quarantine_cli_table_names_the_held_by_id_only(
    edi_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = merged_export(tmp_path / "merged", _plain("fail") + _plain("pass"))
    prepare_profile(edi_home, "colonial", quarantine=True)
    code, _, err = edi(
        capsys,
        "generate",
        "-c",
        "colonial",
        "--source",
        str(source),
        "--out",
        str(tmp_path / "out"),
        "--as-of",
        "2026-11-24",
    )
    assert code == 0, err
    assert "held subscribers" in err
    (sid,) = scenario(FIXTURES / "fail" / "overage-child").subscriber_ids()
    assert f"held: subscriber id={sid}: overage-dependent" in err
    assert f"Member{sid}" not in err and "1999" not in err


def test_fail_mode_lists_every_family_and_writes_nothing(
    edi_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = [s for s in _plain("fail") if s.carrier == "colonial"]
    source = merged_export(tmp_path / "merged", failing + _plain("pass"))
    code, _, err = edi(
        capsys,
        "generate",
        "-c",
        "colonial",
        "--source",
        str(source),
        "--out",
        str(tmp_path / "out"),
        "--as-of",
        "2026-11-24",
    )
    assert code == 1
    assert "[business-edits-failed]" in err
    for s in failing:
        (sid,) = s.subscriber_ids()
        assert f"subscriber id={sid}" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_name_x12_cannot_carry_holds_only_that_family(edi_home: Path, tmp_path: Path) -> None:
    export = ExportBuilder(tmp_path / "export")
    export.subscriber(1, last_name="\ue000\ue001")
    export.coverage(10, 1, "colonial_accident_1")
    export.subscriber(2)
    export.coverage(20, 2, "colonial_accident_1")
    prepare_profile(edi_home, "colonial", quarantine=True)
    result = generate(
        Workspace.open(edi_home),
        "colonial",
        now=NOW,
        as_of=AS_OF,
        source=export.write(),
        out_dir=tmp_path / "out",
    )
    assert list(result.rules.held) == ["1"]
    assert result.body.subscribers == 1
    loop_for(assert_valid_834(result.path), "E2")


def test_warnings_never_hold_anyone(edi_home: Path, tmp_path: Path) -> None:
    s = scenario(FIXTURES / "pass" / "tier-from-dependents")
    prepare_profile(edi_home, "colonial", s.profile, quarantine=True)
    result = generate(
        Workspace.open(edi_home),
        "colonial",
        now=NOW,
        as_of=AS_OF,
        source=s.folder,
        out_dir=tmp_path,
    )
    assert not result.rules.held and result.body.subscribers == 1
    (group,) = result.summary()["warnings"]
    assert group["code"] == "tier-vs-dependents" and group["count"] == 1
    assert group["first"][0]["subscriber_id"] == "2001"


def test_a_held_member_is_not_recorded_as_sent(edi_home: Path, tmp_path: Path) -> None:
    """Delivered once; then their data breaks a rule: they are held, neither terminated as a
    disappearance nor changed in the baseline; once fixed, the change goes out."""
    prepare_profile(edi_home, "colonial", '[changes]\nfile_type = "changes"', quarantine=True)
    ws = Workspace.open(edi_home)
    export = ExportBuilder(tmp_path / "export")
    for sid in (1, 2):
        export.subscriber(sid)
        export.coverage(sid * 10, sid, "colonial_accident_1")

    def run(out: str) -> object:
        return generate(
            ws, "colonial", now=NOW, as_of=AS_OF, source=export.write(), out_dir=tmp_path / out
        )

    first = run("first")
    assert baselines(ws).commit("colonial", first.fingerprint, NOW)  # type: ignore[attr-defined]
    before = baselines(ws).get("colonial", "S1")
    export.subscribers[0]["birthdate"] = ""  # missing-birth-date: held
    export.subscribers[1]["last_name"] = "Renamed"  # a real change for subscriber 2
    second = run("second")
    assert list(second.rules.held) == ["1"]  # type: ignore[attr-defined]
    segs = assert_valid_834(second.path)  # type: ignore[attr-defined]
    assert [loop[0][3] for loop in member_loops(segs)] == ["001"]  # subscriber 2 only
    assert second.diff is not None and second.diff["disappearances"] == 0
    assert baselines(ws).commit("colonial", second.fingerprint, NOW)  # type: ignore[attr-defined]
    assert baselines(ws).get("colonial", "S1") == before  # as the carrier last had them
    export.subscribers[0]["birthdate"] = "1981/01/15"  # fixed
    third = run("third")
    assert not third.rules.held  # type: ignore[attr-defined]
    (loop,) = member_loops(assert_valid_834(third.path))  # type: ignore[attr-defined]
    assert ["REF", "0F", "E1"] in loop


def test_a_held_new_member_is_not_in_the_baseline(edi_home: Path, tmp_path: Path) -> None:
    prepare_profile(edi_home, "colonial", quarantine=True)
    ws = Workspace.open(edi_home)
    export = ExportBuilder(tmp_path / "export")
    export.subscriber(1, birthdate="")
    export.coverage(10, 1, "colonial_accident_1")
    export.subscriber(2)
    export.coverage(20, 2, "colonial_accident_1")
    result = generate(
        ws, "colonial", now=NOW, as_of=AS_OF, source=export.write(), out_dir=tmp_path / "o"
    )
    assert baselines(ws).commit("colonial", result.fingerprint, NOW)
    assert baselines(ws).get("colonial", "S1") is None
    assert baselines(ws).get("colonial", "S2") is not None


# The [rules] table and the other tables, validated at load -----------------------------------


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("[rules.tier-vs-dependent]\nenabled = false", "rules.tier-vs-dependent"),
        (
            '[rules.overage-dependent]\nmax_child_age = "old"',
            "rules.overage-dependent.max_child_age",
        ),
        ('[rules.missing-birth-date]\nseverity = "fatal"', "rules.missing-birth-date.severity"),
        ('[rules.tier-vs-dependents]\ntier_from = "hd05"', "rules.tier-vs-dependents.tier_from"),
        ('[changes]\nfile_typ = "changes"', "changes.file_typ"),
        ('[acks]\nremote_dri = "/out"', "acks.remote_dri"),
        ('[delivery]\nhost = "h"\nusername = "u"\npasword_env = "X"', "delivery.pasword_env"),
    ],
)
def test_profile_tables_are_validated_at_load_naming_file_and_key(
    edi_home: Path, capsys: pytest.CaptureFixture[str], extra: str, key: str
) -> None:
    prepare_profile(edi_home, "colonial", extra)
    code, _, err = edi(capsys, "carriers", "show", "colonial")
    assert code == 2, err
    assert f"colonial.toml: {key}:" in err


def test_plan_covers_is_validated(edi_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = edi_home / "carriers" / "unum.toml"
    path.write_text(path.read_text().replace('covers = "spouse"', 'covers = "spouses"', 1))
    code, _, err = edi(capsys, "carriers", "show", "unum")
    assert code == 2 and ".covers:" in err


def test_a_rule_can_be_turned_off(edi_home: Path, tmp_path: Path) -> None:
    s = scenario(FIXTURES / "fail" / "overage-child")
    prepare_profile(edi_home, "colonial", "[rules.overage-dependent]\nenabled = false")
    result = generate(
        Workspace.open(edi_home),
        "colonial",
        now=NOW,
        as_of=AS_OF,
        source=s.folder,
        out_dir=tmp_path,
    )
    assert_valid_834(result.path)


def test_max_child_age_is_a_parameter(edi_home: Path, tmp_path: Path) -> None:
    s = scenario(FIXTURES / "fail" / "overage-child")  # a child of 27
    prepare_profile(edi_home, "colonial", "[rules.overage-dependent]\nmax_child_age = 27")
    generate(
        Workspace.open(edi_home),
        "colonial",
        now=NOW,
        as_of=AS_OF,
        source=s.folder,
        out_dir=tmp_path,
    )
    path = edi_home / "carriers" / "colonial.toml"
    path.write_text(path.read_text().replace("max_child_age = 27", "max_child_age = 26"))
    with pytest.raises(ValidationFailed):
        generate(
            Workspace.open(edi_home),
            "colonial",
            now=NOW,
            as_of=AS_OF,
            source=s.folder,
            out_dir=tmp_path / "again",
        )


# edi validate --carrier ------------------------------------------------------------------------


def test_validate_runs_the_business_edits_on_any_834(
    edi_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build(edi_home, "tier-agrees-with-dependents", tmp_path)
    (good,) = tmp_path.glob("*.834")
    code, out, err = edi(capsys, "validate", str(good), "--carrier", "colonial")
    assert code == 0, out + err
    # Another vendor's file: the same file with a tier that disagrees with its dependents.
    text = good.read_text()
    assert "*ACCIDENT-1*ESP~" in text
    bad = tmp_path / "vendor.834"
    bad.write_text(text.replace("*ACCIDENT-1*ESP~", "*ACCIDENT-1*ECH~", 1))
    code, out, _ = edi(capsys, "validate", str(bad), "--carrier", "colonial", "--json")
    assert code == 1
    findings = json.loads(out)["findings"]
    assert [(f["code"], f["segment_id"], f["source"]) for f in findings] == [
        ("tier-vs-dependents", "HD", "rules")
    ]
    number = findings[0]["segment_number"]
    segs = bad.read_text().split("~\n")
    assert segs[number - 1].startswith("HD*021**AH*ACCIDENT-1*ECH")
    # Without --carrier only pyx12 judges (the file is syntactically fine).
    assert edi(capsys, "validate", str(bad))[0] == 0


def test_validate_reads_back_overage_exemptions(
    edi_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build(edi_home, "overage-disabled-student-or-ended", tmp_path)
    (good,) = tmp_path.glob("*.834")
    assert edi(capsys, "validate", str(good), "--carrier", "colonial")[0] == 0
    stripped = tmp_path / "stripped.834"
    text = good.read_text()
    assert "*A****F~" in text
    stripped.write_text(text.replace("*A****F~", "*A~", 1))  # INS09 F removed
    code, out, _ = edi(capsys, "validate", str(stripped), "--carrier", "colonial")
    assert code == 1 and "[overage-dependent]" in out
