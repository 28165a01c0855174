"""Carrier rosters built from our own files: the same members, as a carrier sends them back
(an audit 834, BGN08 4, INS03/HD01 030, sender and receiver swapped), with planted changes."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.workspace import segments

Segment = list[str]
Loop = list[Segment]
Plant = Callable[[list[Loop]], None]


def split(path: Path) -> tuple[list[Segment], list[Loop], list[Segment]]:
    segs = segments(path)
    header: list[Segment] = []
    loops: list[Loop] = []
    trailer: list[Segment] = []
    for seg in segs:
        if seg[0] == "INS":
            loops.append([seg])
        elif seg[0] in ("SE", "GE", "IEA"):
            trailer.append(seg)
        elif loops:
            loops[-1].append(seg)
        else:
            header.append(seg)
    return header, loops, trailer


def as_carrier_sends(header: list[Segment], loops: list[Loop]) -> None:
    for seg in header:
        if seg[0] == "ISA":
            seg[5], seg[6], seg[7], seg[8] = seg[7], seg[8], seg[5], seg[6]
        elif seg[0] == "GS":
            seg[2], seg[3] = seg[3], seg[2]
        elif seg[0] == "BGN":
            seg[8] = "4"
    for loop in loops:
        for seg in loop:
            if seg[0] == "INS" and seg[3] != "024":
                seg[3] = "030"
                if len(seg) > 4:
                    seg[4] = ""
            elif seg[0] == "HD" and seg[1] != "024":
                seg[1] = "030"
    for loop in loops:
        ins = loop[0]
        while ins and ins[-1] == "":
            ins.pop()


def write(path: Path, header: list[Segment], loops: list[Loop], trailer: list[Segment]) -> Path:
    body = [seg for loop in loops for seg in loop]
    for seg in header:
        if seg[0] == "QTY" and seg[1] == "TO":
            seg[2] = str(len(loops))
        elif seg[0] == "QTY" and seg[1] == "ET":
            seg[2] = str(sum(1 for loop in loops if loop[0][1] == "Y"))
        elif seg[0] == "QTY" and seg[1] == "DT":
            seg[2] = str(sum(1 for loop in loops if loop[0][1] == "N"))
    st_index = next(i for i, seg in enumerate(header) if seg[0] == "ST")
    count = len(header) - st_index + len(body) + 1
    for seg in trailer:
        if seg[0] == "SE":
            seg[1] = str(count)
    text = "".join("*".join(seg) + "~\n" for seg in (*header, *body, *trailer))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def roster_from(ours: Path, target: Path, plant: Plant | None = None) -> Path:
    header, loops, trailer = split(ours)
    as_carrier_sends(header, loops)
    if plant is not None:
        plant(loops)
    return write(target, header, loops, trailer)


def loop_of(loops: list[Loop], member_id: str, relationship: str = "18", nth: int = 0) -> Loop:
    found = [
        loop for loop in loops if loop[0][2] == relationship and ["REF", "0F", member_id] in loop
    ]
    return found[nth]


def first(loop: Loop, tag: str, qualifier: str | None = None) -> Segment:
    return next(s for s in loop if s[0] == tag and (qualifier is None or s[1] == qualifier))


# The planted differences: one per kind (and one per demographic field) ----------------------

EXPECTED = {
    # (kind, subscriber_id, dependent_id, coverage_id, field)
    ("missing-at-carrier", "1001", "2003", None, None),
    ("unexpected-at-carrier", None, None, None, None),
    ("terminated-but-active", "1002", None, "5004", None),
    ("plan-mismatch", "1011", None, "5026", "HD04"),
    ("tier-mismatch", "1112", None, "5099", "HD05"),
    ("effective-date-mismatch", "1134", None, "5195", "348"),
    ("demographic-mismatch", "1001", "2001", None, "birthdate"),
    ("demographic-mismatch", "1145", None, None, "name"),
    ("demographic-mismatch", "1148", None, None, "gender"),
    ("demographic-mismatch", "1142", None, None, "ssn"),
    ("demographic-mismatch", "1120", None, None, "address"),
}
PLANTED_VALUES = ("PLANTEDNAME", "999887777", "99 PLANTED RD")


def plant_one_per_kind(loops: list[Loop]) -> None:
    # missing-at-carrier: the adopted child of 1001 (the second INS02 19 loop) is not there
    loops.remove(loop_of(loops, "AW1001", "19", nth=1))
    # unexpected-at-carrier: someone with a member id PlanSource does not know
    stranger = [list(seg) for seg in loop_of(loops, "AW1139")]
    first(stranger, "REF", "0F")[2] = "AW9999"
    loops.append(stranger)
    # terminated-but-active: 1002's cancer line still active at the carrier
    ended = loop_of(loops, "AW1002")
    first(ended, "HD")[1] = "030"
    ended.remove(next(s for s in ended if s[:2] == ["DTP", "349"]))
    # plan-mismatch, tier-mismatch, effective-date-mismatch
    first(loop_of(loops, "AW1011"), "HD")[4] = "HOSPITAL-CONFINEMENT-1"
    first(loop_of(loops, "AW1112"), "HD")[5] = "ESP"
    first(loop_of(loops, "AW1134"), "DTP", "348")[3] = "20260201"
    # demographics: birthdate (spouse of 1001), name, gender, ssn, address
    first(loop_of(loops, "AW1001", "01"), "DMG")[2] = "19820715"
    first(loop_of(loops, "AW1145"), "NM1")[3] = "PLANTEDNAME"
    first(loop_of(loops, "AW1148"), "DMG")[3] = "F"
    first(loop_of(loops, "AW1142"), "NM1")[9] = "999887777"
    first(loop_of(loops, "AW1120"), "N3")[1] = "99 PLANTED RD"


def found_keys(report: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {
        (d["kind"], d["subscriber_id"], d["dependent_id"], d["coverage_id"], d["field"])
        for d in report["discrepancies"]
    }


# PHI of the sample export: what must never appear in the log, alerts or default JSON --------


def sample_phi(source: Path) -> list[str]:
    values: list[str] = []
    for name in ("subscribers", "dependents"):
        pages = json.loads((source / f"{name}.json").read_text())
        stack = [pages]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, dict) and "data" in item and "status" in item:
                stack.append(item["data"])
            elif isinstance(item, dict):
                ssn = "".join(ch for ch in str(item.get("ssn") or "") if ch.isdigit())
                if len(ssn) == 9:
                    values.append(ssn)
                if len(str(item.get("last_name") or "")) > 3:
                    values.append(str(item["last_name"]).upper())
    return sorted(set(values))


# CSV census ---------------------------------------------------------------------------------

CENSUS_COLUMNS = {
    "member_id": "Member ID",
    "relationship": "Relation",
    "first_name": "First",
    "last_name": "Last",
    "birthdate": "DOB",
    "gender": "Sex",
    "plan_code": "Plan",
    "coverage_level": "Tier",
    "effective_date": "Effective",
    "termination_date": "Term Date",
}
RELATION_WORDS = {
    "18": "Employee",
    "01": "Spouse",
    "19": "Child",
    "53": "Partner",
    "17": "Stepchild",
}


def census_from(
    ours: Path, target: Path, edit: Callable[[list[dict[str, str]]], None] | None = None
) -> Path:
    """One row per member and coverage line, dates as MM/DD/YYYY, words for relationships."""
    _, loops, _ = split(ours)
    rows: list[dict[str, str]] = []

    def us_date(d8: str) -> str:
        return f"{d8[4:6]}/{d8[6:8]}/{d8[:4]}" if d8 else ""

    for loop in loops:
        ins = loop[0]
        name = first(loop, "NM1", "IL")
        dmg = next((s for s in loop if s[0] == "DMG"), ["DMG", "D8", "", ""])
        relation = RELATION_WORDS.get(ins[2], ins[2])
        current: dict[str, str] | None = None
        for seg in loop:
            if seg[0] == "HD":
                current = {
                    "Member ID": first(loop, "REF", "0F")[2],
                    "Relation": relation,
                    "First": name[4].title(),
                    "Last": name[3].title(),
                    "DOB": us_date(dmg[2]),
                    "Sex": {"M": "Male", "F": "Female"}.get(dmg[3], ""),
                    "Plan": seg[4],
                    "Tier": seg[5] if len(seg) > 5 else "",
                    "Effective": "",
                    "Term Date": "",
                }
                rows.append(current)
            elif seg[0] == "DTP" and current is not None and seg[1] == "348":
                current["Effective"] = us_date(seg[3])
            elif seg[0] == "DTP" and current is not None and seg[1] == "349":
                current["Term Date"] = us_date(seg[3])
    if edit is not None:
        edit(rows)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(CENSUS_COLUMNS.values()))
        writer.writeheader()
        writer.writerows(rows)
    return target


CENSUS_PROFILE = """
[roster]
format = "csv"

[roster.csv]
member_id = "Member ID"
relationship = "Relation"
first_name = "First"
last_name = "Last"
birthdate = "DOB"
gender = "Sex"
plan_code = "Plan"
coverage_level = "Tier"
effective_date = "Effective"
termination_date = "Term Date"
date_format = "%m/%d/%Y"
relationships = { Partner = "53" }
"""
