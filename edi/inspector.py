"""`edi show`: any 005010X220A1 file read back as its envelope and one entry per INS loop.

Reads segments with edi/x12/reader.py, so delimiters come from the file's own ISA and files of
any size stream. Names, SSNs, birthdates, addresses and contacts are only kept when asked for
(`show_names`); without it nothing that identifies a person beyond the REF*0F id is read out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edi.errors import ValidationFailed
from edi.x12 import codes
from edi.x12.reader import read_segments


def _iso(value: str) -> str:
    """CCYYMMDD → CCYY-MM-DD (RD8 ranges keep both ends); anything else as written."""
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    if "-" in value and len(value) == 17:
        start, end = value.split("-")
        return f"{_iso(start)}/{_iso(end)}"
    return value


def _el(segment: list[str], position: int) -> str:
    return segment[position].strip() if len(segment) > position else ""


@dataclass
class CoverageLine:
    maintenance: str
    insurance_line: str
    plan: str
    tier: str
    begin: str | None = None
    end: str | None = None
    premium: str | None = None
    dates: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "insurance_line": self.insurance_line,
            "plan": self.plan,
            "tier": self.tier or None,
            "maintenance": self.maintenance,
            "begin": self.begin,
            "end": self.end,
            "premium": self.premium,  # AMT*P3, as written; None without one
        }


@dataclass
class MemberLoop:
    subscriber: bool
    relationship: str
    maintenance: str
    reason: str
    benefit_status: str
    employment_status: str
    member_id: str | None = None
    dates: dict[str, str] = field(default_factory=dict)
    coverages: list[CoverageLine] = field(default_factory=list)
    name: str | None = None
    ssn: str | None = None

    def as_dict(self, show_names: bool = False) -> dict[str, Any]:
        row: dict[str, Any] = {
            "member_id": self.member_id,
            "relationship": self.relationship,
            "maintenance": self.maintenance,
            "reason": self.reason or None,
            "coverages": [line.as_dict() for line in self.coverages],
        }
        if show_names:
            row["name"] = self.name
            row["ssn"] = self.ssn
        return row


@dataclass
class Inspection:
    interchange: dict[str, Any]
    members: list[MemberLoop]

    def as_dict(self, show_names: bool = False) -> dict[str, Any]:
        return {
            "interchange": self.interchange,
            "members": [m.as_dict(show_names) for m in self.members],
        }


def inspect_file(path: Path, *, show_names: bool = False) -> Inspection:
    interchange: dict[str, Any] = {}
    members: list[MemberLoop] = []
    member: MemberLoop | None = None
    line: CoverageLine | None = None
    in_2700 = False
    transaction_sets = 0
    for segment in read_segments(path):
        tag = segment[0].strip()
        if tag == "ISA":
            usage = _el(segment, 15)
            interchange.update(
                {
                    "sender_qualifier": _el(segment, 5),
                    "sender_id": _el(segment, 6),
                    "receiver_qualifier": _el(segment, 7),
                    "receiver_id": _el(segment, 8),
                    "date": _isa_date(_el(segment, 9), _el(segment, 10)),
                    "isa13": _el(segment, 13),
                    "ack_requested": _el(segment, 14) == "1",
                    "usage": usage,
                    "test": usage != "P",
                }
            )
        elif tag == "GS":
            interchange.setdefault("gs_sender", _el(segment, 2))
            interchange.setdefault("gs_receiver", _el(segment, 3))
            interchange.setdefault("gs06", _el(segment, 6))
            interchange.setdefault("version", _el(segment, 8))
        elif tag == "ST":
            transaction_sets += 1
            if _el(segment, 1) != "834":
                raise ValidationFailed(
                    "x12-not-834",
                    f"{path.name}: transaction set {_el(segment, 1)!r} is not an 834",
                    hint="`edi show` reads 834 enrollment files (005010X220A1).",
                )
            interchange.setdefault("st02", _el(segment, 2))
        elif tag == "BGN":
            action = _el(segment, 8)
            interchange.setdefault("purpose", _el(segment, 1))
            interchange.setdefault("reference", _el(segment, 2))
            interchange.setdefault("action", action)
            interchange.setdefault(
                "file_type", {"2": "changes", "4": "audit", "RX": "full"}.get(action, action)
            )
        elif tag == "N1" and member is None:
            role = {"P5": "sponsor", "IN": "payer", "BO": "broker", "TV": "tpa"}.get(
                _el(segment, 1)
            )
            if role:  # companies, not people
                interchange.setdefault(role, _el(segment, 2))
                interchange.setdefault(f"{role}_id", _el(segment, 4) or None)
        elif tag == "INS":
            member = MemberLoop(
                subscriber=_el(segment, 1) == "Y",
                relationship=_el(segment, 2),
                maintenance=_el(segment, 3),
                reason=_el(segment, 4),
                benefit_status=_el(segment, 5),
                employment_status=_el(segment, 8),
            )
            members.append(member)
            line, in_2700 = None, False
        elif member is None:
            continue
        elif tag == "LS":
            in_2700 = True
        elif tag == "LE":
            in_2700 = False
        elif in_2700:
            continue
        elif tag == "REF" and line is None and _el(segment, 1) == "0F" and not member.member_id:
            member.member_id = _el(segment, 2)
        elif tag == "NM1" and line is None and _el(segment, 1) == "IL" and show_names:
            last, first, middle = _el(segment, 3), _el(segment, 4), _el(segment, 5)
            member.name = ", ".join(
                p for p in (last, " ".join(p for p in (first, middle) if p)) if p
            )
            member.ssn = _el(segment, 9) or None
        elif tag == "DTP":
            qualifier, value = _el(segment, 1), _iso(_el(segment, 3))
            if line is None:
                member.dates[qualifier] = value
            else:
                line.dates[qualifier] = value
                if qualifier == "348":
                    line.begin = value
                elif qualifier == "349":
                    line.end = value
        elif tag == "HD":
            line = CoverageLine(
                maintenance=_el(segment, 1),
                insurance_line=_el(segment, 3),
                plan=_el(segment, 4),
                tier=_el(segment, 5),
            )
            member.coverages.append(line)
        elif tag == "AMT" and line is not None and _el(segment, 1) == "P3":
            line.premium = _el(segment, 2)
        elif tag == "SE":
            member, line = None, None
    if "isa13" not in interchange:
        raise ValidationFailed("x12-not-interchange", f"{path.name} has no ISA segment")
    interchange["transaction_sets"] = transaction_sets
    interchange["members"] = len(members)
    interchange["subscribers"] = sum(m.subscriber for m in members)
    interchange["dependents"] = len(members) - interchange["subscribers"]
    return Inspection(interchange, members)


def _isa_date(yymmdd: str, hhmm: str) -> str:
    if len(yymmdd) == 6 and len(hhmm) == 4 and (yymmdd + hhmm).isdigit():
        return f"20{yymmdd[:2]}-{yymmdd[2:4]}-{yymmdd[4:]}T{hhmm[:2]}:{hhmm[2:]}"
    return f"{yymmdd} {hhmm}".strip()


def describe(inspection: Inspection, *, show_names: bool = False) -> list[str]:
    """The inspection as lines a person reads, codes followed by their names."""
    i = inspection.interchange
    ta1 = "requested" if i["ack_requested"] else "not requested"
    lines = [
        f"interchange {i['isa13']}: {codes.USAGE.get(i['usage'], i['usage'])} data, "
        f"{i['sender_qualifier']}:{i['sender_id']} → {i['receiver_qualifier']}:"
        f"{i['receiver_id']}, {i['date']}, TA1 {ta1}",
        f"group {i.get('gs06', '-')} {i.get('gs_sender', '-')} → {i.get('gs_receiver', '-')}, "
        f"version {i.get('version', '-')}; transaction {i.get('st02', '-')}"
        + (f" (+{i['transaction_sets'] - 1} more)" if i["transaction_sets"] > 1 else ""),
        f"file type: {codes.named(i.get('action'), codes.ACTION)}; purpose "
        f"{codes.named(i.get('purpose'), codes.PURPOSE)}; reference {i.get('reference', '-')}",
        f"sponsor {i.get('sponsor', '-')}, payer {i.get('payer', '-')}",
        f"{i['members']} member loops: {i['subscribers']} subscribers, "
        f"{i['dependents']} dependents",
    ]
    for member in inspection.members:
        who = "subscriber" if member.subscriber else "dependent"
        head = (
            f"member {member.member_id or '(no REF*0F)'} {who} "
            f"{codes.named(member.relationship, codes.RELATIONSHIP)}: "
            f"{codes.named(member.maintenance, codes.MAINTENANCE)}"
        )
        if member.reason:
            head += f", reason {codes.named(member.reason, codes.REASON)}"
        if member.employment_status:
            head += f", employment {codes.named(member.employment_status, codes.EMPLOYMENT_STATUS)}"
        if show_names and member.name:
            head += f" [{member.name}{', SSN ' + member.ssn if member.ssn else ''}]"
        lines.extend(["", head])
        if member.dates:
            lines.append("  dates: " + _dates(member.dates))
        for line in member.coverages:
            text = (
                f"  coverage {codes.named(line.maintenance, codes.MAINTENANCE)}: "
                f"{codes.named(line.insurance_line, codes.INSURANCE_LINE)}, "
                f"plan {line.plan or '-'}, "
                f"tier {codes.named(line.tier, codes.COVERAGE_LEVEL)}, "
                f"begin {line.begin or '-'}, end {line.end or '-'}"
            )
            if line.premium:
                text += f", premium {line.premium}"
            others = {q: v for q, v in line.dates.items() if q not in ("348", "349")}
            if others:
                text += f"; {_dates(others)}"
            lines.append(text)
    return lines


def _dates(dates: dict[str, str]) -> str:
    return ", ".join(
        f"{codes.DATE_QUALIFIER.get(q, 'DTP ' + q)} {value}" for q, value in dates.items()
    )
