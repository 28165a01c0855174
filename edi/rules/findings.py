"""A finding of the business edits: what is wrong, with whom, where in the 834. No PHI."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]
FIRST_IDS = 10


@dataclass(frozen=True, slots=True)
class Finding:
    """`code` is the rule's kebab-case code; ids are PlanSource ids; `ref` the X12 element
    (`2300/HD05`). Messages and hints never carry names, SSNs, birthdates or addresses."""

    code: str
    severity: Severity
    subscriber_id: str
    ref: str
    message: str
    hint: str = ""
    dependent_id: str | None = None
    coverage_id: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def ids(self) -> dict[str, Any]:
        """What the JSON output, the delivery log and alerts carry: code, severity and ids."""
        return {
            "code": self.code,
            "severity": self.severity,
            "subscriber_id": self.subscriber_id,
            "dependent_id": self.dependent_id,
            "coverage_id": self.coverage_id,
        }

    def as_dict(self) -> dict[str, Any]:
        return {**self.ids(), "ref": self.ref, "message": self.message, "hint": self.hint}

    def where(self) -> str:
        parts = [f"subscriber id={self.subscriber_id}"]
        if self.dependent_id:
            parts.append(f"dependent id={self.dependent_id}")
        if self.coverage_id:
            parts.append(f"coverage id={self.coverage_id}")
        return ", ".join(parts)

    def line(self) -> str:
        return f"[{self.code}] {self.severity}: {self.where()}: {self.ref} {self.message}"


@dataclass(slots=True)
class WarningGroups:
    """Warnings grouped by code: a count and the first few findings' ids (flat memory)."""

    counts: Counter[str] = field(default_factory=Counter)
    first: dict[str, list[Finding]] = field(default_factory=dict)

    def add(self, finding: Finding) -> None:
        self.counts[finding.code] += 1
        shown = self.first.setdefault(finding.code, [])
        if len(shown) < FIRST_IDS:
            shown.append(finding)

    def as_list(self) -> list[dict[str, Any]]:
        return [
            {
                "code": code,
                "count": count,
                "first": [f.ids() for f in self.first[code]],
                "message": self.first[code][0].message,
            }
            for code, count in sorted(self.counts.items())
        ]
