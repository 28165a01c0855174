"""The typed values mapping produces and the 834 writer consumes.

`Person` holds PHI and exists only to be written inside the 834; nothing else prints it.
Everything that identifies a member in logs and errors is a PlanSource id (`Member.ref`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

from edi.findings import Finding

FileType = Literal["full", "changes", "audit"]
LineStatus = Literal["active", "future", "terminated", "election-ended", "declined"]


@dataclass(frozen=True, slots=True)
class Person:
    last_name: str
    first_name: str
    middle_name: str = ""
    ssn: str | None = None
    birthdate: date | None = None
    gender: str = "U"
    address_1: str = ""
    address_2: str = ""
    city: str = ""
    state: str = ""
    zip_code: str = ""
    phone: str = ""
    email: str = ""

    def __repr__(self) -> str:
        return "Person(<redacted>)"


@dataclass(frozen=True, slots=True)
class CoverageLine:
    coverage_id: str
    lookup_code: str
    status: LineStatus
    maintenance: str  # HD01
    insurance_line: str  # HD03
    plan_code: str  # HD04
    level: str | None  # HD05
    begin: date | None  # DTP*348, the coverage's original effective date
    end: date | None  # DTP*349, the last covered day
    premium: Decimal | None = None
    refs: tuple[tuple[str, str], ...] = ()
    reason: str | None = None  # the INS04 this line's ending implies
    volume: Decimal | None = None  # 2750 REF, when the plan reports it
    changed: date | None = None  # DTP*303 maintenance effective: a mid-year change, a decline


@dataclass(frozen=True, slots=True)
class Member:
    subscriber_id: str
    dependent_id: str | None
    relationship: str  # INS02
    maintenance: str  # INS03
    reason: str | None  # INS04
    benefit_status: str  # INS05
    employment_status: str | None  # INS08
    member_id: str  # REF*0F
    group_number: str | None  # REF*1L
    person: Person = field(repr=False)
    dates: tuple[tuple[str, date], ...]
    coverages: tuple[CoverageLine, ...]
    student: str | None = None  # INS09 (F full-time student)
    handicapped: bool = False  # INS10 Y
    death_date: date | None = None  # INS11 D8 + INS12

    @property
    def is_subscriber(self) -> bool:
        return self.dependent_id is None

    @property
    def ref(self) -> str:
        """How logs and errors name this member: PlanSource ids only."""
        if self.dependent_id is None:
            return f"subscriber id={self.subscriber_id}"
        return f"dependent id={self.dependent_id} (subscriber id={self.subscriber_id})"

    @property
    def key(self) -> str:
        return f"S{self.subscriber_id}" if self.dependent_id is None else f"D{self.dependent_id}"


@dataclass(slots=True)
class MappingReport:
    """Counts and ids for the run summary; no PHI."""

    subscribers: int = 0
    dependents: int = 0
    additions: int = 0
    changes: int = 0
    terminations: int = 0
    coverage_lines: int = 0
    declines_skipped: int = 0
    declines_sent: int = 0
    elections_ended: int = 0
    future_coverages: int = 0
    test_employees_skipped: int = 0
    history_skipped: int = 0
    dependent_terminations: int = 0  # dependents ended though no coverage lists them any more
    quarantined: list[str] = field(default_factory=list)
    # Every record the run leaves out, counted under a reason (nothing is dropped silently).
    skipped: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)  # warnings; ids and codes, no PHI

    def count(self, member: Member) -> None:
        if member.is_subscriber:
            self.subscribers += 1
        else:
            self.dependents += 1
        if member.maintenance == "021":
            self.additions += 1
        elif member.maintenance == "024":
            self.terminations += 1
        else:
            self.changes += 1
        self.coverage_lines += len(member.coverages)
