"""`edi validate` groups findings (decisive first, pyx12's wording without values); `edi diff`
and `edi generate` count the same file the same way; change rows say what changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edi.validate import redact
from tests.support.workspace import REPO, ExportBuilder, assert_valid_834, edi, segments

UNUM_FILE = REPO / "samples" / "out" / "ACME_unum_834_20261124_000000001.834"
COLONIAL_FILE = REPO / "samples" / "out" / "ACME_colonial_834_20261124_000000001.834"
AS_OF = ["--as-of", "2026-11-24"]


def test_another_carriers_file_decisive_finding_first_and_grouped(
    edi_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = edi(capsys, "validate", str(UNUM_FILE), "--carrier", "colonial")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("1× [profile-isa-ids] ISA")
    assert "ISA06/ISA08 are ACMEWIDGETS/UNUMEDI, profile 'colonial' expects" in lines[0]
    hd_count = sum(seg[0] == "HD" for seg in segments(UNUM_FILE))
    assert lines[1].startswith(f"{hd_count}× [profile-unknown-plan]")
    assert f"(+{hd_count - 3} more)" in lines[1]
    assert len(lines) == 2, "one line per group, not one per finding"
    assert "did you mean --carrier unum?" in err
    # Unum's REF*0F is the SSN: members are named by position, never by it.
    assert "in member #1, member #2, member #3" in lines[1]
    code, out, _ = edi(capsys, "validate", str(UNUM_FILE), "--carrier", "colonial", "--json")
    document = json.loads(out)
    assert [g["code"] for g in document["groups"]] == ["profile-isa-ids", "profile-unknown-plan"]
    assert document["groups"][1]["count"] == hd_count == len(document["findings"]) - 1
    assert "--carrier unum" in document["hint"]


def test_pyx12_wording_kept_values_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = COLONIAL_FILE.read_text()
    broken = tmp_path / "broken.834"
    broken.write_text(
        text.replace("INS*Y*18*021**A***FT~", "INS*Y*18*0X1**A***FT~", 1).replace(
            "DMG*D8*19810603*F~", "DMG*D8*19811303*F~", 1
        )
    )
    code, out, _ = edi(capsys, "validate", str(broken))
    assert code == 1
    assert "is not a valid code for Maintenance Type Code (INS03)" in out
    assert 'Data element "Member Birth Date" (DMG02) contains an invalid date (…)' in out
    assert "in REF*0F AW1001" in out
    assert "0X1" not in out and "19811303" not in out and "SIOBHAN" not in out


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            'Data element "Member Last Name" (NM103) is too long: len("SMITHSON") = 70 > 60',
            'Data element "Member Last Name" (NM103) is too long: len(…) = 70 > 60',
        ),
        (
            "(Q) is not a valid code for Gender Code (DMG03)",
            "(…) is not a valid code for Gender Code (DMG03)",
        ),
        (
            'Data element "Member Last Name" with a value of (SMITH)',
            'Data element "…" with a value of (…)',
        ),
        (
            "Syntax Error (P0102): If any of DMG01, DMG02 is present, then all are required",
            "Syntax Error (P0102): If any of DMG01, DMG02 is present, then all are required",
        ),
    ],
)
def test_redact(raw: str, expected: str) -> None:
    assert redact(raw) == expected


def counts(summary: dict[str, object]) -> dict[str, object]:
    return {k: summary[k] for k in ("additions", "changes", "terminations")}


def test_first_file_diff_counts_what_generate_writes(
    edi_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = str(REPO / "samples" / "plansource")
    code, out, _ = edi(capsys, "diff", "-c", "colonial", "--source", source, *AS_OF, "--json")
    assert code == 0
    diff = json.loads(out)
    code, out, _ = edi(
        capsys,
        "generate",
        "-c",
        "colonial",
        "--source",
        source,
        *AS_OF,
        "--json",
        "--out",
        str(edi_home / "out"),
    )
    assert code == 0
    generated = json.loads(out)
    assert_valid_834(Path(generated["file"]))
    assert counts(diff) == counts(generated)
    assert len(diff["members"]) == generated["members"]


def test_change_file_counts_agree_and_rows_say_what_changed(
    live_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = live_home / "carriers" / "colonial.toml"
    profile.write_text(
        profile.read_text() + '\n[changes]\nfile_type = "changes"\nmax_terminations_pct = 100\n'
    )
    first = ExportBuilder(tmp_path / "first")
    for sid in (1, 2, 3):
        first.subscriber(sid)
        first.coverage(sid * 10, sid, "colonial_accident_1")
    assert edi(capsys, "run", "-c", "colonial", "--source", str(first.write()), *AS_OF)[0] == 0

    second = ExportBuilder(tmp_path / "second")
    second.subscriber(1, address_1="2 Other St")  # a demographic change
    second.coverage(10, 1, "colonial_accident_1")
    second.subscriber(2)
    second.coverage(20, 2, "colonial_accident_1", subscriber_premium=12.5)
    second.subscriber(3)
    second.coverage(30, 3, "colonial_accident_1", termination_date="2026/11/30")
    second.subscriber(4)  # new
    second.coverage(40, 4, "colonial_accident_1")
    source = str(second.write())

    code, out, err = edi(capsys, "diff", "-c", "colonial", "--source", source, *AS_OF, "--json")
    assert code == 0, err
    diff = json.loads(out)
    rows = {row["member"]: row for row in diff["members"]}
    assert rows["subscriber id=1"]["changed"] == "person.address_1"
    assert rows["subscriber id=2"]["changed"] == "line ACCIDENT-1: premium"
    assert rows["subscriber id=3"]["changed"] == "line ACCIDENT-1: ended"
    assert rows["subscriber id=4"]["kind"] == "addition"
    assert "2 Other St" not in out

    code, out, err = edi(
        capsys,
        "generate",
        "-c",
        "colonial",
        "--source",
        source,
        *AS_OF,
        "--json",
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 0, err
    generated = json.loads(out)
    assert_valid_834(Path(generated["file"]))
    assert counts(generated) == counts(diff) == {"additions": 1, "changes": 2, "terminations": 1}
    assert generated["members"] == len(diff["members"]) == 4
