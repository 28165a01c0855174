"""`edi generate` / `edi validate` / `edi carriers` as a user runs them: exit codes, output,
errors that name records by PlanSource id, and nothing left behind on failure."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edi.cli import main
from tests.support.workspace import ExportBuilder, assert_valid_834

AS_OF = ["--as-of", "2026-11-24"]


def run_cli(*args: str) -> tuple[int, str, str]:
    """Runs `edi` in a real process, as cron or a shell would."""
    done = subprocess.run(
        [sys.executable, "-m", "edi", *args], capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stdout, done.stderr


def run_inline(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    captured = capsys.readouterr()
    return int(done.value.code or 0), captured.out, captured.err


def files_in(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*")) if directory.exists() else []


def good_export(export: ExportBuilder) -> ExportBuilder:
    export.subscriber(1, last_name="Zebulon")
    export.coverage(10, 1, "colonial_accident_1")
    return export


@pytest.mark.sqlite_only  # a second process: it reads edi.toml, which names no store
def test_generate_prints_path_of_valid_file(edi_home: Path, export: ExportBuilder) -> None:
    source = good_export(export).write()
    out = edi_home / "out"
    code, stdout, stderr = run_cli(
        "generate", "--carrier", "colonial", "--source", str(source), "--out", str(out), *AS_OF
    )
    assert code == 0, stderr
    path = Path(stdout.strip().splitlines()[-1])
    assert path.parent == out and path.suffix == ".834"
    assert_valid_834(path)
    assert "Zebulon".upper() not in stderr.upper()


def test_generate_json_summary(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    source = good_export(export).write()
    code, stdout, _ = run_inline(
        capsys, "generate", "-c", "colonial", "--source", str(source), "--json", *AS_OF
    )
    summary = json.loads(stdout)
    assert code == 0
    assert summary["members"] == 1 and summary["additions"] == 1 and summary["valid"] is True
    assert Path(summary["file"]).exists()


def test_validate_command(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    source = good_export(export).write()
    _, stdout, _ = run_inline(capsys, "generate", "-c", "colonial", "--source", str(source), *AS_OF)
    path = Path(stdout.strip())
    assert run_inline(capsys, "validate", str(path), "--carrier", "colonial")[0] == 0
    broken = path.with_name("broken.834")
    broken.write_text(
        path.read_text()
        .replace("QTY*TO*1~", "QTY*TO*7~")
        .replace("ACCIDENT-1*EMP~", "ACCIDENT-1*XYZ~")
    )
    code, stdout, _ = run_inline(capsys, "validate", str(broken), "--carrier", "colonial", "--json")
    report = json.loads(stdout)
    assert code == 1 and report["valid"] is False
    codes = {f["code"] for f in report["findings"]}
    assert "qty-mismatch" in codes
    hd = [f for f in report["findings"] if f["segment_id"] == "HD" and f["source"] == "pyx12"]
    assert hd and hd[0]["loop"] == "2300" and hd[0]["segment_number"] is not None
    code, stdout, _ = run_inline(capsys, "validate", str(broken))
    assert code == 1 and "segment" in stdout and "HD" in stdout


def test_carriers_list_and_show(edi_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run_inline(capsys, "carriers", "list", "--json")
    rows = {row["name"]: row for row in json.loads(stdout)}
    assert code == 0 and set(rows) == {"colonial", "unum", "allstate"}
    assert "colonial_accident_0" in rows["colonial"]["plans"]
    code, stdout, _ = run_inline(capsys, "carriers", "show", "unum")
    assert code == 0 and "unum_vwb_std_employee" in stdout


def test_generate_uses_workspace_default_source(tmp_path: Path) -> None:
    """In a copy of the repository's demo workspace (its edi.toml names `samples/plansource`
    relative to the workspace), `edi generate --carrier colonial` needs no flags. A copy: a
    test never reserves control numbers in the repository's own state/."""
    repo = Path(__file__).resolve().parents[2]
    if not (repo / "samples" / "plansource" / "subscribers.json").exists():
        pytest.fail("samples/plansource is missing")
    home = tmp_path / "demo-workspace"
    shutil.copytree(repo / "carriers", home / "carriers")
    shutil.copyfile(repo / "edi.toml", home / "edi.toml")
    (home / "samples").symlink_to(repo / "samples")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edi",
            "--home",
            str(home),
            "generate",
            "--carrier",
            "colonial",
            "--out",
            str(tmp_path / "out"),
            *AS_OF,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home,
    )
    assert done.returncode == 0, done.stderr
    assert "SAMPLE" in done.stderr
    assert_valid_834(Path(done.stdout.strip()))


