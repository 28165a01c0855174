"""The carrier's side of a reconciliation: its roster, as an 834 or a CSV census.

An 834 roster is any 5010 834 the carrier sends back (typically an audit file, BGN08 4 with
INS03/HD01 030, sender and receiver the other way round). It is read with the project's own
segment reader and parsed tolerantly: what carriers get wrong (a bad count, a member loop
without REF*0F, an unreadable date) becomes a warning naming the segment position, never a
value. A CSV census is described by the profile's `[roster.csv]` table, one row per member and
coverage line.

`RosterMember` holds PHI (names, SSN, birth date, address) and exists only to be compared; its
repr is redacted and nothing here prints it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

from anyascii import anyascii

from edi.errors import ConfigError, SourceDataError, ValidationFailed
from edi.plansource.models import normalize_code
from edi.profiles import CarrierProfile, RosterCsv
from edi.x12.grammar import segment_spec
from edi.x12.reader import raw_segments

ENDED = "024"
SUBSCRIBER_WORDS = {"18", "self", "employee", "subscriber", "ee", "emp", "member", "primary"}
MAX_WARNINGS = 200


@dataclass(slots=True)
class RosterLine:
    maintenance: str  # HD01 ("" in a census)
    insurance_line: str | None  # HD03; None when a census plan code is unknown to the profile
    plan_code: str  # HD04
    level: str | None  # HD05; None when the roster does not say (a census without the column)
    begin: date | None  # DTP*348
    end: date | None  # DTP*349

    def ended(self, as_of: date) -> bool:
        return self.maintenance == ENDED or (self.end is not None and self.end < as_of)


@dataclass(slots=True)
class RosterMember:
    position: int  # INS loop number in the file, or census row number
    member_id: str  # REF*0F
    relationship: str  # INS02
    maintenance: str = ""  # INS03
    last_name: str | None = None
    first_name: str | None = None
    ssn: str | None = None
    birthdate: date | None = None
    gender: str | None = None
    address_1: str | None = None
    city: str | None = None
    state: str | None = None
    zip_code: str | None = None
    lines: list[RosterLine] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"RosterMember(position={self.position}, <redacted>)"


@dataclass(slots=True)
class RosterReport:
    """What reading the roster found; counts and positions only."""

    format: str
    members: int = 0
    lines: int = 0
    warnings: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(text)
        elif len(self.warnings) == MAX_WARNINGS:
            self.warnings.append("… further warnings left out")


# Normalisation used on both sides -----------------------------------------------------------

_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


@lru_cache(maxsize=65536)
def norm_text(value: str | None) -> str:
    """Upper-case letters and digits only, accents folded: what survives any X12 cleaning."""
    if not value:
        return ""
    if not value.isascii():  # as the writer transliterates (ß → SS, Ø → O, Ł → L)
        value = anyascii(value)
    return _NOT_ALNUM.sub("", value.upper())


def norm_ssn(value: str | None) -> str:
    digits = re.sub(r"\D", "", value or "")
    return digits if len(digits) == 9 else ""


def norm_gender(value: str | None) -> str:
    first = (value or "").strip().upper()[:1]
    return first if first in ("M", "F") else ""


def norm_zip(value: str | None) -> str:
    return re.sub(r"\D", "", value or "")[:5]


# 834 rosters ---------------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def parse_d8(text: str) -> date | None:
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _d8(
    value: str, qualifier: str, report: RosterReport, where: str, last: bool = False
) -> date | None:
    text = value.split("-")[-1 if last else 0] if qualifier == "RD8" else value
    day = parse_d8(text)
    if day is None:
        report.warn(f"{where}: unreadable date; ignored")
    return day


def _element(seg: list[str], position: int) -> str:
    return seg[position].strip() if len(seg) > position else ""


def read_834_roster(path: Path, report: RosterReport) -> Iterator[RosterMember]:
    """Member loops of any 834 (several ST/SE allowed), tolerating count and segment errors."""
    sep, raws = raw_segments(path)
    member: RosterMember | None = None
    line: RosterLine | None = None
    in_name = False
    ins_count = 0
    set_segments = 0
    set_ins = 0
    qty_to: int | None = None
    groups = sets = 0
    seen_st = False
    for number, raw in enumerate(raws, start=1):
        seg = raw.split(sep.element)
        tag = seg[0].strip()
        where = f"segment {number} ({tag})"
        if tag == "ST":
            seen_st = True
            sets += 1
            set_segments, set_ins, qty_to = 1, 0, None
            if _element(seg, 1) != "834":
                raise ValidationFailed(
                    "roster-not-834",
                    f"{path.name}: transaction set {_element(seg, 1) or '?'} is not an 834",
                    hint="A roster is an 834 (or a CSV census with [roster] format = 'csv').",
                )
            continue
        set_segments += 1
        if tag == "GS":
            groups += 1
        elif tag == "QTY" and _element(seg, 1) == "TO":
            try:
                qty_to = int(_element(seg, 2))
            except ValueError:
                report.warn(f"{where}: QTY*TO is not a number")
        elif tag == "SE":
            declared = _element(seg, 1)
            if declared != str(set_segments):
                report.warn(
                    f"{where}: SE01 says {declared or '?'} segments, the set has {set_segments}"
                )
            if qty_to is not None and qty_to != set_ins:
                report.warn(f"{where}: QTY*TO says {qty_to} members, the set has {set_ins}")
        elif tag == "GE" and _element(seg, 1) != str(sets):
            report.warn(f"{where}: GE01 says {_element(seg, 1) or '?'} sets, the group has {sets}")
            sets = 0
        elif tag == "GE":
            sets = 0
        elif tag == "IEA" and _element(seg, 1) != str(groups):
            report.warn(f"{where}: IEA01 says {_element(seg, 1) or '?'} groups, found {groups}")

        if tag == "INS":
            if member is not None:
                yield from _finish(member, report)
            ins_count += 1
            set_ins += 1
            member = RosterMember(
                position=ins_count,
                member_id="",
                relationship=_element(seg, 2),
                maintenance=_element(seg, 3),
            )
            line, in_name = None, False
        elif tag == "SE" and member is not None:
            yield from _finish(member, report)
            member, line, in_name = None, None, False
        elif member is None:
            continue
        elif tag == "REF" and line is None and not in_name and _element(seg, 1) == "0F":
            member.member_id = _element(seg, 2)
        elif tag == "NM1":
            in_name = _element(seg, 1) == "IL"
            if in_name:
                member.last_name = _element(seg, 3)
                member.first_name = _element(seg, 4)
                member.ssn = _element(seg, 9) if _element(seg, 8) == "34" else None
        elif tag == "N3" and in_name:
            member.address_1 = _element(seg, 1)
        elif tag == "N4" and in_name:
            member.city, member.state = _element(seg, 1), _element(seg, 2)
            member.zip_code = _element(seg, 3)
        elif tag == "DMG" and in_name:
            member.birthdate = _d8(_element(seg, 2), _element(seg, 1) or "D8", report, where)
            member.gender = _element(seg, 3)
        elif tag == "HD":
            in_name = False
            line = RosterLine(
                maintenance=_element(seg, 1),
                insurance_line=_element(seg, 3),
                plan_code=_element(seg, 4),
                level=_element(seg, 5),
                begin=None,
                end=None,
            )
            member.lines.append(line)
            report.lines += 1
        elif tag == "DTP" and line is not None:
            qualifier = _element(seg, 1)
            if qualifier in ("348", "349"):
                day = _d8(
                    _element(seg, 3), _element(seg, 2), report, where, last=qualifier == "349"
                )
                if qualifier == "348":
                    line.begin = day
                else:
                    line.end = day
        elif tag == "LS":
            line, in_name = None, False
    if member is not None:
        yield from _finish(member, report)
    if not seen_st:
        raise ValidationFailed(
            "roster-not-834", f"{path.name}: no transaction set (ST) in the interchange"
        )


def _finish(member: RosterMember, report: RosterReport) -> Iterator[RosterMember]:
    if not member.member_id:
        report.warn(f"member loop {member.position}: no REF*0F member identifier; skipped")
        return
    if not member.relationship:
        report.warn(f"member loop {member.position}: no INS02 relationship; skipped")
        return
    report.members += 1
    yield member


# CSV census ----------------------------------------------------------------------------------


def _codes(seg_id: str, loop: str, ref: str) -> frozenset[str]:
    spec = segment_spec(loop, seg_id, None)
    element = next(e for e in spec.elements if e is not None and e.ref == ref)
    return frozenset(element.codes or ())


def census_relationship(profile: CarrierProfile, config: RosterCsv, value: str) -> str | None:
    key = normalize_code(value)
    mapped = {normalize_code(k): v for k, v in config.relationships.items()}.get(key)
    if mapped:
        return mapped
    if value.strip() in _codes("INS", "2000", "INS02"):
        return value.strip()
    if key in SUBSCRIBER_WORDS or value.strip().lower() in SUBSCRIBER_WORDS:
        return "18"
    return profile.members.relationship_code(value)


def census_level(profile: CarrierProfile, value: str) -> str:
    text = value.strip()
    if text.upper() in _codes("HD", "2300", "HD05"):
        return text.upper()
    return profile.coverage_levels.get(normalize_code(text)) or text.upper()


def _plans_by_code(profile: CarrierProfile) -> dict[str, tuple[str, str]]:
    """A census plan value (HD04 plan code, or a PlanSource lookup code) → (HD03, HD04)."""
    found: dict[str, tuple[str, str]] = {}
    for lookup, plan in profile.plans.items():
        found.setdefault(plan.plan_code.upper(), (plan.insurance_line, plan.plan_code))
        found.setdefault(lookup.upper(), (plan.insurance_line, plan.plan_code))
    return found


def read_csv_roster(
    path: Path, profile: CarrierProfile, config: RosterCsv, report: RosterReport
) -> Iterator[RosterMember]:
    """One RosterMember per census row (a person's rows are merged when families are compared)."""
    plans = _plans_by_code(profile)
    columns = {
        name: getattr(config, name)
        for name in RosterCsv.model_fields
        if name not in ("date_format", "delimiter", "encoding", "relationships")
        and getattr(config, name)
    }
    with path.open("r", encoding=config.encoding, newline="") as stream:
        reader = csv.DictReader(stream, delimiter=config.delimiter)
        header = set(reader.fieldnames or [])
        missing = sorted(column for column in columns.values() if column not in header)
        if missing:
            raise SourceDataError(
                "roster-csv-columns",
                f"{path.name}: the census has no column(s) {', '.join(missing)}",
                hint="Match [roster.csv] in the carrier profile to the census header.",
            )

        def cell(row: dict[str, str | None], name: str) -> str | None:
            column = columns.get(name)
            return None if column is None else (row.get(column) or "").strip()

        def day(row: dict[str, str | None], name: str, where: str) -> date | None:
            text = cell(row, name)
            if not text:
                return None
            try:
                return datetime.strptime(text, config.date_format).date()
            except ValueError:
                report.warn(f"{where}: {name} does not match date_format; ignored")
                return None

        for number, row in enumerate(reader, start=2):
            where = f"row {number}"
            member_id = cell(row, "member_id") or ""
            relationship_value = cell(row, "relationship") or ""
            relationship = census_relationship(profile, config, relationship_value)
            if not member_id:
                report.warn(f"{where}: no member id; skipped")
                continue
            if relationship is None:
                report.warn(f"{where}: relationship value is not mapped; skipped")
                continue
            plan_value = (cell(row, "plan_code") or "").upper()
            insurance_line, plan_code = plans.get(plan_value, (None, plan_value))
            level = cell(row, "coverage_level")
            member = RosterMember(
                position=number,
                member_id=member_id,
                relationship=relationship,
                last_name=cell(row, "last_name"),
                first_name=cell(row, "first_name"),
                ssn=cell(row, "ssn"),
                birthdate=day(row, "birthdate", where),
                gender=cell(row, "gender"),
                address_1=cell(row, "address_1"),
                city=cell(row, "city"),
                state=cell(row, "state"),
                zip_code=cell(row, "zip_code"),
            )
            if plan_value:
                member.lines.append(
                    RosterLine(
                        maintenance="",
                        insurance_line=insurance_line,
                        plan_code=plan_code,
                        level=None if level is None else census_level(profile, level),
                        begin=day(row, "effective_date", where),
                        end=day(row, "termination_date", where),
                    )
                )
                report.lines += 1
            report.members += 1
            yield member


def roster_format(profile: CarrierProfile, path: Path) -> str:
    """The profile's format, unless the file says otherwise (an interchange starts with ISA)."""
    with path.open("rb") as handle:
        head = handle.read(256).lstrip()
    if head.startswith(b"ISA"):
        return "834"
    configured = profile.roster.format if profile.roster else "834"
    if configured == "csv" or path.suffix.lower() in (".csv", ".txt"):
        return "csv"
    return "834"


def read_roster(
    path: Path, profile: CarrierProfile, report: RosterReport
) -> Iterator[RosterMember]:
    if report.format == "csv":
        config = profile.roster.csv if profile.roster else None
        if config is None:
            raise ConfigError(
                "profile-no-roster-csv",
                f"carriers/{profile.name}.toml has no [roster.csv] table to read a census with",
                hint="Describe the census columns in [roster.csv] (see README: reconciling).",
            )
        return read_csv_roster(path, profile, config, report)
    return read_834_roster(path, report)
