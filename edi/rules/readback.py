"""Business edits on any 834: its member loops read back into families and judged by a
carrier profile's rules, so a file from another vendor can be checked against them.

A read-back family has no PlanSource ids: members are named by the segment number of their INS
and coverages by plan and begin date, and findings point at segment numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from edi.members import CoverageLine, LineStatus, Member, Person
from edi.profiles import CarrierProfile
from edi.rules.checks import Family, RuleContext, check_family
from edi.rules.findings import Finding
from edi.x12.reader import read_segments


def _d8(text: str) -> date | None:
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def _at(elements: list[str], position: int) -> str:
    return elements[position] if len(elements) > position else ""


@dataclass(slots=True)
class _Line:
    number: int
    elements: list[str]
    begin: date | None = None
    end: date | None = None


@dataclass(slots=True)
class _Loop:
    number: int
    ins: list[str]
    member_id: str = ""
    group_number: str | None = None
    dates: list[tuple[str, date]] = field(default_factory=list)
    name: list[str] = field(default_factory=list)
    dmg: list[str] = field(default_factory=list)
    lines: list[_Line] = field(default_factory=list)


@dataclass(slots=True)
class ReadBackFamily:
    family: Family
    # (member INS number, coverage id) → the HD's segment number, to point findings at it
    hd_numbers: dict[tuple[str, str], int]


class _Builder:
    def __init__(self, profile: CarrierProfile, as_of: date) -> None:
        self.as_of = as_of
        self.codes: dict[tuple[str, str], str] = {}
        for code, plan in profile.plans.items():
            self.codes.setdefault((plan.insurance_line, plan.plan_code), code)

    def _line(self, line: _Line) -> CoverageLine:
        e = line.elements
        maintenance = _at(e, 1)
        status: LineStatus = "active"
        if maintenance == "024" or (line.end is not None and line.end < self.as_of):
            status = "terminated"
        elif line.begin is not None and line.begin > self.as_of:
            status = "future"
        insurance_line, plan_code = _at(e, 3), _at(e, 4)
        begin = line.begin.isoformat() if line.begin else "-"
        return CoverageLine(
            coverage_id=f"{insurance_line}:{plan_code}:{begin}",
            lookup_code=self.codes.get((insurance_line, plan_code), ""),
            status=status,
            maintenance=maintenance,
            insurance_line=insurance_line,
            plan_code=plan_code,
            level=_at(e, 5) or None,
            begin=line.begin,
            end=line.end,
        )

    def member(self, loop: _Loop, subscriber_number: int) -> Member:
        ins, name, dmg = loop.ins, loop.name, loop.dmg
        subscriber = _at(ins, 1) == "Y"
        return Member(
            subscriber_id=str(subscriber_number),
            dependent_id=None if subscriber else str(loop.number),
            relationship=_at(ins, 2),
            maintenance=_at(ins, 3),
            reason=_at(ins, 4) or None,
            benefit_status=_at(ins, 5),
            employment_status=_at(ins, 8) or None,
            member_id=loop.member_id,
            group_number=loop.group_number,
            person=Person(
                last_name=_at(name, 3),
                first_name=_at(name, 4),
                middle_name=_at(name, 5),
                ssn=_at(name, 9) or None if _at(name, 8) == "34" else None,
                birthdate=_d8(_at(dmg, 2)) if _at(dmg, 1) == "D8" else None,
                gender=_at(dmg, 3) or "U",
            ),
            dates=tuple(loop.dates),
            coverages=tuple(self._line(line) for line in loop.lines),
            student=_at(ins, 9) or None,
            handicapped=_at(ins, 10) == "Y",
        )


def read_families(path: Path, profile: CarrierProfile) -> Iterator[ReadBackFamily]:
    """The file's families in order (a subscriber loop and the dependent loops after it)."""
    segments = enumerate(read_segments(path), start=1)
    as_of = date.today()
    loops: list[_Loop] = []
    builder: _Builder | None = None

    def family() -> ReadBackFamily | None:
        if not loops:
            return None
        assert builder is not None
        head = loops[0].number
        members = tuple(builder.member(loop, head) for loop in loops)
        numbers = {
            (str(loop.number), builder._line(line).coverage_id): line.number
            for loop in loops
            for line in loop.lines
        }
        loops.clear()
        return ReadBackFamily(Family(str(head), members), numbers)

    for number, e in segments:
        seg = e[0]
        if seg == "BGN":
            as_of = _d8(_at(e, 3)) or as_of
        elif seg == "INS":
            if builder is None:
                builder = _Builder(profile, as_of)
            if _at(e, 1) == "Y":
                done = family()
                if done is not None:
                    yield done
            loops.append(_Loop(number, e))
        elif not loops:
            continue
        elif seg == "SE":
            done = family()
            if done is not None:
                yield done
        elif seg == "HD":
            loops[-1].lines.append(_Line(number, e))
        elif seg == "DTP" and loops[-1].lines:
            day = _d8(_at(e, 3))
            if _at(e, 1) == "348":
                loops[-1].lines[-1].begin = day
            elif _at(e, 1) == "349":
                loops[-1].lines[-1].end = day
        elif seg == "DTP" and not loops[-1].name:
            day = _d8(_at(e, 3))
            if day is not None:
                loops[-1].dates.append((_at(e, 1), day))
        elif seg == "REF" and not loops[-1].name and _at(e, 1) == "0F":
            loops[-1].member_id = _at(e, 2)
        elif seg == "REF" and not loops[-1].name and _at(e, 1) == "1L":
            loops[-1].group_number = _at(e, 2)
        elif seg == "NM1" and _at(e, 1) == "IL":
            loops[-1].name = e
        elif seg == "DMG" and not loops[-1].lines:
            loops[-1].dmg = e


def file_findings(path: Path, profile: CarrierProfile) -> list[tuple[int, Finding]]:
    """Every business-edit finding of the file, each with the segment number it points at."""
    found: list[tuple[int, Finding]] = []
    as_of: date | None = None
    for read in read_families(path, profile):
        if as_of is None:
            as_of = _file_date(path)
        _, findings = check_family(read.family, RuleContext(profile, as_of))
        for finding in findings:
            member = finding.dependent_id or finding.subscriber_id
            number = read.hd_numbers.get((member, finding.coverage_id or ""), int(member))
            found.append((number, finding))
    return found


def _file_date(path: Path) -> date:
    for e in read_segments(path):
        if e[0] == "BGN":
            return _d8(_at(e, 3)) or date.today()
        if e[0] == "INS":
            break
    return date.today()
