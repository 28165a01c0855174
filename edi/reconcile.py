"""Reconciliation: what the carrier holds (its roster) against what PlanSource says.

PlanSource's side is the full-file view of the same mapping `edi generate` uses, at the as-of
date. Both sides are streamed into a scratch SQLite database under `state/` (it holds PHI: 0600,
deleted afterwards), then merged family by family in member-id order, so memory stays flat in
the size of either side.

Matching: subscribers by the profile's member identifier (REF*0F); within a family, dependents
by relationship + SSN, then by relationship + name + birth date. Coverage lines within a matched
member by HD03/HD04 (+ begin date), then by HD03 alone (a plan mismatch).

Every finding is a `Discrepancy` with a kind from `KINDS`, PlanSource ids, and a stable id (a
hash of carrier, kind, ids and field). Values of PHI fields are carried only in `ours`/`theirs`,
for the screen and the HTML report with --show-names; they are never stored, logged or alerted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import marshal
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from anyascii import anyascii

from edi.members import MappingReport, Member
from edi.profiles import CarrierProfile
from edi.roster import (
    RosterLine,
    RosterMember,
    RosterReport,
    norm_gender,
    norm_ssn,
    norm_text,
    norm_zip,
)
from edi.workspace import Workspace
from edi.x12.writer import split_address

KINDS: dict[str, tuple[str, str]] = {
    "missing-at-carrier": (
        "PlanSource has active coverage for this member or line; the carrier's roster lacks it.",
        "Check that the last files were delivered and accepted (edi log, edi acks); resend a "
        "full file or ask the carrier to load the member.",
    ),
    "unexpected-at-carrier": (
        "The carrier covers someone (or a plan) PlanSource does not, or a member id PlanSource "
        "does not know.",
        "Confirm in PlanSource whether the person should be covered; if not, send the carrier a "
        "termination or ask them to remove the record.",
    ),
    "terminated-but-active": (
        "PlanSource ended this coverage; the carrier still has it active (no end date).",
        "The termination did not reach the carrier: resend it, or ask the carrier to apply it. "
        "Premiums may be billed for it meanwhile.",
    ),
    "plan-mismatch": (
        "The carrier has the member on a different plan or insurance line (HD03/HD04).",
        "Compare the election in PlanSource with the carrier's record; fix the side that is wrong.",
    ),
    "tier-mismatch": (
        "The coverage level (HD05: employee only, + spouse, family ...) differs.",
        "Check the dependents on the election in PlanSource and the carrier's tier.",
    ),
    "effective-date-mismatch": (
        "The coverage begin (348) or end (349) date differs.",
        "Check the election and termination dates in PlanSource; a carrier often needs a manual "
        "correction for retroactive dates.",
    ),
    "demographic-mismatch": (
        "A personal field differs: birthdate, gender, name, ssn or address.",
        "Correct the record in PlanSource, or ask the carrier to correct theirs; a birth date or "
        "SSN error can block claims.",
    ),
}
DEMOGRAPHIC_FIELDS = ("birthdate", "gender", "name", "ssn", "address")
WARNING_BY_DEFAULT = {
    "demographic-mismatch:name",
    "demographic-mismatch:gender",
    "demographic-mismatch:address",
}
INSERT_BATCH = 2000


@dataclass(frozen=True, slots=True)
class Discrepancy:
    carrier: str
    kind: str
    subscriber_id: str | None
    member_id: str
    dependent_id: str | None
    coverage_id: str | None
    field: str | None
    severity: str
    detail: str = ""  # no PHI: plan codes, coverage dates, qualifiers, loop positions
    ours: str | None = dataclasses.field(default=None, repr=False)  # PHI: the screen only
    theirs: str | None = dataclasses.field(default=None, repr=False)
    extra: str = ""  # distinguishes records without PlanSource ids (part of the id)

    @property
    def id(self) -> str:
        parts = [
            self.carrier,
            self.kind,
            self.subscriber_id or "",
            self.member_id,
            self.dependent_id or "",
            self.coverage_id or "",
            self.field or "",
            self.extra,
        ]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]

    def row(self) -> dict[str, str | None]:
        """The contract's fields (the JSON and the store); no PHI."""
        return {
            "id": self.id,
            "kind": self.kind,
            "subscriber_id": self.subscriber_id,
            "member_id": self.member_id,
            "dependent_id": self.dependent_id,
            "coverage_id": self.coverage_id,
            "field": self.field,
            "severity": self.severity,
        }


