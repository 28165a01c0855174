"""The 834 writer: streams member loops to disk, checking every element as it writes it.

Two passes over disk, constant memory: member loops go to a body file while counting INS loops
and segments; then the final file is the envelope and header (whose QTY counts need the body)
followed by the body. Element problems raise with the member's PlanSource id and the element
reference (`2000/INS03`), never the value.

Text is transliterated to X12's character set (anyascii: `ß` → `SS`, `Ø` → `O`, `Ł` → `L`) for
the alphabetic scripts with a standard romanization (Latin, Greek, Cyrillic); letters of other
scripts are not guessed at. Nothing is cut silently: a value cut to its element's maximum
length, letters X12 cannot carry and a contact or address segment left out are warning findings
(`Body.findings`), and an address longer than N301 continues in N302.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import IO

from anyascii import anyascii

from edi.errors import ValidationFailed
from edi.findings import Finding
from edi.members import FileType, Member
from edi.profiles import CarrierProfile, Delimiters
from edi.x12.grammar import ElementSpec, SegmentSpec, SyntaxRule, segment_spec

# The 5010 extended character set (what pyx12 enforces), upper-cased as carriers expect.
_NOT_X12_TEXT = re.compile(r"""[^A-Z0-9!"&'()*+,\-./:;?= %~@\[\]_{}\\|<>^`#$]""")
_SPACES = re.compile(r" {2,}")
RENDERED_CACHE_SIZE = 10_000
BGN08 = {"changes": "2", "full": "2", "audit": "4"}
TRANSLITERATED_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")
Ids = tuple[str | None, str | None, str | None]  # subscriber, dependent, coverage


class ElementProblem(ValidationFailed):
    def __init__(self, where: str, ref: str, problem: str) -> None:
        super().__init__(
            "x12-element-invalid",
            f"{where}: {ref} {problem}",
            hint="Fix the PlanSource record or the carrier profile.",
            record_ids=[where],
        )
        self.ref = ref


def _unwanted(delimiters: Delimiters) -> re.Pattern[str]:
    """Characters outside X12's set, and the file's own delimiters."""
    own = "".join(
        re.escape(d)
        for d in (
            delimiters.element,
            delimiters.component,
            delimiters.repetition,
            delimiters.segment,
        )
    )
    return re.compile(f"{_NOT_X12_TEXT.pattern}|[{own}]")


def to_x12_text(text: str, delimiters: Delimiters) -> str:
    """Upper-case X12 text without control characters or the file's own delimiters."""
    return _x12_text(text, _unwanted(delimiters))


@lru_cache(maxsize=4096)
def _ascii_char(char: str) -> str:
    """One non-ASCII character in X12's basic set: transliterated when it is punctuation, a
    symbol or a letter of a transliterated script; a letter of another script is left as it is
    (and so removed, and reported); a combining mark that did not compose is dropped."""
    category = unicodedata.category(char)[0]
    if category == "M":
        return ""
    if category == "L" and not any(
        script in unicodedata.name(char, "") for script in TRANSLITERATED_SCRIPTS
    ):
        return char
    return anyascii(char)


def untransliterated_letters(text: str) -> bool:
    """Whether the text has letters of a script X12 text cannot carry (CJK, Arabic, ...)."""
    return not text.isascii() and any(
        char.isalpha() and not _ascii_char(char).isascii() for char in text
    )


def _x12_text(text: str, unwanted: re.Pattern[str]) -> str:
    if not text.isascii():
        text = "".join(
            char if char.isascii() else _ascii_char(char)
            for char in unicodedata.normalize("NFC", text)
        )
    cleaned = unwanted.sub(" ", text.upper())
    if "  " in cleaned:
        cleaned = _SPACES.sub(" ", cleaned)
    return cleaned.strip()


@lru_cache(maxsize=4096)
def d8(value: date) -> str:
    return f"{value.year:04d}{value.month:02d}{value.day:02d}"


