"""Findings: what mapping and writing noticed about a record without stopping the file.

Small on purpose, shaped like the rule engine's findings (issue 18) so the two can merge: a
kebab-case code, a severity, the PlanSource ids, the X12 reference and a message. No PHI: no
names, SSNs, birthdates or addresses, and no values of those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    code: str
    severity: Severity
    ref: str  # the X12 reference, e.g. `2100A/NM103`
    message: str
    subscriber_id: str | None = None
    dependent_id: str | None = None
    coverage_id: str | None = None

    def as_dict(self) -> dict[str, str]:
        ids = {
            "subscriber_id": self.subscriber_id,
            "dependent_id": self.dependent_id,
            "coverage_id": self.coverage_id,
        }
        return {
            "code": self.code,
            "severity": self.severity,
            "ref": self.ref,
            "message": self.message,
            **{name: value for name, value in ids.items() if value is not None},
        }