# The two sides as compared -------------------------------------------------------------------


@dataclass(slots=True)
class OurLine:
    coverage_id: str
    insurance_line: str
    plan_code: str
    level: str | None
    begin: date | None
    end: date | None
    status: str

    def active(self, as_of: date) -> bool:
        return self.status != "declined" and (self.end is None or self.end >= as_of)


@dataclass(slots=True)
class OurMember:
    subscriber_id: str
    dependent_id: str | None
    relationship: str
    last_name: str
    first_name: str
    ssn: str | None
    birthdate: date | None
    gender: str
    address_1: str
    city: str
    state: str
    zip_code: str
    lines: list[OurLine]

    def __repr__(self) -> str:
        return f"OurMember(subscriber_id={self.subscriber_id}, dependent_id={self.dependent_id})"


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def encode_ours(member: Member) -> bytes:
    p = member.person
    lines = tuple(
        (
            line.coverage_id,
            line.insurance_line,
            line.plan_code,
            line.level,
            _iso(line.begin),
            _iso(line.end),
            line.status,
        )
        for line in member.coverages
    )
    return marshal.dumps(
        (
            member.subscriber_id,
            member.dependent_id,
            member.relationship,
            p.last_name,
            p.first_name,
            p.ssn,
            _iso(p.birthdate),
            p.gender,
            p.address_1 if member.is_subscriber else "",
            p.city if member.is_subscriber else "",
            p.state if member.is_subscriber else "",
            p.zip_code if member.is_subscriber else "",
            lines,
        )
    )


def decode_ours(blob: bytes) -> OurMember:
    (sid, did, rel, last, first, ssn, dob, gender, a1, city, state, zip_code, lines) = (
        marshal.loads(blob)
    )
    return OurMember(
        sid,
        did,
        rel,
        last,
        first,
        ssn,
        _day(dob),
        gender,
        a1,
        city,
        state,
        zip_code,
        [OurLine(c, i, p, lv, _day(b), _day(e), st) for c, i, p, lv, b, e, st in lines],
    )


def encode_theirs(member: RosterMember) -> bytes:
    lines = tuple(
        (
            line.maintenance,
            line.insurance_line,
            line.plan_code,
            line.level,
            _iso(line.begin),
            _iso(line.end),
        )
        for line in member.lines
    )
    m = member
    return marshal.dumps(
        (
            m.position,
            m.relationship,
            m.maintenance,
            m.last_name,
            m.first_name,
            m.ssn,
            _iso(m.birthdate),
            m.gender,
            m.address_1,
            m.city,
            m.state,
            m.zip_code,
            lines,
        )
    )


def decode_theirs(member_id: str, blob: bytes) -> RosterMember:
    (
        position,
        rel,
        maintenance,
        last,
        first,
        ssn,
        dob,
        gender,
        a1,
        city,
        state,
        zip_code,
        lines,
    ) = marshal.loads(blob)
    return RosterMember(
        position=position,
        member_id=member_id,
        relationship=rel,
        maintenance=maintenance,
        last_name=last,
        first_name=first,
        ssn=ssn,
        birthdate=_day(dob),
        gender=gender,
        address_1=a1,
        city=city,
        state=state,
        zip_code=zip_code,
        lines=[RosterLine(h1, h3, h4, h5, _day(b), _day(e)) for h1, h3, h4, h5, b, e in lines],
    )


# Comparing one family ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompareContext:
    carrier: str
    as_of: date
    severity: dict[str, str] = field(default_factory=dict)
    mask_member_id: bool = False  # the profile's REF*0F is the SSN: never store or show it

    def severity_of(self, kind: str, field_name: str | None) -> str:
        key = f"{kind}:{field_name}" if field_name else kind
        chosen = self.severity.get(key) or self.severity.get(kind)
        if chosen:
            return chosen
        return "warning" if key in WARNING_BY_DEFAULT else "error"

    def shown_id(self, member_id: str) -> str:
        if self.mask_member_id:
            return "XXXXX" + member_id[-4:]
        return member_id


def _identity(member: RosterMember) -> tuple[Any, ...]:
    return (
        member.relationship,
        norm_ssn(member.ssn),
        norm_text(member.last_name),
        norm_text(member.first_name),
        member.birthdate,
    )


