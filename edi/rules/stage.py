"""The rules stage of a run: each subscriber's records are mapped, their family judged, and
either sent on to the writer, held (quarantine), or the file stopped (fail).

Pure: records in, members out; what was held or found is kept in a `RulesReport` (ids and
codes only). `on_held` tells the caller which family was held, so the baseline keeps them as
the carrier last had them (a held member is never recorded as sent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from edi.errors import ValidationFailed
from edi.mapping import MappingContext, RecordProblem, map_subscriber
from edi.members import MappingReport, Member
from edi.plansource.export import SubscriberRecords
from edi.rules.checks import Family, RuleContext, check_family, unclaimed_finding
from edi.rules.findings import FIRST_IDS, Finding, WarningGroups

MAX_KEPT_ERRORS = 1000
MAX_LISTED_UNCLAIMED = 1000


@dataclass(slots=True)
class RulesReport:
    """What the business edits found: held families, errors (fail mode), grouped warnings."""

    held: dict[str, list[Finding]] = field(default_factory=dict)
    held_members: int = 0
    errors: list[Finding] = field(default_factory=list)
    error_count: int = 0
    warnings: WarningGroups = field(default_factory=WarningGroups)
    unclaimed: list[str] = field(default_factory=list)
    unclaimed_count: int = 0

    def held_list(self) -> list[dict[str, Any]]:
        return [
            {"subscriber_id": sid, "findings": [f.ids() for f in findings]}
            for sid, findings in self.held.items()
        ]

    def held_lines(self) -> list[str]:
        return [f.line() for findings in self.held.values() for f in findings if f.is_error]

    def error_summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for findings in self.held.values():
            for finding in findings:
                if finding.is_error:
                    counts[finding.code] = counts.get(finding.code, 0) + 1
        return counts


def note_unclaimed(
    rules: RulesReport, ctx: RuleContext, count: int, first: list[tuple[str, str]]
) -> bool:
    """Coverages nobody claims, counted and listed by id for the run; as warnings (the rule's
    default) they are grouped here. Returns whether they must be judged per family instead."""
    rules.unclaimed_count = count
    rules.unclaimed = [coverage_id for coverage_id, _ in first[:MAX_LISTED_UNCLAIMED]]
    setting = ctx.profile.rules.unclaimed_lookup_code
    if not count or not setting.enabled:
        return False
    if (setting.severity or "warning") == "error":
        return True
    for coverage_id, sid in first[:FIRST_IDS]:
        finding = unclaimed_finding(ctx, sid, coverage_id)
        if finding is not None:
            rules.warnings.add(finding)
    rules.warnings.counts["unclaimed-lookup-code"] = count
    return False


def problem_finding(problem: RecordProblem, subscriber_id: str) -> Finding:
    return Finding(
        code=problem.code,
        severity="error",
        subscriber_id=subscriber_id,
        dependent_id=problem.dependent_id,
        coverage_id=problem.coverage_id,
        ref=problem.ref,
        message=str(problem).split(": ", 1)[-1],
        hint=problem.hint,
    )


def screen(
    ctx: MappingContext,
    groups: Iterable[SubscriberRecords],
    report: MappingReport,
    rules: RulesReport,
    *,
    unclaimed_of: Callable[[str], list[str]] | None = None,
    on_held: Callable[[SubscriberRecords], None] | None = None,
) -> Iterator[Member]:
    """Members in source order, each family judged by the profile's rules first.

    `unclaimed_of` gives a subscriber's coverages no profile claims, when that rule is an error
    for the family (as a warning it is reported once for the run: `note_unclaimed`). Fail mode
    (the default): any error finding stops the file once every family has been judged, all
    findings listed. Quarantine: a family with an error finding is held, everyone else sent."""
    rule_ctx = RuleContext(ctx.profile, ctx.as_of)
    quarantine = ctx.profile.members.on_bad_record == "quarantine"
    failed = False
    for records in groups:
        sid = records.subscriber.id
        findings: list[Finding] = []
        members: list[Member] = []
        try:
            members = map_subscriber(ctx, records, report)
        except RecordProblem as problem:
            findings.append(problem_finding(problem, sid))
        else:
            if members:
                family, found = check_family(Family(sid, tuple(members)), rule_ctx)
                members = list(family.members)
                findings.extend(found)
        if unclaimed_of is not None and members:
            for coverage_id in unclaimed_of(sid):
                finding = unclaimed_finding(rule_ctx, sid, coverage_id)
                if finding is not None:
                    findings.append(finding)
        errors = [f for f in findings if f.is_error]
        for finding in findings:
            if not finding.is_error:
                rules.warnings.add(finding)
        if errors:
            if quarantine:
                rules.held[sid] = findings
                rules.held_members += max(1, len(members))
                report.skipped["held-member"] += max(1, len(members))
                if on_held is not None:
                    on_held(records)
                continue
            failed = True
            rules.error_count += len(errors)
            room = MAX_KEPT_ERRORS - len(rules.errors)
            rules.errors.extend(errors[: max(0, room)])
            continue
        if failed:
            continue
        for member in members:
            report.count(member)
            yield member
    if failed:
        shown = rules.errors[:50]
        raise ValidationFailed(
            "business-edits-failed",
            f"{rules.error_count} error finding(s) for carrier {ctx.profile.name!r}; "
            "nothing was written",
            hint="Fix the records in PlanSource or the profile's [rules], or set "
            '[members] on_bad_record = "quarantine" to hold only the families concerned.',
            record_ids=[f.where() for f in shown],
            details=[f.line() for f in shown],
        )
