"""Piecewise parallel pyx12 gives the same verdict as pyx12 on the whole file: the same
findings at the same segment numbers, for a valid file and for files with injected errors."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from edi.pipeline import generate
from edi.validate import Finding, parallel_pyx12_findings, pyx12_findings
from edi.workspace import Workspace
from edi.x12.chunks import split_interchange
from tests.support.workspace import ExportBuilder

CODES = ["colonial_accident_1", "colonial_cancer_0", "colonial_critical_illness_1"]


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("parallel")
    home = root / "home"
    (home / "carriers").mkdir(parents=True)
    source_profiles = Path(__file__).resolve().parents[2] / "carriers"
    (home / "carriers" / "colonial.toml").write_text(
        (source_profiles / "colonial.toml").read_text()
    )
    export = ExportBuilder(root / "export")
    rng = random.Random(7)
    dependent = 10_000
    for sid in range(1, 241):
        export.subscriber(sid)
        covered = []
        relationships = []
        for _ in range(rng.choice([0, 1, 2])):
            dependent += 1
            chosen = rng.choice(["spouse", "child"])
            relationships.append("child" if "spouse" in relationships else chosen)
            export.dependent(dependent, sid, relationships[-1])
            covered.append(dependent)
        spouses = relationships.count("spouse")
        level = {
            (0, 0): "Employee Only",
            (1, 0): "Employee + Spouse",
            (0, 1): "Employee + Child",
            (0, 2): "Employee + Children",
        }.get((spouses, len(relationships) - spouses), "Employee + Family")
        for n, code in enumerate(rng.sample(CODES, rng.randint(1, 3))):
            export.coverage(
                sid * 10 + n,
                sid,
                code,
                dependent_ids=covered,
                coverage_level=level,
            )
    result = generate(
        Workspace.open(home),
        "colonial",
        now=datetime(2026, 11, 24, tzinfo=UTC),
        as_of=date(2026, 11, 24),
        source=export.write(),
        out_dir=root / "out",
    )
    return result.path


def verdict(findings: list[Finding]) -> list[tuple[object, ...]]:
    return sorted(
        (f.segment_number or 0, f.segment_id, f.loop, f.code, f.message) for f in findings
    )


def inject(path: Path, target: Path, edits: list[tuple[int, str]]) -> Path:
    """Replace whole segments (by 1-based number) with new text; '' deletes the segment."""
    lines = path.read_text().splitlines()
    for number, text in edits:
        lines[number - 1] = text
    target.write_text("\n".join(line for line in lines if line) + "\n")
    return target


def segment_numbers(path: Path, seg_id: str) -> list[int]:
    return [
        n
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.startswith(seg_id + "*")
    ]


def test_valid_file_is_split_into_several_pieces(valid_file: Path, tmp_path: Path) -> None:
    split = split_interchange(valid_file, 8, tmp_path)
    assert split is not None and len(split.pieces) >= 6
    assert sum(p.member_segments for p in split.pieces) == split.member_segments
    assert (
        verdict(parallel_pyx12_findings(valid_file, 2, 4))
        == verdict(pyx12_findings(valid_file))
        == []
    )


def scenario_edits(path: Path, name: str, rng: random.Random) -> list[tuple[int, str]]:
    hds, inss = segment_numbers(path, "HD"), segment_numbers(path, "INS")
    dmgs, refs = segment_numbers(path, "DMG"), segment_numbers(path, "REF*0F")
    se, iea = segment_numbers(path, "SE")[0], segment_numbers(path, "IEA")[0]
    picks = {
        "bad-codes": [(n, "HD*021**AH*ACCIDENT-1*XXX~") for n in rng.sample(hds, 5)],
        "bad-dates": [(n, "DMG*D8*20261399*F~") for n in rng.sample(dmgs, 4)],
        "missing-required-ref": [(n, "") for n in rng.sample(refs, 3)],
        "first-and-last-member": [(inss[0], "INS*Y*99*021**A***FT~"), (inss[-1] + 1, "REF*0F~")],
        "wrong-se-count": [(se, "SE*7*0001~")],
        "wrong-iea": [(iea, "IEA*1*000000999~")],
        "unknown-segment": [(n, "ZZZ*1~") for n in rng.sample(dmgs, 2)],
    }
    return picks[name]


@pytest.mark.parametrize(
    "name",
    [
        "bad-codes",
        "bad-dates",
        "missing-required-ref",
        "first-and-last-member",
        "wrong-se-count",
        "wrong-iea",
        "unknown-segment",
    ],
)
def test_injected_errors_same_verdict(valid_file: Path, tmp_path: Path, name: str) -> None:
    rng = random.Random(name)
    broken = inject(valid_file, tmp_path / f"{name}.834", scenario_edits(valid_file, name, rng))
    whole = verdict(pyx12_findings(broken))
    assert whole, "the injected error must be one pyx12 reports"
    assert verdict(parallel_pyx12_findings(broken, 2, 4)) == whole


def test_parallel_validation_through_python_dash_m(valid_file: Path, tmp_path: Path) -> None:
    """Parallel validation with spawned workers, through the CLI in its own process."""
    import subprocess
    import sys

    big = tmp_path / "big.834"
    text = valid_file.read_text()
    head, _, rest = text.partition("INS*")
    members, _, tail = ("INS*" + rest).rpartition("SE*")
    copies = 16
    count = int(tail.split("*", 1)[0]) + (copies - 1) * members.count("~")
    big.write_text(head + members * copies + "SE*" + str(count) + "*" + tail.split("*", 1)[1])
    assert big.stat().st_size > 2_000_000
    done = subprocess.run(
        [sys.executable, "-m", "edi", "validate", str(big), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(done.stdout)
    assert done.returncode == 1 and not report["valid"]
    assert {f["code"] for f in report["findings"]} <= {"qty-mismatch"}, report["findings"][:3]


def test_several_worker_batches_same_verdict(valid_file: Path, tmp_path: Path) -> None:
    """More pieces than one batch of workers: fresh pools per batch give the same findings."""
    rng = random.Random("batches")
    broken = inject(valid_file, tmp_path / "b.834", scenario_edits(valid_file, "bad-codes", rng))
    assert verdict(parallel_pyx12_findings(broken, 2, pieces_per_worker=10)) == verdict(
        pyx12_findings(broken)
    )