def merge_rows(theirs: list[RosterMember]) -> list[RosterMember]:
    """A census lists a person once per line: one member per person, lines together."""
    merged: dict[tuple[Any, ...], RosterMember] = {}
    for member in theirs:
        found = merged.get(_identity(member))
        if found is None:
            merged[_identity(member)] = member
        else:
            found.lines.extend(member.lines)
    return list(merged.values())


def match_family(
    ours: list[OurMember], theirs: list[RosterMember]
) -> tuple[list[tuple[OurMember, RosterMember]], list[OurMember], list[RosterMember]]:
    pairs: list[tuple[OurMember, RosterMember]] = []
    left_ours = list(ours)
    left_theirs = list(theirs)

    def take(test: Any) -> None:
        for their in list(left_theirs):
            for our in left_ours:
                if test(our, their):
                    pairs.append((our, their))
                    left_ours.remove(our)
                    left_theirs.remove(their)
                    break

    take(lambda o, t: o.relationship == "18" and t.relationship == "18")
    take(
        lambda o, t: (
            o.relationship == t.relationship
            and bool(norm_ssn(t.ssn))
            and norm_ssn(o.ssn) == norm_ssn(t.ssn)
        )
    )
    take(
        lambda o, t: (
            o.relationship == t.relationship
            and o.birthdate is not None
            and o.birthdate == t.birthdate
            and norm_text(o.last_name) == norm_text(t.last_name)
            and norm_text(o.first_name) == norm_text(t.first_name)
        )
    )
    return pairs, left_ours, left_theirs


def _pair_lines(
    ours: list[OurLine], theirs: list[RosterLine], as_of: date
) -> tuple[list[tuple[OurLine, RosterLine]], list[OurLine], list[RosterLine]]:
    pairs: list[tuple[OurLine, RosterLine]] = []
    left_ours, left_theirs = list(ours), list(theirs)

    def take(test: Any, only_active: bool = False) -> None:
        for our in list(left_ours):
            if only_active and not our.active(as_of):
                continue
            for their in left_theirs:
                if only_active and their.ended(as_of):
                    continue
                if test(our, their):
                    pairs.append((our, their))
                    left_ours.remove(our)
                    left_theirs.remove(their)
                    break

    def same_plan(o: OurLine, t: RosterLine) -> bool:
        return (
            t.insurance_line is None or o.insurance_line == t.insurance_line
        ) and o.plan_code == t.plan_code

    take(lambda o, t: same_plan(o, t) and o.begin == t.begin)
    take(same_plan)
    take(lambda o, t: o.insurance_line == t.insurance_line, only_active=True)
    take(lambda o, t: t.insurance_line is None, only_active=True)
    return pairs, left_ours, left_theirs


def _address_key(line: str | None, city: str | None, state: str | None, code: str | None) -> str:
    return "|".join((norm_text(line), norm_text(city), norm_text(state), norm_zip(code)))


def _d8(value: date | None) -> str:
    return value.strftime("%Y%m%d") if value else "none"


