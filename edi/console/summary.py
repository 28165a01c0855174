"""An 834's ids and codes for the console: envelope ids, and per INS loop the relationship,
maintenance and reason codes and each HD line's insurance line, plan, tier and dates.

Name, address, demographic and contact segments (NM1, N3, N4, DMG, PER, ...) are never read into
the summary, and REF*0F is withheld when the profile identifies members by SSN.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from edi.x12.reader import read_segments

SSN_LIKE = re.compile(r"^\d{3}-?\d{2}-?\d{4}$")
HIDDEN = "(withheld: SSN)"
# A page stays readable: the counts cover every member, the list the first ones.
MEMBERS_SHOWN = 1000


def safe_member_id(value: str | None, identifier: str | None) -> str | None:
    """A member id fit to show: REF*0F is an SSN for profiles that identify members by SSN."""
    if value is None or value == "":
        return value
    if identifier == "ssn" or SSN_LIKE.match(value):
        return HIDDEN
    return value


def _element(seg: list[str], position: int) -> str:
    return seg[position].strip() if len(seg) > position else ""


def summarize_834(path: Path, identifier: str | None, shown: int = MEMBERS_SHOWN) -> dict[str, Any]:
    interchange: dict[str, str] = {}
    members: list[dict[str, Any]] = []
    member: dict[str, Any] | None = None
    line: dict[str, Any] | None = None
    for seg in read_segments(path):
        tag = seg[0]
        if tag == "ISA":
            interchange.update(
                sender_id=_element(seg, 6),
                receiver_id=_element(seg, 8),
                isa13=_element(seg, 13),
                usage=_element(seg, 15),
            )
        elif tag == "GS":
            interchange.update(gs06=_element(seg, 6), version=_element(seg, 8))
        elif tag == "ST":
            interchange["st02"] = _element(seg, 2)
        elif tag == "BGN":
            interchange.update(
                bgn_purpose=_element(seg, 1),
                bgn_reference=_element(seg, 2),
                bgn_date=_element(seg, 3),
                bgn_action=_element(seg, 8),
            )
        elif tag == "INS":
            line = None
            member = {
                "subscriber": _element(seg, 1) == "Y",
                "relationship": _element(seg, 2),
                "maintenance": _element(seg, 3),
                "reason": _element(seg, 4),
                "benefit_status": _element(seg, 5),
                "member_id": None,
                "group_number": None,
                "coverages": [],
            }
            members.append(member)
        elif tag == "REF" and member is not None and line is None:
            qualifier = _element(seg, 1)
            if qualifier == "0F":
                member["member_id"] = safe_member_id(_element(seg, 2), identifier)
            elif qualifier == "1L":
                member["group_number"] = _element(seg, 2)
        elif tag == "HD" and member is not None:
            line = {
                "maintenance": _element(seg, 1),
                "insurance_line": _element(seg, 3),
                "plan": _element(seg, 4),
                "tier": _element(seg, 5),
                "begin": "",
                "end": "",
            }
            member["coverages"].append(line)
        elif tag == "DTP" and line is not None:
            if _element(seg, 1) == "348":
                line["begin"] = _element(seg, 3)
            elif _element(seg, 1) == "349":
                line["end"] = _element(seg, 3)
        elif tag == "SE":
            member = line = None
    maintenance = Counter(m["maintenance"] for m in members)
    return {
        "interchange": interchange,
        "counts": {
            "members": len(members),
            "subscribers": sum(1 for m in members if m["subscriber"]),
            "dependents": sum(1 for m in members if not m["subscriber"]),
            "coverage_lines": sum(len(m["coverages"]) for m in members),
            "by_maintenance": dict(sorted(maintenance.items())),
        },
        "members": members[:shown],
        "members_shown": min(shown, len(members)),
    }