# Bad input: each names the record or key, exits non-zero, leaves no file behind.


def assert_fails_cleanly(
    capsys: pytest.CaptureFixture[str], source: Path, out: Path, exit_code: int, *needles: str
) -> str:
    code, stdout, stderr = run_inline(
        capsys, "generate", "-c", "colonial", "--source", str(source), "--out", str(out), *AS_OF
    )
    assert code == exit_code, stderr
    for needle in needles:
        assert needle in stderr
    assert files_in(out) == [], "nothing may be left behind"
    assert stdout == ""
    return stderr


def test_missing_required_field(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    good_export(export).subscriber(2, first_name="Quintessa")
    del export.subscribers[-1]["last_name"]
    stderr = assert_fails_cleanly(
        capsys, export.write(), edi_home / "out", 1, "subscriber id=2", "last_name", "missing"
    )
    assert "Quintessa".upper() not in stderr.upper()


def test_unreadable_date(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    good_export(export).coverage(11, 1, "colonial_cancer_0", original_effective_date="2026/13/45")
    stderr = assert_fails_cleanly(
        capsys,
        export.write(),
        edi_home / "out",
        1,
        "coverage id=11",
        "original_effective_date",
        "unreadable date",
    )
    assert "2026/13/45" not in stderr


def test_claimed_code_without_plan(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    good_export(export).coverage(11, 1, "colonial_pet_insurance_0")
    assert_fails_cleanly(
        capsys,
        export.write(),
        edi_home / "out",
        1,
        "coverage id=11",
        "colonial_pet_insurance_0",
        "no [plans] entry",
    )


def test_unknown_relationship(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    good_export(export).dependent(20, 1, "grand_nephew")
    export.coverages[0]["dependent_ids"] = [20]
    assert_fails_cleanly(
        capsys,
        export.write(),
        edi_home / "out",
        1,
        "dependent id=20",
        "grand_nephew",
        "relationships",
    )


def test_coverage_for_missing_subscriber(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    good_export(export).coverage(11, 999, "colonial_cancer_0")
    assert_fails_cleanly(
        capsys, export.write(), edi_home / "out", 1, "coverage id=11", "subscriber_id=999 not found"
    )


def test_duplicate_ids(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    good_export(export).coverage(10, 1, "colonial_cancer_0")
    assert_fails_cleanly(capsys, export.write(), edi_home / "out", 1, "coverage id=10", "duplicate")


def test_profile_with_unknown_key(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = edi_home / "carriers" / "colonial.toml"
    profile.write_text(profile.read_text().replace("[sponsor]\n", "[sponsor]\nnmae = 'typo'\n"))
    assert_fails_cleanly(
        capsys, good_export(export).write(), edi_home / "out", 2, "colonial.toml", "sponsor.nmae"
    )


def test_profile_plan_missing_plan_code(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = edi_home / "carriers" / "colonial.toml"
    text = profile.read_text().replace('plan_code = "ACCIDENT-1"\n', "")
    profile.write_text(text)
    assert_fails_cleanly(
        capsys,
        good_export(export).write(),
        edi_home / "out",
        2,
        "plans.colonial_accident_1.plan_code",
    )


def test_profile_code_outside_the_guide(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = edi_home / "carriers" / "colonial.toml"
    profile.write_text(profile.read_text().replace('spouse = "01"', 'spouse = "99"'))
    assert_fails_cleanly(
        capsys,
        good_export(export).write(),
        edi_home / "out",
        2,
        "members.relationships.spouse",
        "INS02",
    )


def test_unknown_carrier_is_a_usage_error(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    good_export(export)
    code, _, stderr = run_inline(
        capsys, "generate", "-c", "humana", "--source", str(export.write())
    )
    assert code == 2 and "humana" in stderr and "colonial" in stderr


def test_quarantine_lists_bad_records_and_sends_the_rest(
    edi_home: Path, export: ExportBuilder, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = edi_home / "carriers" / "colonial.toml"
    profile.write_text(
        profile.read_text().replace(
            "send_contact = true\n", 'send_contact = true\non_bad_record = "quarantine"\n'
        )
    )
    good_export(export).subscriber(2)
    export.coverage(11, 2, "colonial_pet_insurance_0")
    code, stdout, _stderr = run_inline(
        capsys, "generate", "-c", "colonial", "--source", str(export.write()), "--json", *AS_OF
    )
    summary = json.loads(stdout)
    assert code == 0 and summary["members"] == 1
    assert summary["quarantined"] and "coverage id=11" in summary["quarantined"][0]