def amount(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


class SegmentSink:
    """Writes segments, checking each element against the implementation guide."""

    def __init__(self, stream: IO[str], delimiters: Delimiters) -> None:
        self.stream = stream
        self.delimiters = delimiters
        self.terminator = delimiters.segment + ("\n" if delimiters.line_breaks else "")
        self.count = 0
        self._unwanted = _unwanted(delimiters)
        # Coverage and date segments repeat across members; a checked segment is checked once,
        # and names, cities and dates repeat too: each text is cleaned once.
        self._rendered: dict[tuple[str | None, ...], str] = {}
        self._texts: dict[str, str] = {}
        self._rule_verdicts: dict[tuple[int, tuple[bool, ...]], tuple[SyntaxRule, str] | None] = {}
        # Warnings about the record being written, named by `ids` (set per member and line).
        self.findings: list[Finding] = []
        self.ids: Ids = (None, None, None)

    def note(self, code: str, ref: str, message: str) -> None:
        subscriber_id, dependent_id, coverage_id = self.ids
        self.findings.append(
            Finding(code, "warning", ref, message, subscriber_id, dependent_id, coverage_id)
        )

    def text(self, value: str) -> str:
        cleaned = self._texts.get(value)
        if cleaned is None:
            if len(self._texts) >= RENDERED_CACHE_SIZE:
                self._texts.clear()
            cleaned = self._texts[value] = _x12_text(value, self._unwanted)
        return cleaned

    def _element(self, spec: ElementSpec | None, value: str, where: str, loop: str) -> str:
        if spec is None:
            return value
        if spec.data_type == "AN":
            cleaned = self.text(value)
            if not value.isascii() and untransliterated_letters(value):
                self.note(
                    "text-not-transliterated",
                    f"{loop}/{spec.ref}",
                    f"{spec.ref} has letters of a script X12 cannot carry; they were left out",
                )
            value = cleaned
            if len(cleaned) > spec.max_len:
                value = cleaned[: spec.max_len].rstrip()
                self.note(
                    "value-truncated",
                    f"{loop}/{spec.ref}",
                    f"{spec.ref} was {len(cleaned)} characters, cut to its maximum {spec.max_len}",
                )
            if value and len(value) >= spec.min_len:
                return value
            ref = f"{loop}/{spec.ref}"
            if value:
                raise ElementProblem(where, ref, f"is shorter than {spec.min_len} characters")
            if not value and spec.required:
                raise ElementProblem(
                    where, ref, "is empty after removing characters X12 cannot carry"
                )
            return value
        if spec.codes is not None and value not in spec.codes:
            raise ElementProblem(
                where, f"{loop}/{spec.ref}", "is not a code the implementation guide allows"
            )
        if not spec.min_len <= len(value) <= spec.max_len:
            raise ElementProblem(
                where, f"{loop}/{spec.ref}", f"must be {spec.min_len}-{spec.max_len} characters"
            )
        return value

    def render(self, loop: str, seg_id: str, *elements: str | None, where: str = "file") -> str:
        """One checked segment as text; raises ElementProblem naming `where` and the element."""
        spec = segment_spec(loop, seg_id, elements[0] if elements else None)
        specs = spec.elements
        written: list[str] = []
        for position, value in enumerate(elements):
            element_spec = specs[position] if position < len(specs) else None
            if not value:
                if element_spec is not None and element_spec.required:
                    raise ElementProblem(where, f"{loop}/{element_spec.ref}", "is required")
                written.append("")
                continue
            written.append(self._element(element_spec, value, where, loop))
        if spec.rules:
            broken = self._broken_rule(spec, tuple(bool(value) for value in written))
            if broken is not None:
                rule, problem = broken
                refs = "/".join(f"{seg_id}{p:02d}" for p in rule.positions)
                raise ElementProblem(where, f"{loop}/{refs}", problem)
        while written and not written[-1]:
            written.pop()
        return seg_id + self.delimiters.element + self.delimiters.element.join(written)

    def _broken_rule(
        self, spec: SegmentSpec, pattern: tuple[bool, ...]
    ) -> tuple[SyntaxRule, str] | None:
        """The first syntax rule a presence pattern breaks; each pattern is judged once."""
        key = (id(spec), pattern)
        if key in self._rule_verdicts:
            return self._rule_verdicts[key]
        present = {position for position, there in enumerate(pattern, start=1) if there}
        verdict = None
        for rule in spec.rules:
            problem = rule.problem(present)
            if problem:
                verdict = (rule, problem)
                break
        self._rule_verdicts[key] = verdict
        return verdict

    def write(self, *rendered: str) -> None:
        for text in rendered:
            self.stream.write(text + self.terminator)
            self.count += 1

    def segment(self, loop: str, seg_id: str, *elements: str | None, where: str = "file") -> None:
        if seg_id == "NM1" and loop == "2100A":  # names never repeat: not worth remembering
            self.write(self.render(loop, seg_id, *elements, where=where))
            return
        key = (loop, seg_id, *elements)
        text = self._rendered.get(key)
        if text is None:
            noted = len(self.findings)
            text = self.render(loop, seg_id, *elements, where=where)
            if len(self.findings) == noted:  # a segment with findings is judged each time
                if len(self._rendered) >= RENDERED_CACHE_SIZE:
                    self._rendered.clear()
                self._rendered[key] = text
        self.write(text)

    def optional(self, *segments: tuple[str, ...], where: str, report: bool = True) -> bool:
        """Situational segments that go together (N3 + N4): all are written or none.
        Contact and address data that X12 cannot carry is left out rather than failing a file
        whose required data is fine, and that is a finding."""
        noted = len(self.findings)
        try:
            rendered = [self.render(seg[0], seg[1], *seg[2:], where=where) for seg in segments]
        except ElementProblem as problem:
            del self.findings[noted:]
            if report:
                names = "+".join(seg[1] for seg in segments)
                self.note("segment-omitted", problem.ref, f"{names} left out: {problem.ref} bad")
            return False
        self.write(*rendered)
        return True


def _phone(text: str) -> str:
    digits = re.sub(r"\D", "", text)
    return digits if 10 <= len(digits) <= 15 else ""


N301_MAX = 55


def address_lines(sink: SegmentSink, first: str, second: str) -> tuple[str, str]:
    """N301/N302: a first line longer than N301 continues in N302 (split at a space when there
    is one), ahead of the second line."""
    return split_address(sink.text(first), sink.text(second))


def split_address(first: str, second: str) -> tuple[str, str]:
    """Where N301 ends and N302 begins, for X12 text (reconciliation compares what was sent)."""
    if len(first) <= N301_MAX:
        return first, second
    cut = first.rfind(" ", 0, N301_MAX + 1)
    if cut <= 0:
        cut = N301_MAX
    rest = first[cut:].strip()
    return first[:cut].rstrip(), f"{rest} {second}".strip()


def _contacts(sink: SegmentSink, member: Member, where: str) -> None:
    person = member.person
    pairs = (("HP", _phone(person.phone)), ("EM", person.email))
    contacts = [(code, value) for code, value in pairs if value]
    # PER may appear once: both contacts together, else whichever X12 can carry.
    written: list[tuple[str, str]] = []
    for chosen in (contacts, *([c] for c in contacts)):
        flat = [part for pair in chosen for part in pair]
        if chosen and sink.optional(("2100A", "PER", "IP", "", *flat), where=where, report=False):
            written = chosen
            break
    for code, _ in contacts:
        if all(code != kept for kept, _ in written):
            sink.note("segment-omitted", "2100A/PER", f"PER {code} left out: X12 cannot carry it")


def write_member(sink: SegmentSink, member: Member, profile: CarrierProfile) -> None:
    where = member.ref
    sink.ids = (member.subscriber_id, member.dependent_id, None)
    seg = sink.segment
    seg(
        "2000",
        "INS",
        "Y" if member.is_subscriber else "N",
        member.relationship,
        member.maintenance,
        member.reason,
        member.benefit_status,
        None,
        None,
        member.employment_status if member.is_subscriber else None,
        member.student,  # INS09: an overage child kept on as a full-time student
        "Y" if member.handicapped else None,  # INS10: kept on as disabled
        "D8" if member.death_date else None,
        d8(member.death_date) if member.death_date else None,
        where=where,
    )
    seg("2000", "REF", "0F", member.member_id, where=where)
    if member.group_number:
        seg("2000", "REF", "1L", member.group_number, where=where)
    for qualifier, when in member.dates:
        seg("2000", "DTP", qualifier, "D8", d8(when), where=where)
    person = member.person
    seg(
        "2100A",
        "NM1",
        "IL",
        "1",
        person.last_name,
        person.first_name,
        person.middle_name,
        None,
        None,
        "34" if person.ssn else None,
        person.ssn,
        where=where,
    )
    if member.is_subscriber and profile.members.send_contact:
        _contacts(sink, member, where)
    if member.is_subscriber and person.address_1 and person.city:
        sink.optional(
            ("2100A", "N3", *address_lines(sink, person.address_1, person.address_2)),
            ("2100A", "N4", person.city, person.state, person.zip_code),
            where=where,
        )
    if person.birthdate:
        seg("2100A", "DMG", "D8", d8(person.birthdate), person.gender, where=where)
    for line in member.coverages:
        sink.ids = (member.subscriber_id, member.dependent_id, line.coverage_id)
        line_where = f"{where}, coverage id={line.coverage_id}"
        seg(
            "2300",
            "HD",
            line.maintenance,
            None,
            line.insurance_line,
            line.plan_code,
            line.level,
            where=line_where,
        )
        if line.begin:
            seg("2300", "DTP", "348", "D8", d8(line.begin), where=line_where)
        if line.end:
            seg("2300", "DTP", "349", "D8", d8(line.end), where=line_where)
        if line.changed:
            seg("2300", "DTP", "303", "D8", d8(line.changed), where=line_where)
        if line.premium is not None:
            seg("2300", "AMT", "P3", amount(line.premium), where=line_where)
        for qualifier, reference in line.refs:
            seg("2300", "REF", qualifier, reference, where=line_where)
    sink.ids = (member.subscriber_id, member.dependent_id, None)
    reported = [line for line in member.coverages if line.volume is not None]
    if reported:
        # 834.md: one LS/LE after the member's 2300 loops, one LX per reported amount.
        seg("LS_LOOP", "LS", "2700", where=where)
        for number, line in enumerate(reported, start=1):
            seg("2700", "LX", str(number), where=where)
            seg("2750", "N1", "75", f"VOLUME {line.plan_code}", where=where)
            seg("2750", "REF", "ZZ", amount(line.volume).removesuffix(".00"), where=where)  # type: ignore[arg-type]
            if line.begin:
                seg("2750", "DTP", "007", "D8", d8(line.begin), where=where)
        seg("LS_LOOP", "LE", "2700", where=where)


@dataclass(frozen=True, slots=True)
class Body:
    path: Path
    segments: int
    members: int
    subscribers: int
    dependents: int
    coverage_lines: int
    sha256: str
    findings: tuple[Finding, ...] = ()


def write_body(members: Iterable[Member], profile: CarrierProfile, path: Path) -> Body:
    counts = {"members": 0, "subscribers": 0, "coverage_lines": 0}
    with path.open("w", encoding="ascii", newline="") as stream:
        sink = SegmentSink(stream, profile.delimiters)
        for member in members:
            write_member(sink, member, profile)
            counts["members"] += 1
            counts["subscribers"] += member.is_subscriber
            counts["coverage_lines"] += len(member.coverages)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return Body(
        path=path,
        segments=sink.count,
        members=counts["members"],
        subscribers=counts["subscribers"],
        dependents=counts["members"] - counts["subscribers"],
        coverage_lines=counts["coverage_lines"],
        sha256=digest.hexdigest(),
        findings=tuple(sink.findings),
    )


@dataclass(frozen=True, slots=True)
class Envelope:
    control_number: int
    created_at: datetime

    @property
    def isa13(self) -> str:
        return f"{self.control_number:09d}"


def content_fingerprint(profile: CarrierProfile, file_type: FileType, body: Body) -> str:
    """What makes two files the same file: carrier, type, header choices and member loops.
    Envelope numbers and times are left out, so regenerating unchanged data gives the same
    control number and therefore the same bytes."""
    header = "|".join(
        [
            profile.name,
            file_type,
            profile.model_dump_json(
                include={"interchange", "sponsor", "payer", "policy", "delimiters"}
            ),
            body.sha256,
        ]
    )
    return hashlib.sha256(header.encode()).hexdigest()


def _isa(profile: CarrierProfile, envelope: Envelope) -> str:
    i, d = profile.interchange, profile.delimiters
    fields = [
        "ISA",
        "00",
        " " * 10,
        "00",
        " " * 10,
        i.sender_qualifier,
        i.sender_id.ljust(15),
        i.receiver_qualifier,
        i.receiver_id.ljust(15),
        envelope.created_at.strftime("%y%m%d"),
        envelope.created_at.strftime("%H%M"),
        d.repetition,
        "00501",
        envelope.isa13,
        "1" if i.ack_requested else "0",
        i.usage,
        d.component,
    ]
    return d.element.join(fields)


def write_file(
    profile: CarrierProfile, file_type: FileType, body: Body, envelope: Envelope, path: Path
) -> int:
    """The whole interchange; returns the transaction set's segment count (SE01)."""
    d = profile.delimiters
    with path.open("w", encoding="ascii", newline="") as stream:
        sink = SegmentSink(stream, d)
        stream.write(_isa(profile, envelope) + sink.terminator)
        created = envelope.created_at
        gs06 = str(envelope.control_number)
        seg = sink.segment
        seg(
            "GS_LOOP",
            "GS",
            "BE",
            profile.interchange.gs_sender,
            profile.interchange.gs_receiver,
            created.strftime("%Y%m%d"),
            created.strftime("%H%M"),
            gs06,
            "X",
            "005010X220A1",
        )
        before_st = sink.count
        seg("ST_LOOP", "ST", "834", "0001", "005010X220A1")
        bgn08 = "RX" if file_type == "full" and _replaces(profile) else BGN08[file_type]
        seg(
            "HEADER",
            "BGN",
            "00",
            envelope.isa13,
            created.strftime("%Y%m%d"),
            created.strftime("%H%M"),
            None,
            None,
            None,
            bgn08,
        )
        if profile.policy.master_policy:
            seg("HEADER", "REF", "38", profile.policy.master_policy)
        seg("HEADER", "QTY", "TO", str(body.members))
        seg("HEADER", "QTY", "ET", str(body.subscribers))
        seg("HEADER", "QTY", "DT", str(body.dependents))
        sponsor, payer = profile.sponsor, profile.payer
        seg("1000A", "N1", "P5", sponsor.name, sponsor.id_qualifier, sponsor.id)
        seg("1000B", "N1", "IN", payer.name, payer.id_qualifier, payer.id)
        stream.flush()
        with body.path.open("r", encoding="ascii", newline="") as body_stream:
            shutil.copyfileobj(body_stream, stream, 1 << 20)
        sink.count += body.segments
        se01 = sink.count - before_st + 1
        seg("ST_LOOP", "SE", str(se01), "0001")
        seg("GS_LOOP", "GE", "1", gs06)
        seg("ISA_LOOP", "IEA", "1", envelope.isa13)
    return se01


def _replaces(profile: CarrierProfile) -> bool:
    return bool((profile.changes or {}).get("carrier_replaces", False))