class FamilyComparer:
    def __init__(self, ctx: CompareContext) -> None:
        self.ctx = ctx

    def _make(
        self,
        kind: str,
        member_id: str,
        our: OurMember | None,
        *,
        subscriber_id: str | None = None,
        coverage_id: str | None = None,
        field_name: str | None = None,
        detail: str = "",
        ours: str | None = None,
        theirs: str | None = None,
        extra: str = "",
    ) -> Discrepancy:
        return Discrepancy(
            carrier=self.ctx.carrier,
            kind=kind,
            subscriber_id=our.subscriber_id if our else subscriber_id,
            member_id=self.ctx.shown_id(member_id),
            dependent_id=our.dependent_id if our else None,
            coverage_id=coverage_id,
            field=field_name,
            severity=self.ctx.severity_of(kind, field_name),
            detail=detail,
            ours=ours,
            theirs=theirs,
            extra=extra,
        )

    def family(
        self, member_id: str, ours: list[OurMember], theirs: list[RosterMember]
    ) -> Iterator[Discrepancy]:
        as_of = self.ctx.as_of
        theirs = merge_rows(theirs)
        pairs, only_ours, only_theirs = match_family(ours, theirs)
        family_subscriber = ours[0].subscriber_id if ours else None
        for our in only_ours:
            active = [line for line in our.lines if line.active(as_of)]
            if active:
                yield self._make(
                    "missing-at-carrier",
                    member_id,
                    our,
                    detail=f"no member loop at the carrier; {len(active)} active line(s)",
                )
        ordinal: dict[str, int] = {}
        for their in sorted(only_theirs, key=lambda t: t.position):
            ordinal[their.relationship] = ordinal.get(their.relationship, 0) + 1
            if any(not line.ended(as_of) for line in their.lines):
                known = "member id unknown to PlanSource" if not ours else "not in PlanSource"
                yield self._make(
                    "unexpected-at-carrier",
                    member_id,
                    None,
                    subscriber_id=family_subscriber,
                    detail=f"carrier member {their.position}, INS02 {their.relationship}: {known}",
                    extra=f"rel{their.relationship}#{ordinal[their.relationship]}",
                )
        for our, their in pairs:
            yield from self.demographics(member_id, our, their)
            yield from self.lines(member_id, our, their)

    def demographics(
        self, member_id: str, our: OurMember, their: RosterMember
    ) -> Iterator[Discrepancy]:
        def differ(name: str, mine: str, carriers: str, shown: tuple[str, str]) -> Iterator[Any]:
            if mine and carriers and mine != carriers:
                yield self._make(
                    "demographic-mismatch",
                    member_id,
                    our,
                    field_name=name,
                    detail=f"{name} differs",
                    ours=shown[0],
                    theirs=shown[1],
                )

        if our.birthdate and their.birthdate and our.birthdate != their.birthdate:
            yield self._make(
                "demographic-mismatch",
                member_id,
                our,
                field_name="birthdate",
                detail="birthdate differs",
                ours=our.birthdate.isoformat(),
                theirs=their.birthdate.isoformat(),
            )
        yield from differ(
            "gender",
            norm_gender(our.gender),
            norm_gender(their.gender),
            (our.gender, their.gender or ""),
        )
        if their.last_name is not None or their.first_name is not None:
            yield from differ(
                "name",
                norm_text(our.last_name) + "|" + norm_text(our.first_name),
                norm_text(their.last_name) + "|" + norm_text(their.first_name),
                (
                    f"{our.last_name}, {our.first_name}",
                    f"{their.last_name or ''}, {their.first_name or ''}",
                ),
            )
        yield from differ(
            "ssn", norm_ssn(our.ssn), norm_ssn(their.ssn), (our.ssn or "", their.ssn or "")
        )
        if our.dependent_id is None and their.address_1 and our.address_1:
            # The carrier holds N301 as we sent it: a long first line continued in N302.
            sent_first_line = split_address(anyascii(our.address_1).upper(), "")[0]
            mine = _address_key(sent_first_line, our.city, our.state, our.zip_code)
            carriers = _address_key(their.address_1, their.city, their.state, their.zip_code)
            yield from differ(
                "address",
                mine,
                carriers,
                (
                    f"{our.address_1}, {our.city} {our.state} {our.zip_code}",
                    f"{their.address_1}, {their.city} {their.state} {their.zip_code}",
                ),
            )

    def lines(self, member_id: str, our: OurMember, their: RosterMember) -> Iterator[Discrepancy]:
        as_of = self.ctx.as_of
        pairs, only_ours, only_theirs = _pair_lines(our.lines, their.lines, as_of)
        for line in only_ours:
            if line.active(as_of):
                yield self._make(
                    "missing-at-carrier",
                    member_id,
                    our,
                    coverage_id=line.coverage_id,
                    detail=f"{line.insurance_line}/{line.plan_code}: no line at the carrier",
                )
        counts: dict[str, int] = {}
        for tline in only_theirs:
            if tline.ended(as_of):
                continue
            plan = f"{tline.insurance_line or '?'}/{tline.plan_code}"
            counts[plan] = counts.get(plan, 0) + 1
            yield self._make(
                "unexpected-at-carrier",
                member_id,
                our,
                detail=f"{plan}: the carrier has a line PlanSource does not",
                extra=f"{plan}#{counts[plan]}",
            )
        for oline, tline in pairs:
            yield from self.line_pair(member_id, our, oline, tline)

    def line_pair(
        self, member_id: str, our: OurMember, oline: OurLine, tline: RosterLine
    ) -> Iterator[Discrepancy]:
        as_of = self.ctx.as_of
        plan = f"{oline.insurance_line}/{oline.plan_code}"

        def make(kind: str, field_name: str | None, detail: str) -> Discrepancy:
            return self._make(
                kind,
                member_id,
                our,
                coverage_id=oline.coverage_id,
                field_name=field_name,
                detail=f"{plan}: {detail}",
            )

        if oline.end is None:
            if tline.ended(as_of):
                yield make("missing-at-carrier", None, f"ended at the carrier {_d8(tline.end)}")
                return
            if tline.end is not None:
                yield make(
                    "effective-date-mismatch", "349", f"end ours none, carrier {_d8(tline.end)}"
                )
        elif tline.end is None:
            if tline.maintenance != "024":
                yield make("terminated-but-active", None, f"ended {_d8(oline.end)} in PlanSource")
                return
        elif tline.end != oline.end:
            yield make(
                "effective-date-mismatch",
                "349",
                f"end ours {_d8(oline.end)}, carrier {_d8(tline.end)}",
            )
        if oline.begin and tline.begin and oline.begin != tline.begin:
            yield make(
                "effective-date-mismatch",
                "348",
                f"begin ours {_d8(oline.begin)}, carrier {_d8(tline.begin)}",
            )
        if tline.insurance_line is not None and tline.insurance_line != oline.insurance_line:
            yield make(
                "plan-mismatch",
                "HD03",
                f"insurance line carrier {tline.insurance_line}/{tline.plan_code}",
            )
        elif tline.plan_code != oline.plan_code:
            yield make("plan-mismatch", "HD04", f"carrier plan {tline.plan_code}")
        if oline.level and tline.level is not None and tline.level != oline.level:
            levels = f"level ours {oline.level}, carrier {tline.level or 'none'}"
            yield make("tier-mismatch", "HD05", levels)


