"""Validation: pyx12 judges the syntax (SNIP 1-2), then the carrier profile's own rules.

pyx12 runs through its Python API (`x12n_document` with a JSON error sink); the `x12valid` exit
code is 1 even on success and is never used. Findings carry segment number, segment id, loop and
a message. Messages never carry element values: pyx12's texts are stripped of quoted values.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edi.profiles import CarrierProfile
from edi.x12.reader import read_segments

# Below this size the process start-up costs more than the parallel run saves.
PARALLEL_FROM_BYTES = 2_000_000
MAX_WORKERS = 8
PIECE_BYTES = 2_000_000
PIECES_PER_CHILD = 4
_QUOTED = re.compile(r"""(")[^"]*(")|(')[^']*(')""")
_BRACKETED = re.compile(r"(\()[^()]*(\))")
_LONG_DIGITS = re.compile(r"\d{4,}")


@dataclass(frozen=True, slots=True)
class Finding:
    segment_number: int | None
    segment_id: str
    loop: str
    code: str
    message: str
    source: str  # "pyx12" or "profile"

    def line(self) -> str:
        number = "-" if self.segment_number is None else str(self.segment_number)
        where = f"segment {number} {self.segment_id} loop {self.loop or '-'}"
        return f"{where}: [{self.code}] {self.message}"


@dataclass(slots=True)
class ValidationReport:
    path: str
    findings: list[Finding] = field(default_factory=list)
    # Business-edit warnings: listed, never making a file invalid.
    warnings: list[Finding] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "valid": self.valid,
            "findings": [asdict(f) for f in self.findings],
            "warnings": [asdict(f) for f in self.warnings],
        }


def business_findings(path: Path, profile: CarrierProfile) -> tuple[list[Finding], list[Finding]]:
    """The profile's business edits (edi.rules) on the file's families read back:
    (errors, warnings), each pointing at the member's INS or the coverage's HD."""
    from edi.rules.readback import file_findings

    errors: list[Finding] = []
    warnings: list[Finding] = []
    for number, finding in file_findings(path, profile):
        coverage = finding.coverage_id is not None
        converted = Finding(
            number,
            "HD" if coverage else "INS",
            finding.ref.split("/", 1)[0],
            finding.code,
            f"{finding.ref} {finding.message}",
            "rules",
        )
        (errors if finding.is_error else warnings).append(converted)
    return errors, warnings


# pyx12's wording names elements by name and reference (`Data element "Member Birth Date"
# (DMG02)`, `… for Gender Code (DMG03)`, `Syntax Error (P0102)`): not PHI, and what makes a
# finding useful. Those are kept; every other quoted or bracketed text (a value) is not.
_KEPT = (
    re.compile(r'"[A-Za-z][\w ,./&-]*" \([A-Z][A-Z0-9]{1,2}\d{2}\)'),
    re.compile(r"for [A-Za-z][\w ,./&-]* \([A-Z][A-Z0-9]{1,2}\d{2}\)"),
    re.compile(r"Syntax Error \([A-Z]\d{4,}\)"),
)


def redact(message: str) -> str:
    kept: list[str] = []

    def protect(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    for pattern in _KEPT:
        message = pattern.sub(protect, message)
    message = _QUOTED.sub(
        lambda m: f"{m.group(1) or m.group(3)}…{m.group(2) or m.group(4)}", message
    )
    message = _LONG_DIGITS.sub("#", _BRACKETED.sub(r"\1…\2", message))
    return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], message)


class _LoopTracker:
    """Remembers each segment's loop id compactly, for the findings pyx12 reports by number."""

    def __init__(self) -> None:
        self.loop_ids: list[str] = []
        self.index: dict[str, int] = {}
        self.by_segment = array("H")

    def __call__(self, seg: Any, src: Any, node: Any, valid: Any) -> None:
        parent = node.get_parent() if node is not None else None
        loop_id = getattr(parent, "id", "") or ""
        if loop_id not in self.index:
            self.index[loop_id] = len(self.loop_ids)
            self.loop_ids.append(loop_id)
        self.by_segment.append(self.index[loop_id])

    def loop_of(self, line: int | None) -> str:
        """The loop of the segment at pyx12's 1-based position `line` (ISA is 1)."""
        if line is None or not 1 <= line <= len(self.by_segment):
            return ""
        return self.loop_ids[self.by_segment[line - 1]]


