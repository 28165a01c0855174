"""Change detection: the members as mapped now against the baseline the carrier last received.

Pure: members in, members out. Per member: addition (INS03 021, HD 021), change (001, with only
the changed lines: HD 021 new, 024 ended, 001 altered), termination (024), reinstatement (025,
within the profile's window), unchanged (left out of a change file), and disappearance: in the
baseline with coverage, absent from the source with no termination data. A disappearance
becomes an explicit termination, and past the profile's limits the whole run stops.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from edi.errors import ConfigError, GuardTripped
from edi.members import CoverageLine, Member
from edi.profiles import CarrierProfile
from edi.workspace import StrictModel, format_validation_error

ChangeKind = Literal["addition", "change", "termination", "reinstatement", "disappearance"]
ACTIVE = ("active", "future")


class ChangesConfig(StrictModel):
    """A profile's `[changes]` table."""

    file_type: Literal["changes", "full"] = "full"
    audit_every: Literal["never", "weekly", "monthly", "quarterly"] = "never"
    send_empty: bool = False
    carrier_replaces: bool = False
    max_terminations_pct: float = Field(20.0, ge=0, le=100)
    max_disappearances: int = Field(10, ge=0)
    reinstatement_window_days: int = Field(90, ge=0)
    disappearance_reason: str = "AI"
    # A disappeared member's coverage ends the day before the run's as-of date.
    disappearance_end: Literal["day_before_as_of", "as_of"] = "day_before_as_of"


def changes_config(profile: CarrierProfile, profile_file: Path) -> ChangesConfig:
    try:
        return ChangesConfig.model_validate(profile.changes or {})
    except ValidationError as exc:
        lines = [
            line.replace(f"{profile_file}: ", f"{profile_file}: changes.", 1)
            for line in format_validation_error(profile_file, exc)
        ]
        raise ConfigError("profile-invalid-changes", lines[0], details=lines) from None


def is_active(line: CoverageLine) -> bool:
    return line.status in ACTIVE


@dataclass(frozen=True, slots=True)
class MemberChange:
    kind: ChangeKind
    member: Member
    changed_lines: int
    demographics_changed: bool = False
    # Which fields and lines changed, by name (`person.address_1`, `line ACCIDENT-1: level`):
    # never the values, so previews and logs stay free of PHI.
    changed_fields: tuple[str, ...] = ()


@dataclass(slots=True)
class ChangeSet:
    """What a change file will say, with counts and PlanSource ids for the preview."""

    changes: list[MemberChange] = field(default_factory=list)
    unchanged: int = 0
    baseline_active: int = 0
    has_baseline: bool = False

    @property
    def counts(self) -> Counter[str]:
        return Counter(change.kind for change in self.changes)

    @property
    def terminations(self) -> int:
        return sum(
            1 for c in self.changes if c.member.maintenance == "024" and c.member.is_subscriber
        )

    @property
    def disappearances(self) -> list[MemberChange]:
        return [c for c in self.changes if c.kind == "disappearance"]

    def members(self) -> list[Member]:
        return [change.member for change in self.changes]

    def summary(self) -> dict[str, object]:
        counts = self.counts
        return {
            "has_baseline": self.has_baseline,
            "additions": counts["addition"],
            "changes": counts["change"],
            "terminations": counts["termination"],
            "reinstatements": counts["reinstatement"],
            "disappearances": counts["disappearance"],
            "unchanged": self.unchanged,
            "baseline_active_subscribers": self.baseline_active,
            "members": [
                {
                    "kind": c.kind,
                    "member": c.member.ref,
                    "ins03": c.member.maintenance,
                    "lines": c.changed_lines,
                    "demographics_changed": c.demographics_changed,
                    "changed": list(c.changed_fields),
                }
                for c in self.changes
            ],
        }


def _line_differs(now: CoverageLine, then: CoverageLine) -> bool:
    return (
        now.plan_code,
        now.insurance_line,
        now.level,
        now.begin,
        now.changed,
        now.premium,
        now.refs,
    ) != (
        then.plan_code,
        then.insurance_line,
        then.level,
        then.begin,
        then.changed,
        then.premium,
        then.refs,
    )


_DEMOGRAPHIC_FIELDS = ("member_id", "relationship", "employment_status", "group_number")
_LINE_FIELDS = {
    "plan_code": "plan",
    "insurance_line": "insurance line",
    "level": "level",
    "begin": "begin",
    "premium": "premium",
    "refs": "refs",
}