# The scratch store: both sides streamed in, merged in member-id order ------------------------


PARALLEL_FROM_BYTES = 4 << 20  # rosters this large are read on the second core
_TABLE = "CREATE TABLE {name} (member_id TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL)"


def _private_db(path: Path, table: str) -> sqlite3.Connection:
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    db = sqlite3.connect(path)
    db.executescript(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA temp_store = FILE;"
        + _TABLE.format(name=table)
    )
    return db


def _load(db: sqlite3.Connection, table: str, rows: Iterable[tuple[str, bytes]]) -> int:
    count = 0
    batch: list[tuple[str, int, bytes]] = []
    for member_id, blob in rows:
        count += 1
        batch.append((member_id, count, blob))
        if len(batch) >= INSERT_BATCH:
            db.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", batch)
            batch.clear()
    if batch:
        db.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", batch)
    db.execute(f"CREATE INDEX {table}_member ON {table} (member_id, seq)")
    db.commit()
    return count


@dataclass(frozen=True, slots=True)
class RosterLoad:
    count: int
    report: RosterReport
    failure: tuple[str, str, str, str] | None = None  # an EdiError: class, code, message, hint


def load_roster(
    db_path: Path, roster: Path, profile: CarrierProfile, report_format: str
) -> RosterLoad:
    """Reads the roster into its own scratch file (run in a child process for large rosters).
    An EdiError comes back as `failure` (they do not pickle)."""
    from edi.errors import EdiError
    from edi.roster import read_roster

    report = RosterReport(format=report_format)
    db = _private_db(db_path, "theirs")
    try:
        members = read_roster(roster, profile, report)
        count = _load(db, "theirs", ((m.member_id, encode_theirs(m)) for m in members))
    except EdiError as error:
        return RosterLoad(0, report, (type(error).__name__, error.code, error.message, error.hint))
    finally:
        db.close()
    return RosterLoad(count, report)


