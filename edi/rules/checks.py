"""The business edits, one function per rule: a family's member loops in, findings out.

A family is one subscriber's member loops as the 834 carries them (the subscriber's first), so
the same rules judge a family mapped from PlanSource and one read back from any 834. Each rule
yields findings at its default severity; the engine applies the profile's `[rules]` settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date

from edi.members import CoverageLine, Member
from edi.profiles import CarrierProfile, Plan
from edi.rules.findings import Finding, Severity
from edi.x12.writer import to_x12_text

# INS02: spouse and life partner; the children an age limit applies to.
SPOUSES = frozenset({"01", "53"})
CHILDREN = frozenset({"05", "09", "10", "15", "17", "19", "24"})
ACTIVE = ("active", "future")


def _tier_fits(code: str, spouses: int, others: int) -> bool | None:
    """Whether HD05 `code` describes a line with these enrolled dependents (None: unknown)."""
    total = spouses + others
    fits = {
        "EMP": total == 0,
        "IND": total == 0,
        "ESP": spouses == 1 and others == 0,
        "ECH": spouses == 0 and others >= 1,
        "FAM": spouses >= 1 and others >= 1,
        "SPC": spouses >= 1 and others >= 1,
        "SPO": spouses == 1 and others == 0,
        "CHD": spouses == 0 and others >= 1,
        "DEP": total >= 1,
        "TWO": total == 1,
        "E1D": total == 1,
        "E2D": total == 2,
        "E3D": total == 3,
        "E5D": total >= 1,
        "E6D": total >= 2,
        "E7D": total >= 3,
        "E8D": total >= 4,
        "E9D": total >= 5,
    }
    return fits.get(code)


def derived_tier(plan: Plan | None, spouses: int, others: int) -> str:
    covers = plan.covers if plan is not None else "family"
    if covers == "spouse":
        return "SPO"
    if covers == "child":
        return "CHD"
    if spouses and others:
        return "FAM"
    if spouses:
        return "ESP"
    return "ECH" if others else "EMP"


@dataclass(frozen=True, slots=True)
class Family:
    subscriber_id: str
    members: tuple[Member, ...]


@dataclass(frozen=True, slots=True)
class RuleContext:
    profile: CarrierProfile
    as_of: date

    def plan(self, line: CoverageLine) -> Plan | None:
        return self.profile.plan_for(line.lookup_code)


def _finding(
    code: str,
    member: Member,
    ref: str,
    message: str,
    hint: str,
    *,
    coverage_id: str | None = None,
    severity: Severity = "error",
) -> Finding:
    return Finding(
        code=code,
        severity=severity,
        subscriber_id=member.subscriber_id,
        dependent_id=member.dependent_id,
        coverage_id=coverage_id,
        ref=ref,
        message=message,
        hint=hint,
    )


def _plan_covers(plan: Plan | None, dependent: Member) -> bool:
    """Whether the plan covers this dependent at all (plan-does-not-cover reports the rest)."""
    covers = plan.covers if plan is not None else "family"
    spouse = dependent.relationship in SPOUSES
    return {
        "family": True,
        "employee": False,
        "spouse": spouse,
        "child": not spouse,
        "employee_and_children": not spouse,
    }[covers]


def _enrolled(family: Family, ctx: RuleContext) -> dict[str, tuple[CoverageLine, list[Member]]]:
    """Each active coverage of the family: its line (the subscriber's copy when there is one)
    and the dependents whose loops carry it, still active. A line with a dependent its plan
    does not cover, or a spouse or child plan with nobody on it, is plan-does-not-cover's: its
    tier means nothing until that is fixed."""
    lines: dict[str, tuple[CoverageLine, list[Member]]] = {}
    wrong: set[str] = set()
    for member in family.members:
        for line in member.coverages:
            if line.status not in ACTIVE:
                continue
            entry = lines.setdefault(line.coverage_id, (line, []))
            if member.is_subscriber:
                continue
            entry[1].append(member)
            if not _plan_covers(ctx.plan(line), member):
                wrong.add(line.coverage_id)
    return {
        coverage_id: (line, dependents)
        for coverage_id, (line, dependents) in lines.items()
        if coverage_id not in wrong
        and (dependents or (plan := ctx.plan(line)) is None or plan.covers_employee)
    }


def tier_vs_dependents(family: Family, ctx: RuleContext) -> Iterator[Finding]:
    """HD05 must agree with the dependents enrolled on the line."""
    for coverage_id, (line, dependents) in _enrolled(family, ctx).items():
        if not line.level:
            continue
        spouses = sum(1 for d in dependents if d.relationship in SPOUSES)
        others = len(dependents) - spouses
        if _tier_fits(line.level, spouses, others) is False:
            owner = family.members[0]
            yield _finding(
                "tier-vs-dependents",
                owner,
                "2300/HD05",
                f"HD05 {line.level} does not match the line's enrolled dependents "
                f"({spouses} spouse/partner, {others} other)",
                "Fix the coverage level or the dependents on the coverage in PlanSource, or set "
                '[rules.tier-vs-dependents] tier_from = "dependents".',
                coverage_id=coverage_id,
            )


def derive_tiers(family: Family, ctx: RuleContext) -> tuple[Family, list[Finding]]:
    """`tier_from = "dependents"`: HD05 from the enrolled dependents; a disagreement warns."""
    changed: dict[str, str] = {}
    findings: list[Finding] = []
    for coverage_id, (line, dependents) in _enrolled(family, ctx).items():
        if not line.level:
            continue
        spouses = sum(1 for d in dependents if d.relationship in SPOUSES)
        others = len(dependents) - spouses
        if _tier_fits(line.level, spouses, others) is not False:
            continue
        derived = derived_tier(ctx.plan(line), spouses, others)
        changed[coverage_id] = derived
        findings.append(
            _finding(
                "tier-vs-dependents",
                family.members[0],
                "2300/HD05",
                f"HD05 {line.level} does not match the line's enrolled dependents; "
                f"sent as {derived}, derived from them",
                "Fix the coverage level in PlanSource so that both agree.",
                coverage_id=coverage_id,
                severity="warning",
            )
        )
    if not changed:
        return family, findings
    members = tuple(
        replace(
            member,
            coverages=tuple(
                replace(line, level=changed[line.coverage_id])
                if line.coverage_id in changed and line.level
                else line
                for line in member.coverages
            ),
        )
        for member in family.members
    )
    return Family(family.subscriber_id, members), findings


def plan_does_not_cover(family: Family, ctx: RuleContext) -> Iterator[Finding]:
    """A plan covers the employee, a spouse, children, or a family; nobody else."""
    hint = "Fix the dependents on the coverage in PlanSource, or the plan's `covers` (profile)."
    carried: set[str] = set()
    for member in family.members[1:]:
        carried.update(line.coverage_id for line in member.coverages)
    for member in family.members:
        for line in member.coverages:
            plan = ctx.plan(line)
            if plan is None or plan.covers == "family":
                continue
            covers = plan.covers.replace("_", " ")
            if member.is_subscriber:
                if not plan.covers_employee:
                    nobody = line.coverage_id not in carried
                    yield _finding(
                        "plan-does-not-cover",
                        member,
                        "2300/HD03",
                        f"the plan covers {covers} only"
                        + (
                            ", and no such dependent is enrolled on the coverage"
                            if nobody
                            else "; its line belongs on the dependent's loop"
                        ),
                        hint,
                        coverage_id=line.coverage_id,
                    )
                continue
            spouse = member.relationship in SPOUSES
            if not _plan_covers(plan, member):
                yield _finding(
                    "plan-does-not-cover",
                    member,
                    "2000/INS02",
                    f"a {'spouse or partner' if spouse else 'child or other dependent'} is "
                    f"enrolled on a plan that covers {covers} only",
                    hint,
                    coverage_id=line.coverage_id,
                )


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def overage_dependent(family: Family, ctx: RuleContext) -> Iterator[Finding]:
    """A child older than max_child_age, still covered, neither disabled nor a student."""
    limit = ctx.profile.rules.overage_dependent.max_child_age
    for member in family.members[1:]:
        if member.relationship not in CHILDREN or member.person.birthdate is None:
            continue
        if member.student or member.handicapped:
            continue
        if not any(line.status in ACTIVE for line in member.coverages):
            continue
        if _age(member.person.birthdate, ctx.as_of) > limit:
            yield _finding(
                "overage-dependent",
                member,
                "2100A/DMG02",
                f"a child older than {limit} on {ctx.as_of.isoformat()} is still covered",
                "End the dependent's coverage in PlanSource, or mark the dependent disabled or "
                "student (sent as INS10 Y / INS09 F).",
            )


def _key(line: CoverageLine) -> str:
    return line.lookup_code.strip().casefold()


def overlapping_coverage(family: Family, ctx: RuleContext) -> Iterator[Finding]:
    """Two lines of the same benefit for one member that overlap in time."""
    seen: set[tuple[str, str]] = set()
    for member in family.members:
        dated = [line for line in member.coverages if line.begin is not None]
        for i, first in enumerate(dated):
            for second in dated[i + 1 :]:
                if _key(first) != _key(second) or first.coverage_id == second.coverage_id:
                    continue
                pair = tuple(sorted((first.coverage_id, second.coverage_id)))
                if pair in seen:
                    continue
                assert first.begin is not None and second.begin is not None
                first_end = first.end or date.max
                second_end = second.end or date.max
                if first.begin <= second_end and second.begin <= first_end:
                    seen.add((pair[0], pair[1]))
                    yield _finding(
                        "overlapping-coverage",
                        member,
                        "2300/DTP03",
                        f"coverage id={pair[0]} and coverage id={pair[1]} are the same benefit "
                        "and overlap in time",
                        "End one of the two coverages in PlanSource before the other begins.",
                        coverage_id=pair[0],
                    )


def termination_before_effective(family: Family, ctx: RuleContext) -> Iterator[Finding]:
    """A line that ends before it begins, however old."""
    seen: set[tuple[str, date]] = set()
    for member in family.members:
        for line in member.coverages:
            if line.begin is None or line.end is None or line.end >= line.begin:
                continue
            if (line.coverage_id, line.end) in seen:
                continue
            seen.add((line.coverage_id, line.end))
            yield _finding(
                "termination-before-effective",
                member,
                "2300/DTP*349",
                "the coverage's termination date is before its effective date",
                "Fix the coverage's dates in PlanSource (or the dependent's termination date).",
                coverage_id=line.coverage_id,
            )


def missing_birth_date(family: Family, ctx: RuleContext) -> Iterator[Finding]:
    for member in family.members:
        if member.person.birthdate is None:
            yield _finding(
                "missing-birth-date",
                member,
                "2100A/DMG02",
                "the member has no birth date (no DMG segment)",
                "Enter the birth date in PlanSource.",
            )


def dependent_unidentified(family: Family, ctx: RuleContext) -> Iterator[Finding]:
    for member in family.members[1:]:
        if member.person.ssn is None and member.person.birthdate is None:
            yield _finding(
                "dependent-unidentified",
                member,
                "2100A/NM109",
                "the dependent has neither an SSN nor a birth date",
                "Enter the dependent's SSN or birth date in PlanSource.",
            )


def name_not_representable(family: Family, ctx: RuleContext) -> Iterator[Finding]:
    delimiters = ctx.profile.delimiters
    for member in family.members:
        if not to_x12_text(member.person.last_name, delimiters):
            yield _finding(
                "name-not-representable",
                member,
                "2100A/NM103",
                "the last name has no character X12 can carry",
                "Enter the name in Latin script in PlanSource (a legal or alternate name).",
            )


Rule = Callable[[Family, RuleContext], Iterator[Finding]]

# Rule code → check. `unclaimed-lookup-code` is judged on the source, not on member loops.
RULES: dict[str, Rule] = {
    "tier-vs-dependents": tier_vs_dependents,
    "plan-does-not-cover": plan_does_not_cover,
    "overage-dependent": overage_dependent,
    "overlapping-coverage": overlapping_coverage,
    "termination-before-effective": termination_before_effective,
    "missing-birth-date": missing_birth_date,
    "dependent-unidentified": dependent_unidentified,
    "name-not-representable": name_not_representable,
}
DEFAULT_SEVERITY: dict[str, Severity] = dict.fromkeys(RULES, "error")
DEFAULT_SEVERITY["unclaimed-lookup-code"] = "warning"


def check_family(family: Family, ctx: RuleContext) -> tuple[Family, list[Finding]]:
    """Every enabled rule on one family, at the profile's severities. With
    `tier_from = "dependents"` the returned family carries the derived HD05s."""
    rules = ctx.profile.rules
    findings: list[Finding] = []
    for code, rule in RULES.items():
        setting = rules.setting(code)
        if not setting.enabled:
            continue
        if code == "tier-vs-dependents" and rules.tier_vs_dependents.tier_from == "dependents":
            family, derived = derive_tiers(family, ctx)
            found: Sequence[Finding] = derived
        else:
            found = list(rule(family, ctx))
        if setting.severity is not None:
            found = [replace(f, severity=setting.severity) for f in found]
        findings.extend(found)
    return family, findings


def unclaimed_finding(ctx: RuleContext, subscriber_id: str, coverage_id: str) -> Finding | None:
    setting = ctx.profile.rules.unclaimed_lookup_code
    if not setting.enabled:
        return None
    return Finding(
        code="unclaimed-lookup-code",
        severity=setting.severity or "warning",
        subscriber_id=subscriber_id,
        coverage_id=coverage_id,
        ref="2300/HD04",
        message="no carrier profile claims the coverage's benefit_lookup_code",
        hint="Add the lookup code to a profile's `claims` and [plans], or fix it in PlanSource.",
    )