def changed_fields(now: Member, then: Member | None, lines: list[CoverageLine]) -> tuple[str, ...]:
    """Names of what differs between the baseline member and now, and what each sent line
    does (`line CANCER-1: ended`)."""
    from dataclasses import fields

    if then is None:
        return ()
    names = [
        f"person.{f.name}"
        for f in fields(now.person)
        if getattr(now.person, f.name) != getattr(then.person, f.name)
    ]
    names += [name for name in _DEMOGRAPHIC_FIELDS if getattr(now, name) != getattr(then, name)]
    before = {line.coverage_id: line for line in then.coverages}
    for line in lines:
        old = before.get(line.coverage_id)
        label = f"line {line.plan_code}"
        if line.maintenance == "024":
            names.append(f"{label}: ended")
        elif line.maintenance in ("021", "025") and (old is None or not is_active(old)):
            names.append(f"{label}: {'reinstated' if line.maintenance == '025' else 'added'}")
        elif old is not None:
            differ = [
                n for attr, n in _LINE_FIELDS.items() if getattr(line, attr) != getattr(old, attr)
            ]
            names.append(f"{label}: {', '.join(differ) or 'changed'}")
    return tuple(names)


def _demographics(member: Member) -> tuple[object, ...]:
    return (
        member.person,
        member.member_id,
        member.relationship,
        member.employment_status,
        member.group_number,
    )


@dataclass(frozen=True, slots=True)
class DiffContext:
    profile: CarrierProfile
    config: ChangesConfig
    as_of: date

    @property
    def disappearance_end(self) -> date:
        return self.as_of - (
            timedelta(days=1)
            if self.config.disappearance_end == "day_before_as_of"
            else timedelta()
        )


def _changed_lines(ctx: DiffContext, now: Member, then: Member) -> tuple[list[CoverageLine], bool]:
    """The lines to send and whether any is a reinstatement."""
    before = {line.coverage_id: line for line in then.coverages}
    out: list[CoverageLine] = []
    reinstated = False
    window = timedelta(days=ctx.config.reinstatement_window_days)
    for line in now.coverages:
        old = before.pop(line.coverage_id, None)
        if is_active(line):
            if old is None:
                out.append(replace(line, maintenance="021"))
            elif not is_active(old):
                recent = old.end is not None and ctx.as_of - old.end <= window
                reinstated |= recent
                out.append(replace(line, maintenance="025" if recent else "021"))
            elif _line_differs(line, old):
                out.append(replace(line, maintenance="001"))
        elif old is not None and is_active(old):
            out.append(line)
    # A member PlanSource ended without listing their lines (a dependent no coverage lists any
    # more) ends them on PlanSource's date and reason; others on the disappearance defaults.
    own_end = dict(now.dates).get("357") if now.maintenance == "024" else None
    for vanished in before.values():
        if is_active(vanished):
            out.append(
                replace(
                    vanished,
                    status="terminated",
                    maintenance="024",
                    end=own_end or ctx.disappearance_end,
                    reason=(now.reason if own_end else None) or ctx.config.disappearance_reason,
                )
            )
    return out, reinstated


def _with_dates(
    member: Member, maintenance: str, lines: list[CoverageLine]
) -> tuple[tuple[str, date], ...]:
    kept = [(q, d) for q, d in member.dates if q != "357"]
    if maintenance == "024":
        ends = [line.end for line in lines if line.end]
        if ends:
            kept.append(("357", max(ends)))
    return tuple(kept)


def diff_member(ctx: DiffContext, now: Member, then: Member | None) -> MemberChange | None:
    if then is None:
        lines = [replace(line, maintenance="021") for line in now.coverages if is_active(line)]
        if not lines:
            return None  # the carrier never had it and it has ended: nothing to tell
        member = replace(
            now,
            maintenance="021",
            reason=None,
            coverages=tuple(lines),
            dates=_with_dates(now, "021", lines),
        )
        return MemberChange("addition", member, len(lines))
    lines, reinstated = _changed_lines(ctx, now, then)
    demographics_changed = _demographics(now) != _demographics(then)
    if not lines and not demographics_changed:
        return None
    still_active = any(is_active(line) for line in now.coverages)
    if not still_active and any(is_active(line) for line in then.coverages):
        kind, maintenance = "termination", "024"
        reason = now.reason or next((line.reason for line in lines if line.reason), None)
    elif reinstated and not any(is_active(line) for line in then.coverages):
        kind, maintenance, reason = "reinstatement", "025", "41"
    else:
        kind, maintenance = "change", "001"
        ended = [line.reason for line in lines if line.maintenance == "024" and line.reason]
        reason = ended[0] if ended else ("25" if demographics_changed else "AI")
    member = replace(
        now,
        maintenance=maintenance,
        reason=reason,
        coverages=tuple(lines),
        dates=_with_dates(now, maintenance, lines),
    )
    return MemberChange(
        kind,  # type: ignore[arg-type]
        member,
        len(lines),
        demographics_changed,
        changed_fields(now, then, lines),
    )