class Scratch:
    """Throwaway SQLite files under state/ (they hold PHI: 0600, removed on close): PlanSource's
    side in one, the roster in another (written by a second process when large), merged by
    member id."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        stem = f".reconcile-{uuid.uuid4().hex}"
        self.path = state_dir / f"{stem}.sqlite"
        self.theirs_path = state_dir / f"{stem}-roster.sqlite"
        self.db = _private_db(self.path, "ours")

    def load_ours(self, members: Iterable[Member]) -> int:
        return _load(self.db, "ours", ((m.member_id, encode_ours(m)) for m in members))

    def attach_theirs(self) -> None:
        self.db.execute("ATTACH DATABASE ? AS roster", (str(self.theirs_path),))

    def families(self) -> Iterator[tuple[str, list[OurMember], list[RosterMember]]]:
        """Every member id on either side, with both sides' members, in member-id order."""
        ours_cursor = self.db.cursor().execute(
            "SELECT member_id, data FROM main.ours ORDER BY member_id, seq"
        )
        theirs_cursor = self.db.cursor().execute(
            "SELECT member_id, data FROM roster.theirs ORDER BY member_id, seq"
        )
        ours_groups = itertools.groupby(ours_cursor, key=lambda row: str(row[0]))
        theirs_groups = itertools.groupby(theirs_cursor, key=lambda row: str(row[0]))
        our_next = next(ours_groups, None)
        their_next = next(theirs_groups, None)
        while our_next is not None or their_next is not None:
            if their_next is None or (our_next is not None and our_next[0] < their_next[0]):
                assert our_next is not None
                yield our_next[0], [decode_ours(r[1]) for r in our_next[1]], []
                our_next = next(ours_groups, None)
            elif our_next is None or their_next[0] < our_next[0]:
                key = their_next[0]
                yield key, [], [decode_theirs(key, r[1]) for r in their_next[1]]
                their_next = next(theirs_groups, None)
            else:
                key = our_next[0]
                yield (
                    key,
                    [decode_ours(r[1]) for r in our_next[1]],
                    [decode_theirs(key, r[1]) for r in their_next[1]],
                )
                our_next = next(ours_groups, None)
                their_next = next(theirs_groups, None)

    def close(self) -> None:
        self.db.close()
        for path in (self.path, self.theirs_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _raise_child_error(failure: tuple[str, str, str, str]) -> None:
    from edi import errors

    name, code, message, hint = failure
    cls = getattr(errors, name, errors.SourceDataError)
    raise cls(code, message, hint=hint)


def compare(
    ctx: CompareContext,
    ours: Iterable[Member],
    roster: Path,
    profile: CarrierProfile,
    report_format: str,
    state_dir: Path,
) -> tuple[list[Discrepancy], int, int, RosterReport]:
    """All discrepancies, the member counts of each side, and what reading the roster found.
    A large roster is read by a second process while this one maps PlanSource's side."""
    scratch = Scratch(state_dir)
    try:
        if roster.stat().st_size >= PARALLEL_FROM_BYTES:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                reading = pool.submit(
                    load_roster, scratch.theirs_path, roster, profile, report_format
                )
                try:
                    our_count = scratch.load_ours(ours)
                finally:
                    loaded = reading.result()
        else:
            our_count = scratch.load_ours(ours)
            loaded = load_roster(scratch.theirs_path, roster, profile, report_format)
        if loaded.failure is not None:
            _raise_child_error(loaded.failure)
        scratch.attach_theirs()
        comparer = FamilyComparer(ctx)
        found: dict[str, Discrepancy] = {}
        for member_id, our_family, their_family in scratch.families():
            for discrepancy in comparer.family(member_id, our_family, their_family):
                found.setdefault(discrepancy.id, discrepancy)
        return list(found.values()), our_count, loaded.count, loaded.report
    finally:
        scratch.close()


def context_for(profile: CarrierProfile, as_of: date) -> CompareContext:
    severity: dict[str, str] = dict(profile.roster.severity) if profile.roster else {}
    return CompareContext(
        carrier=profile.name,
        as_of=as_of,
        severity=severity,
        mask_member_id=profile.members.identifier == "ssn",
    )


# The result ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Reconciliation:
    carrier: str
    as_of: date
    roster_name: str
    roster_sha256: str
    roster_format: str
    discrepancies: list[Discrepancy]
    statuses: dict[str, str]
    new: list[str]
    resolved: list[str]
    run_id: str
    at: datetime
    ours_members: int = 0
    theirs_members: int = 0
    roster: RosterReport | None = None
    mapping: MappingReport | None = None
    decrypted: bool = False
    alerts_sent: list[str] = field(default_factory=list)
    log_seq: int | None = None

    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for d in self.discrepancies:
            counts[d.kind] += 1
        return counts

    def open_errors(self) -> int:
        return sum(
            1
            for d in self.discrepancies
            if d.severity == "error" and self.statuses.get(d.id, "open") == "open"
        )

    def as_json(self) -> dict[str, Any]:
        """The contract's shape; PlanSource ids only."""
        return {
            "carrier": self.carrier,
            "as_of": self.as_of.isoformat(),
            "summary": self.summary(),
            "discrepancies": [
                {**d.row(), "status": self.statuses.get(d.id, "open")}
                for d in self.sorted_discrepancies()
            ],
        }

    def sorted_discrepancies(self) -> list[Discrepancy]:
        order = {kind: n for n, kind in enumerate(KINDS)}
        return sorted(
            self.discrepancies,
            key=lambda d: (
                order[d.kind],
                d.subscriber_id or "",
                d.member_id,
                d.dependent_id or "",
                d.coverage_id or "",
                d.field or "",
                d.extra,
            ),
        )

    def facts(self) -> dict[str, Any]:
        """What the delivery log records: counts by kind and the roster's hash; no PHI."""
        return {
            "reconciliation_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "roster_file": self.roster_name,
            "roster_sha256": self.roster_sha256,
            "roster_format": self.roster_format,
            "roster_encrypted": self.decrypted,
            "roster_members": self.theirs_members,
            "plansource_members": self.ours_members,
            "roster_warnings": len(self.roster.warnings) if self.roster else 0,
            "counts": self.summary(),
            "new": len(self.new),
            "resolved": len(self.resolved),
            "open_errors": self.open_errors(),
        }


# Running one (the CLI, the scheduler and `roster fetch` call these) --------------------------


def run_reconciliation(
    workspace: Workspace,
    carrier: str,
    roster: Path,
    *,
    now: datetime,
    as_of: date | None = None,
    source: Path | None = None,
    schedule_id: str | None = None,
) -> Reconciliation:
    """Decrypt (if needed) → read both sides → compare → lifecycle → delivery log → alert."""
    import transmit
    from edi import delivery_config, stores
    from edi.errors import UsageError
    from edi.mapping import MappingContext, map_members
    from edi.pipeline import actor, resolve_source
    from edi.plansource.export import read_export
    from edi.profiles import load_profile
    from edi.roster import roster_format
    from edi.runs import preview_scratch

    if not roster.is_file():
        raise UsageError("file-missing", f"{roster} does not exist")
    profile = load_profile(workspace, carrier)
    effective = as_of or now.date()
    state = workspace.ensure_state()
    roster_sha = transmit.sha256_file(roster)
    plain = roster
    decrypted: Path | None = None
    try:
        if transmit.is_encrypted(roster):
            passphrase_env = profile.roster.passphrase_env if profile.roster else None
            decrypted = state / "rosters" / ".scratch" / f"{uuid.uuid4().hex}.roster"
            decrypted.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(decrypted.parent, 0o700)
            try:
                transmit.decrypt_file(
                    roster,
                    decrypted,
                    workspace.gnupg_home,
                    passphrase=delivery_config.secret_from_env(
                        passphrase_env, "the workspace key's passphrase"
                    ),
                )
            except transmit.TransmitError as error:
                from edi.errors import SourceDataError

                raise SourceDataError(error.code, error.message, hint=error.hint) from error
            plain = decrypted
        mapping = MappingReport()
        source_dir, _ = resolve_source(workspace, source)
        ctx = context_for(profile, effective)
        with (
            preview_scratch(state) as scratch,
            read_export(source_dir, scratch, claims=profile.claims_code) as data,
        ):
            ours = map_members(MappingContext(profile, effective, "full"), data.groups(), mapping)
            found, ours_count, theirs_count, report = compare(
                ctx, ours, plain, profile, roster_format(profile, plain), state
            )
    finally:
        if decrypted is not None:
            with contextlib.suppress(FileNotFoundError):
                decrypted.unlink()
    run_id = uuid.uuid4().hex
    result = Reconciliation(
        carrier=carrier,
        as_of=effective,
        roster_name=roster.name,
        roster_sha256=roster_sha,
        roster_format=report.format,
        discrepancies=found,
        statuses={},
        new=[],
        resolved=[],
        run_id=run_id,
        at=now,
        ours_members=ours_count,
        theirs_members=theirs_count,
        roster=report,
        mapping=mapping,
        decrypted=decrypted is not None,
    )
    changes = stores.discrepancies(workspace).record_run(
        carrier,
        found,
        run_id=run_id,
        now=now,
        as_of=effective.isoformat(),
        roster_sha256=roster_sha,
        summary={"counts": result.summary(), "new": 0, "resolved": 0},
    )
    result.statuses, result.new, result.resolved = changes.statuses, changes.new, changes.resolved
    if changes.new:
        new_ids = set(changes.new)
        by_kind: dict[str, int] = {}
        for d in found:
            if d.id in new_ids:
                by_kind[d.kind] = by_kind.get(d.kind, 0) + 1
        result.alerts_sent = delivery_config.send_alert(
            workspace,
            transmit.AlertEvent(
                kind="reconciliation-discrepancies",
                carrier=carrier,
                message=f"{len(changes.new)} new discrepancies against the carrier's roster",
                file_id=roster.name,
                counts=by_kind,
                extra={"open_errors": result.open_errors(), "reconciliation_id": run_id},
            ),
        )
    log = delivery_config.delivery_log(workspace)
    entry = log.append(
        "reconciliation",
        now=now,
        carrier=carrier,
        outcome="discrepancies" if found else "clean",
        actor=actor(schedule_id),
        alerts_sent=result.alerts_sent,
        **result.facts(),
    )
    log.checkpoint(now=now)
    result.log_seq = entry.seq
    return result


@dataclass(slots=True)
class FetchedRoster:
    remote_name: str
    archived: Path
    reconciliation: Reconciliation | None = None
    error: str | None = None


def fetch_rosters(
    workspace: Workspace,
    carrier: str,
    *,
    now: datetime,
    as_of: date | None = None,
    source: Path | None = None,
    schedule_id: str | None = None,
) -> list[FetchedRoster]:
    """New rosters from the carrier's outbound folder over the pinned SFTP connection: each is
    downloaded (temp name, rename), reconciled, and archived under state/rosters/CARRIER/."""
    from dataclasses import replace

    import transmit
    from edi import stores
    from edi.delivery_config import sftp_settings
    from edi.errors import ConfigError, DeliveryFailed, EdiError
    from edi.profiles import load_profile

    profile = load_profile(workspace, carrier)
    if profile.roster is None:
        raise ConfigError(
            "profile-no-roster",
            f"carriers/{carrier}.toml has no [roster] table (remote_dir, pattern)",
            hint="Add [roster] remote_dir and pattern to fetch rosters (see README: reconciling).",
        )
    config = profile.roster
    state = workspace.ensure_state()
    store = stores.discrepancies(workspace)
    folder = state / "rosters" / carrier
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder.parent, 0o700)
    os.chmod(folder, 0o700)
    settings = replace(sftp_settings(profile, workspace), remote_dir=config.remote_dir)
    downloaded: list[tuple[transmit.RemoteStat, Path]] = []
    try:
        destination = transmit.SftpDestination(settings)
        try:
            for remote in destination.list(config.pattern):
                if store.fetched(carrier, remote.name, remote.size):
                    continue
                stamp = now.strftime("%Y%m%dT%H%M%SZ")
                target = folder / f"{stamp}-{remote.name}"
                partial = folder / f".{remote.name}.part"
                destination.get(remote.name, partial)
                os.chmod(partial, 0o600)
                partial.replace(target)
                downloaded.append((remote, target))
                if config.delete_after_fetch:
                    destination.remove(remote.name)
        finally:
            destination.close()
    except transmit.TransmitError as error:
        raise DeliveryFailed(error.code, f"{carrier}: {error.message}", hint=error.hint) from error
    fetched: list[FetchedRoster] = []
    for remote, path in downloaded:
        item = FetchedRoster(remote.name, path)
        try:
            item.reconciliation = run_reconciliation(
                workspace,
                carrier,
                path,
                now=now,
                as_of=as_of,
                source=source,
                schedule_id=schedule_id,
            )
        except EdiError as error:
            # Logged and alerted once; the roster stays archived for `edi reconcile` by hand.
            from edi.pipeline import record_failure

            item.error = f"[{error.code}] {error.message}"
            record_failure(
                workspace,
                carrier,
                error,
                kind="reconciliation-failed",
                now=now,
                schedule_id=schedule_id,
            )
        store.record_fetch(
            carrier,
            remote.name,
            remote.size,
            transmit.sha256_file(path),
            now,
            item.reconciliation.run_id if item.reconciliation else None,
        )
        fetched.append(item)
    return fetched
