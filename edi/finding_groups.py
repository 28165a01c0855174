"""Validation findings for people: grouped by code and message, counted, the decisive ones
first (envelope and partner ids before header before member loops), each group with its first
segment numbers and the member loops they are in.

Members are named by their REF*0F id, or by their position ("member #12") when REF*0F looks
like an SSN (a profile may put the SSN there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edi.validate import Finding
from edi.x12.reader import read_segments

ENVELOPE = {"ISA", "IEA", "GS", "GE", "ST", "SE", "TA1"}
HEADER = {"BGN", "REF", "DTP", "QTY", "N1", "N2", "N3", "N4", "PER", "ACT"}
FIRST = 3
_SSN_LIKE = re.compile(r"^\d{3}-?\d{2}-?\d{4}$")


@dataclass
class FindingGroup:
    code: str
    message: str
    source: str
    segment_id: str
    loop: str
    segments: list[int | None] = field(default_factory=list)
    records: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.segments)

    @property
    def rank(self) -> int:
        if self.code == "profile-isa-ids":
            return 0
        if self.segment_id in ENVELOPE or self.code in ("pyx12-engine", "unreadable"):
            return 1
        if self.loop in ("", "HEADER", "1000A", "1000B", "1000C") and (
            self.segment_id in HEADER or not self.segment_id
        ):
            return 2
        return 3

    def line(self) -> str:
        where = ", ".join("-" if n is None else str(n) for n in self.segments[:FIRST])
        more = f" (+{self.count - FIRST} more)" if self.count > FIRST else ""
        records = f"; in {', '.join(self.records)}" if self.records else ""
        return (
            f"{self.count}× [{self.code}] {self.segment_id or '-'} loop {self.loop or '-'}: "
            f"{self.message} — segment {where}{more}{records}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "source": self.source,
            "segment_id": self.segment_id,
            "loop": self.loop,
            "count": self.count,
            "first_segments": self.segments[:FIRST],
            "first_records": self.records,
        }


def group_findings(findings: list[Finding], path: Path | None = None) -> list[FindingGroup]:
    groups: dict[tuple[str, str, str], FindingGroup] = {}
    for finding in findings:
        key = (finding.code, finding.message, finding.segment_id)
        group = groups.get(key)
        if group is None:
            group = groups[key] = FindingGroup(
                finding.code, finding.message, finding.source, finding.segment_id, finding.loop
            )
        group.segments.append(finding.segment_number)
    ordered = sorted(
        groups.values(),
        key=lambda g: (g.rank, min((n for n in g.segments if n is not None), default=0)),
    )
    if path is not None:
        _name_records(ordered, path)
    return ordered


def _name_records(groups: list[FindingGroup], path: Path) -> None:
    wanted = {n for g in groups if g.rank == 3 for n in g.segments[:FIRST] if n is not None}
    if not wanted:
        return
    in_member: dict[int, int] = {}  # segment number → member ordinal
    labels: dict[int, str] = {}
    ordinal, last = 0, max(wanted)
    try:
        for number, segment in enumerate(read_segments(path), start=1):
            tag = segment[0]
            if tag == "INS":
                ordinal += 1
                labels[ordinal] = f"member #{ordinal}"
            elif tag == "SE":
                ordinal = 0
            elif tag == "REF" and ordinal and len(segment) > 2 and segment[1] == "0F":
                value = segment[2].strip()
                if labels[ordinal] == f"member #{ordinal}" and not _SSN_LIKE.match(value):
                    labels[ordinal] = f"REF*0F {value}"
            if number in wanted and ordinal:
                in_member[number] = ordinal
            if number > last + 50:  # past the last wanted segment and its member's REF*0F
                break
    except Exception:  # naming members is a courtesy; the findings stand without it
        return
    names = {number: labels[o] for number, o in in_member.items()}
    for group in groups:
        seen: list[str] = []
        for position in group.segments[:FIRST]:
            name = names.get(position) if position is not None else None
            if name and name not in seen:
                seen.append(name)
        group.records = seen