def disappeared(ctx: DiffContext, then: Member) -> MemberChange | None:
    """A member with coverage in the baseline and no trace in the source: an explicit end."""
    active = [line for line in then.coverages if is_active(line)]
    if not active:
        return None
    lines = [
        replace(
            line,
            status="terminated",
            maintenance="024",
            end=ctx.disappearance_end,
            reason=ctx.config.disappearance_reason,
        )
        for line in active
    ]
    member = replace(
        then,
        maintenance="024",
        reason=ctx.config.disappearance_reason,
        coverages=tuple(lines),
        dates=_with_dates(then, "024", lines),
    )
    return MemberChange("disappearance", member, len(lines))


def known_to_carrier(member: Member, then: Member | None) -> Member | None:
    """A full file against a baseline: a waived decline's end of an election the carrier never
    received (no line of that coverage in the baseline) is not sent (issue 18); a member left
    with nothing to say is left out."""
    had = {line.coverage_id for line in then.coverages} if then else set()
    lines = [
        line
        for line in member.coverages
        if line.status != "election-ended" or line.coverage_id in had
    ]
    if len(lines) == len(member.coverages):
        return member
    if not lines:
        return None
    maintenance, reason = member.maintenance, member.reason
    if maintenance == "001" and all(line.status in ACTIVE for line in lines):
        maintenance, reason = "021", None  # only the unknown ending made it a change
    return replace(member, maintenance=maintenance, reason=reason, coverages=tuple(lines))


class StreamingDiff:
    """One pass over the current members with keyed baseline lookups (no all-pairs work);
    changed members are yielded as they are found, disappearances at the end.
    `baseline_others` yields the baseline's members that `baseline_get` was never asked for."""

    def __init__(
        self,
        ctx: DiffContext,
        baseline_get: Callable[[str], Member | None],
        baseline_others: Callable[[], Iterator[Member]],
        baseline_active: int,
        has_baseline: bool,
    ) -> None:
        self.ctx = ctx
        self.get = baseline_get
        self.others = baseline_others
        self.result = ChangeSet(baseline_active=baseline_active, has_baseline=has_baseline)

    def members(self, current: Iterable[Member], *, full: bool = False) -> Iterator[Member]:
        """Changed members (a change file), or with `full` every member as mapped (a full
        file); either way ending with explicit terminations for the disappeared."""
        for member in current:
            then = self.get(member.key)
            change = diff_member(self.ctx, member, then)
            if change is None:
                self.result.unchanged += 1
            else:
                self.result.changes.append(change)
            if full:
                known = known_to_carrier(member, then)
                if known is not None:
                    yield known
            elif change is not None:
                yield change.member
        for then in self.others():  # the baseline's members no lookup above asked for
            gone = disappeared(self.ctx, then)
            if gone is not None:
                self.result.changes.append(gone)
                yield gone.member


def check_guard(ctx: DiffContext, changes: ChangeSet, *, allow: bool, reason: str | None) -> None:
    """Past the profile's limits nothing is written unless a person says why (and it is logged)."""
    disappearances = changes.disappearances
    percent = 100.0 * changes.terminations / max(1, changes.baseline_active)
    limits = ctx.config
    tripped = len(disappearances) > limits.max_disappearances or (
        changes.has_baseline and percent > limits.max_terminations_pct
    )
    if not tripped:
        return
    if allow and reason:
        return
    raise GuardTripped(
        "mass-termination-guard",
        f"{ctx.profile.name}: {changes.terminations} termination(s) ({percent:.1f}% of "
        f"{changes.baseline_active} covered subscribers; limit {limits.max_terminations_pct}%) and "
        f"{len(disappearances)} disappearance(s) (limit {limits.max_disappearances}); "
        "nothing was written",
        hint="Check the source data; if it is right, rerun with "
        "--allow-mass-termination --reason '...'.",
        record_ids=[c.member.ref for c in disappearances[:50]],
        details=[f"disappeared: {c.member.ref}" for c in disappearances[:50]],
    )