def _walk_pyx12_errors(doc: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(error, where) pairs from pyx12's JSON error tree."""
    for isa in doc.get("interchanges", []):
        for error in isa.get("errors", []):
            yield error, {"seg_id": "ISA", "cur_line": isa.get("cur_line")}
        for gs in isa.get("groups", []):
            for error in gs.get("errors", []):
                yield error, {"seg_id": "GS", "cur_line": gs.get("cur_line")}
            for st in gs.get("transactions", []):
                for error in st.get("errors", []):
                    yield error, {"seg_id": "ST", "cur_line": st.get("cur_line")}
                for seg in st.get("segments", []):
                    for error in seg.get("errors", []):
                        yield error, seg
                    for element in seg.get("elements", []):
                        for error in element.get("errors", []):
                            named = dict(error)
                            named["err_str"] = f"{element.get('name', '')}: {error['err_str']}"
                            yield named, seg


def pyx12_findings(path: Path) -> list[Finding]:
    import pyx12.params
    import pyx12.x12n_document

    pyx12_log = logging.getLogger("pyx12")
    previous = pyx12_log.level
    pyx12_log.setLevel(logging.CRITICAL)
    sink = io.StringIO()
    tracker = _LoopTracker()
    try:
        ok = pyx12.x12n_document.x12n_document(
            pyx12.params.params(), str(path), None, None, fd_json=sink, callback=tracker
        )
    except Exception as exc:  # pyx12 raises its own engine errors on unreadable input
        return [Finding(None, "", "", "pyx12-engine", redact(type(exc).__name__), "pyx12")]
    finally:
        pyx12_log.setLevel(previous)
    doc = json.loads(sink.getvalue() or "{}")
    findings = [
        Finding(
            segment_number=where.get("cur_line"),
            segment_id=str(where.get("seg_id", "")),
            loop=tracker.loop_of(where.get("cur_line")),
            code=str(error.get("err_cde", "")),
            message=redact(str(error.get("err_str", ""))),
            source="pyx12",
        )
        for error, where in _walk_pyx12_errors(doc)
    ]
    if not ok and not findings:
        findings.append(Finding(None, "", "", "pyx12-invalid", "pyx12 rejected the file", "pyx12"))
    return findings


@dataclass(slots=True)
class _Scan:
    """Facts the profile rules need, gathered in one streaming pass."""

    qty: dict[str, int] = field(default_factory=dict)
    ins: Counter[str] = field(default_factory=Counter)
    has_master_policy: bool = False
    isa_ids: tuple[str, str] = ("", "")


def _profile_rule_findings(path: Path, profile: CarrierProfile) -> tuple[_Scan, list[Finding]]:
    scan = _Scan()
    findings: list[Finding] = []
    plans = {(p.insurance_line, p.plan_code) for p in profile.plans.values()}
    loop = ""
    member_has_357 = True
    member_term_at: int | None = None
    hd: dict[str, Any] = {}

    def close_hd() -> None:
        if hd and hd["maintenance"] == "024" and not hd["has_349"]:
            findings.append(
                Finding(
                    hd["number"],
                    "HD",
                    "2300",
                    "profile-missing-349",
                    "a terminated coverage (HD01 024) has no DTP*349",
                    "profile",
                )
            )
        if hd and hd["begin"] and hd["end"] and hd["end"] < hd["begin"]:
            findings.append(
                Finding(
                    hd["number"],
                    "HD",
                    "2300",
                    "profile-date-order",
                    "DTP*349 is before DTP*348",
                    "profile",
                )
            )
        hd.clear()

    def close_member() -> None:
        close_hd()
        if member_term_at is not None and not member_has_357:
            findings.append(
                Finding(
                    member_term_at,
                    "INS",
                    "2000",
                    "profile-missing-357",
                    "a terminated member (INS03 024) has no DTP*357",
                    "profile",
                )
            )

    for number, elements in enumerate(read_segments(path), start=1):
        seg_id = elements[0]
        if seg_id == "ISA" and len(elements) > 8:
            scan.isa_ids = (elements[6].strip(), elements[8].strip())
        elif seg_id == "QTY" and len(elements) > 2:
            scan.qty[elements[1]] = int(elements[2]) if elements[2].isdigit() else -1
        elif seg_id == "REF" and loop == "" and len(elements) > 1 and elements[1] == "38":
            scan.has_master_policy = True
        elif seg_id == "INS":
            close_member()
            loop = "2000"
            scan.ins[elements[1] if len(elements) > 1 else "?"] += 1
            member_term_at = number if len(elements) > 3 and elements[3] == "024" else None
            member_has_357 = False
        elif seg_id == "DTP" and loop == "2000" and len(elements) > 1 and elements[1] == "357":
            member_has_357 = True
        elif seg_id == "HD":
            close_hd()
            loop = "2300"
            key = (
                elements[3] if len(elements) > 3 else "",
                elements[4] if len(elements) > 4 else "",
            )
            if key not in plans:
                findings.append(
                    Finding(
                        number,
                        "HD",
                        "2300",
                        "profile-unknown-plan",
                        f"HD03/HD04 is not a plan of profile {profile.name!r}",
                        "profile",
                    )
                )
            hd.update(number=number, maintenance=elements[1], has_349=False, begin=None, end=None)
        elif seg_id == "DTP" and loop == "2300" and len(elements) > 3:
            if elements[1] == "349":
                hd["has_349"] = True
                hd["end"] = elements[3]
            elif elements[1] == "348":
                hd["begin"] = elements[3]
        elif seg_id == "SE":
            close_member()
            loop = "SE"
    return scan, findings


def profile_findings(path: Path, profile: CarrierProfile | None) -> list[Finding]:
    findings: list[Finding] = []
    if profile is None:
        scan = _count_only(path)
    else:
        scan, findings = _profile_rule_findings(path, profile)
        ids = (profile.interchange.sender_id, profile.interchange.receiver_id)
        if scan.isa_ids != ids:
            # Partner ids (trading-partner codes), not PHI: saying them is what makes a wrong
            # --carrier obvious.
            findings.append(
                Finding(
                    1,
                    "ISA",
                    "",
                    "profile-isa-ids",
                    f"ISA06/ISA08 are {'/'.join(scan.isa_ids)}, profile {profile.name!r} "
                    f"expects {'/'.join(ids)}",
                    "profile",
                )
            )
        if profile.policy.master_policy and not scan.has_master_policy:
            findings.append(
                Finding(
                    None,
                    "REF",
                    "HEADER",
                    "profile-missing-ref38",
                    "the profile requires REF*38 (master policy)",
                    "profile",
                )
            )
    expected = {"TO": scan.ins["Y"] + scan.ins["N"], "ET": scan.ins["Y"], "DT": scan.ins["N"]}
    for qualifier, actual in expected.items():
        if qualifier in scan.qty and scan.qty[qualifier] != actual:
            findings.append(
                Finding(
                    None,
                    "QTY",
                    "HEADER",
                    "qty-mismatch",
                    f"QTY*{qualifier} says {scan.qty[qualifier]}, the file has {actual}",
                    "profile",
                )
            )
    return findings


def _count_only(path: Path) -> _Scan:
    scan = _Scan()
    for elements in read_segments(path):
        if elements[0] == "QTY" and len(elements) > 2:
            scan.qty[elements[1]] = int(elements[2]) if elements[2].isdigit() else -1
        elif elements[0] == "INS":
            scan.ins[elements[1] if len(elements) > 1 else "?"] += 1
    return scan


def _piece_findings(piece_path: str) -> list[Finding]:
    return pyx12_findings(Path(piece_path))


def parallel_pyx12_findings(path: Path, workers: int, pieces_per_worker: int = 2) -> list[Finding]:
    """pyx12's verdict on the whole file, computed piecewise in worker processes.

    Members are independent, so each piece (header + whole member loops + trailer, see
    `edi.x12.chunks`) is validated alone and its findings are renumbered to the whole file;
    envelope findings, which every piece repeats, are kept once."""
    from concurrent.futures import ProcessPoolExecutor

    from edi.x12.chunks import split_interchange

    # pyx12 keeps a node per segment it has seen, so a worker's memory follows its piece's size:
    # pieces of bounded size keep memory flat however large the file is.
    pieces = max(workers * pieces_per_worker, -(-path.stat().st_size // PIECE_BYTES))
    # The pieces hold PHI: they stay beside the file (a run's private scratch), not in /tmp.
    with tempfile.TemporaryDirectory(prefix=".edi-validate-", dir=path.parent) as scratch:
        split = split_interchange(path, pieces, Path(scratch))
        if split is None or len(split.pieces) < 2:
            return pyx12_findings(path)
        # A fresh pool per batch of pieces: whatever pyx12 keeps between documents cannot
        # accumulate in a worker, so memory stays flat in the file's size. (Not
        # max_tasks_per_child: on Python 3.11 it can deadlock when workers are replaced.)
        paths = [str(piece.path) for piece in split.pieces]
        batch = workers * PIECES_PER_CHILD
        results: list[list[Finding]] = []
        for start in range(0, len(paths), batch):
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results.extend(pool.map(_piece_findings, paths[start : start + batch]))
    seen: dict[tuple[object, ...], Finding] = {}
    se_problem = split.se_count_problem()
    if se_problem:
        seen[("se-count",)] = Finding(
            split.se_position, "ST", "ST_LOOP", "4", redact(se_problem), "pyx12"
        )
    for piece, findings in zip(split.pieces, results, strict=True):
        for finding in findings:
            number = finding.segment_number
            if number is not None:
                finding = replace(finding, segment_number=split.position_in_file(piece, number))
            key = (finding.segment_number, finding.segment_id, finding.code, finding.message)
            seen.setdefault(key, finding)
    return list(seen.values())


def validate_file(
    path: Path, profile: CarrierProfile | None = None, workers: int | None = None
) -> ValidationReport:
    """pyx12 and the profile's rules. Large files are validated in parallel pieces; `workers`
    of 1 forces the single-process run."""
    report = ValidationReport(str(path))
    chosen = workers or min(os.cpu_count() or 1, MAX_WORKERS)
    if chosen > 1 and path.stat().st_size >= PARALLEL_FROM_BYTES:
        report.findings.extend(parallel_pyx12_findings(path, chosen))
    else:
        report.findings.extend(pyx12_findings(path))
    try:
        report.findings.extend(profile_findings(path, profile))
    except Exception as exc:  # a file pyx12 could not read is already a finding
        if not report.findings:
            report.findings.append(
                Finding(None, "", "", "unreadable", type(exc).__name__, "profile")
            )
    return report
