"""PlanSource records + carrier profile + as-of date → the members of a full 834.

Pure: takes typed records, returns typed members. The rules are 834.md's:
- a coverage the profile claims becomes a coverage line (HD) on the subscriber's loop and on the
  loop of every dependent it lists; its premium (AMT*P3) only on the subscriber's loop;
- DTP*348 is the coverage's original effective date; a mid-year change is DTP*303;
- `termination_date` becomes DTP*349, the last covered day, per the profile's convention;
- a waived decline is never an active HD: it ends an earlier election of that benefit, or is
  omitted (or sent as a decline record, which ends nothing, when the profile asks);
- a member whose lines all ended is terminated (INS03 024 + DTP*357, and DTP*337 for an
  employment termination); a member with some lines ended is changed (001); else added (021);
- a dependent PlanSource ended (divorce, death, overage) who no coverage lists any more is
  still terminated explicitly while the subscriber is covered at the carrier;
- a deceased member carries INS11/INS12, a retiree INS08 RT and DTP*286.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta

from edi.errors import SourceDataError
from edi.findings import Finding
from edi.members import CoverageLine, FileType, MappingReport, Member, Person
from edi.plansource.export import SubscriberRecords
from edi.plansource.models import Coverage, Dependent, Subscriber, normalize_code, real_ssn
from edi.profiles import CarrierProfile, lookup_key

ONE_DAY = timedelta(days=1)
GENDERS = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F"}
DEATH, RETIREMENT, RETIRED = "03", "04", "RT"  # INS04 death / retirement, INS08 retired


class RecordProblem(Exception):
    """One record cannot be mapped; the message names it by PlanSource id. The code, ids and
    X12 reference let the rules stage report it as an error finding of its family."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "unmappable-record",
        ref: str = "",
        dependent_id: str | None = None,
        coverage_id: str | None = None,
        hint: str = "Fix the record in PlanSource or the carrier profile.",
    ) -> None:
        super().__init__(message)
        self.code = code
        self.ref = ref
        self.dependent_id = dependent_id
        self.coverage_id = coverage_id
        self.hint = hint


@dataclass(frozen=True, slots=True)
class MappingContext:
    profile: CarrierProfile
    as_of: date
    file_type: FileType = "full"
    first_file: bool = False  # no baseline yet: the carrier has never had a file from us

    @property
    def history_horizon(self) -> date:
        members = self.profile.members
        days = members.termination_lookback_days
        if self.first_file:
            days = members.initial_lookback_days
        return self.as_of - timedelta(days=days)


def last_covered_day(profile: CarrierProfile, termination_date: date) -> date:
    if profile.members.termination_date_is == "first_uncovered_day":
        return termination_date - ONE_DAY
    return termination_date


def _person(record: Subscriber | Dependent, address_from: Subscriber) -> Person:
    return Person(
        last_name=record.last_name,
        first_name=record.first_name,
        middle_name=record.middle_name,
        ssn=real_ssn(record.ssn),
        birthdate=record.birthdate,
        gender=GENDERS.get(record.gender.strip().upper(), "U"),
        address_1=address_from.address_1,
        address_2=address_from.address_2,
        city=address_from.city,
        state=address_from.state,
        zip_code=address_from.zip_code,
        phone=address_from.home_phone or address_from.work_phone,
        email=address_from.email,
    )


def member_identifier(profile: CarrierProfile, subscriber: Subscriber) -> str:
    choice = profile.members.identifier
    value = {
        "subscriber_code": subscriber.subscriber_code,
        "ssn": real_ssn(subscriber.ssn) or "",
        "plansource_id": subscriber.id,
    }[choice]
    if not value:
        raise RecordProblem(
            f"subscriber id={subscriber.id}: the profile identifies members by {choice}, "
            "which this subscriber lacks",
            code="missing-member-identifier",
            ref="2000/REF02",
        )
    return value


def benefit_begin(profile: CarrierProfile, coverage: Coverage) -> date | None:
    """DTP*348: the original effective date (a later change is DTP*303), unless the profile
    asks for the change date."""
    if profile.members.benefit_begin == "change_effective_date":
        return coverage.effective_date
    return coverage.original_effective_date or coverage.change_effective_date


def _line(
    ctx: MappingContext, coverage: Coverage, status: str, end: date | None, reason: str | None
) -> CoverageLine:
    profile = ctx.profile
    plan = profile.plan_for(coverage.benefit_lookup_code)
    if plan is None:
        raise RecordProblem(
            f"coverage id={coverage.id}: benefit_lookup_code {coverage.benefit_lookup_code!r} "
            f"is claimed by profile {profile.name!r} but has no [plans] entry",
            code="no-plan-mapping",
            ref="2300/HD04",
            coverage_id=coverage.id,
            hint="Add the lookup code to the profile's [plans] table.",
        )
    level = None
    if coverage.coverage_level and not coverage.is_waiver:
        level = profile.coverage_level_code(plan, coverage.coverage_level)
        if level is None:
            raise RecordProblem(
                f"coverage id={coverage.id}: coverage_level {coverage.coverage_level!r} has no "
                f"HD05 mapping in profile {profile.name!r} ([coverage_levels])",
                code="no-coverage-level-mapping",
                ref="2300/HD05",
                coverage_id=coverage.id,
                hint="Add the coverage level to the profile's [coverage_levels] table.",
            )
    elif plan.coverage_level:
        level = plan.coverage_level
    premium = None
    if profile.wants_premium(plan) and coverage.subscriber_premium is not None:
        premium = coverage.subscriber_premium + (coverage.org_premium or 0)
    maintenance = "024" if status in ("terminated", "election-ended") else "021"
    if status == "declined":
        maintenance = "001"
    if ctx.file_type == "audit" and maintenance in ("021", "001"):
        maintenance = "030"
    begin, changed = benefit_begin(profile, coverage), None
    if coverage.change_effective_date and begin and coverage.change_effective_date > begin:
        changed = coverage.change_effective_date
    return CoverageLine(
        coverage_id=coverage.id,
        lookup_code=coverage.benefit_lookup_code,
        status=status,  # type: ignore[arg-type]
        maintenance=maintenance,
        insurance_line=plan.insurance_line,
        plan_code=plan.plan_code,
        level=level,
        begin=begin,
        end=end,
        premium=premium,
        refs=tuple((ref.qualifier, ref.value) for ref in plan.refs),
        reason=reason,
        volume=coverage.volume if plan.volume and coverage.volume else None,
        changed=changed,
    )


def _waiver_lines(
    ctx: MappingContext, waiver: Coverage, elections: list[Coverage], report: MappingReport
) -> list[CoverageLine]:
    """A decline ends the election it replaces, or is omitted, or is a decline record."""
    declines = ctx.profile.declines
    decline_date = waiver.termination_date or waiver.effective_date
    if decline_date is None:
        raise RecordProblem(
            f"coverage id={waiver.id}: a decline without any date",
            code="decline-without-date",
            ref="2300/DTP03",
            coverage_id=waiver.id,
        )
    earlier = [e for e in elections if e.effective_date is None or e.effective_date <= decline_date]
    if earlier:
        report.elections_ended += len(earlier)
        lines = []
        for election in earlier:
            end = max(decline_date - ONE_DAY, election.effective_date or decline_date - ONE_DAY)
            lines.append(_line(ctx, election, "election-ended", end, declines.end_reason))
        return lines
    if declines.send == "decline_record":
        report.declines_sent += 1
        record = _line(ctx, waiver, "declined", None, declines.decline_reason)
        # A decline was never coverage and ends nothing: no benefit dates, no tier, no premium,
        # only the date the decline took effect (DTP*303), so the carrier stops expecting an
        # election.
        return [replace(record, begin=None, level=None, premium=None, changed=decline_date)]
    report.declines_skipped += 1
    report.skipped["decline-omitted"] += 1
    return []


def _election_lines(
    ctx: MappingContext, coverage: Coverage, report: MappingReport
) -> list[CoverageLine]:
    if coverage.effective_date is None:
        raise RecordProblem(
            f"coverage id={coverage.id}: neither change_effective_date nor "
            "original_effective_date is set",
            code="coverage-without-effective-date",
            ref="2300/DTP03",
            coverage_id=coverage.id,
        )
    if coverage.termination_date is not None:
        end = last_covered_day(ctx.profile, coverage.termination_date)
        # A termination before the effective date is kept however old, for the rules stage to
        # report: it must never vanish with the history.
        if end < ctx.history_horizon and end >= coverage.effective_date:
            report.history_skipped += 1
            report.skipped["coverage-ended-before-lookback"] += 1
            return []
        reason = ctx.profile.termination_reasons.code_for(coverage.termination_reason)
        return [_line(ctx, coverage, "terminated", end, reason)]
    # Future by its benefit begin: a coverage in force with a future-dated change is active.
    starts = benefit_begin(ctx.profile, coverage)
    if starts is not None and starts > ctx.as_of:
        if not ctx.profile.members.send_future_coverages:
            report.skipped["future-coverage-not-sent"] += 1
            return []
        report.future_coverages += 1
        return [_line(ctx, coverage, "future", None, None)]
    return [_line(ctx, coverage, "active", None, None)]


def coverage_lines(
    ctx: MappingContext, coverages: Iterable[Coverage], report: MappingReport
) -> list[tuple[Coverage, CoverageLine]]:
    """The claimed coverages of one subscriber as lines, each with the record it came from."""
    claimed = [c for c in coverages if ctx.profile.claims_code(c.benefit_lookup_code)]
    lines: list[tuple[Coverage, CoverageLine]] = []
    waivers = [c for c in claimed if c.is_waiver]
    waived_codes = {lookup_key(w.benefit_lookup_code) for w in waivers}
    by_code: dict[str, list[Coverage]] = {}
    for coverage in claimed:
        if not coverage.is_waiver:
            by_code.setdefault(lookup_key(coverage.benefit_lookup_code), []).append(coverage)
    for waiver in waivers:
        elections = by_code.get(lookup_key(waiver.benefit_lookup_code), [])
        source = {e.id: e for e in elections}
        for line in _waiver_lines(ctx, waiver, elections, report):
            lines.append((source.get(line.coverage_id, waiver), line))
    for code, elections in by_code.items():
        ended_by_waiver = {line.coverage_id for _, line in lines}
        for coverage in elections:
            if code in waived_codes and coverage.id in ended_by_waiver:
                continue
            lines.extend((coverage, line) for line in _election_lines(ctx, coverage, report))
    return lines


def _member_maintenance(lines: Iterable[CoverageLine], file_type: FileType) -> str:
    """A decline record ends nothing: it never makes a member a termination."""
    lines = list(lines)
    coverage = [line for line in lines if line.status != "declined"]
    ended = [line.maintenance == "024" for line in coverage]
    if coverage and all(ended):
        return "024"
    if file_type == "audit":
        return "030"
    return "001" if any(ended) or len(coverage) < len(lines) else "021"


def _reason(lines: list[CoverageLine], maintenance: str, fallback: str | None) -> str | None:
    if maintenance == "021" or maintenance == "030":
        return None
    ordered = sorted(lines, key=lambda line: line.status == "declined")  # endings first
    reasons = [line.reason for line in ordered if line.reason]
    return fallback or (reasons[0] if reasons else None)


def _eligibility_dates(lines: list[CoverageLine], maintenance: str) -> list[tuple[str, date]]:
    dates: list[tuple[str, date]] = []
    begins = [line.begin for line in lines if line.begin]
    if begins:
        dates.append(("356", min(begins)))
    if maintenance == "024":
        ends = [line.end for line in lines if line.end]
        if ends:
            dates.append(("357", max(ends)))
    return dates


def _stated_reason(profile: CarrierProfile, reason: str) -> str | None:
    """The INS04 the profile maps a PlanSource reason to; None when it maps nothing."""
    return profile.termination_reasons.reasons.get(normalize_code(reason)) if reason else None


def death_date(profile: CarrierProfile, record: Subscriber | Dependent) -> date | None:
    """PlanSource's date of death when it sends one, else the termination date of a record
    whose termination reason the profile maps to death (INS04 03)."""
    reason = (
        record.termination_reason_id
        if isinstance(record, Subscriber)
        else record.termination_reason
    )
    if record.date_of_death:
        return record.date_of_death
    if record.termination_date and _stated_reason(profile, reason) == DEATH:
        return record.termination_date
    return None


def _retired(profile: CarrierProfile, subscriber: Subscriber, as_of: date) -> bool:
    """PlanSource says so: an employment status the profile maps to RT, a retirement date that
    has come, or a termination reason the profile maps to retirement (INS04 04)."""
    status = profile.members.employment_code(
        subscriber.employment_status, subscriber.employment_level
    )
    return (
        status == RETIRED
        or (subscriber.retirement_date is not None and subscriber.retirement_date <= as_of)
        or _stated_reason(profile, subscriber.termination_reason_id) == RETIREMENT
    )


def _subscriber_member(
    ctx: MappingContext,
    subscriber: Subscriber,
    lines: list[CoverageLine],
    report: MappingReport,
    own: list[CoverageLine] | None = None,
) -> Member:
    profile = ctx.profile
    maintenance = _member_maintenance(lines, ctx.file_type)
    employment_ended = maintenance == "024" and subscriber.termination_date is not None
    fallback = None
    if employment_ended:
        fallback = profile.termination_reasons.code_for(
            subscriber.termination_reason_id, employment=True
        )
    dates = _eligibility_dates(lines, maintenance)
    if subscriber.hire_date:
        dates.append(("336", subscriber.hire_date))
    if employment_ended and subscriber.termination_date:
        dates.append(("337", subscriber.termination_date))
    status = profile.members.employment_code(
        subscriber.employment_status, subscriber.employment_level
    )
    if employment_ended:
        status = "TE"
    if _retired(profile, subscriber, ctx.as_of):
        status = RETIRED
        retired_on = subscriber.retirement_date or subscriber.termination_date
        if retired_on is not None:
            dates.append(("286", retired_on))
        else:
            report.findings.append(
                Finding(
                    "retirement-date-missing",
                    "warning",
                    "2000/DTP*286",
                    "a retiree without retirement_date or termination_date: no DTP*286 sent",
                    subscriber_id=subscriber.id,
                )
            )
    return Member(
        subscriber_id=subscriber.id,
        dependent_id=None,
        relationship="18",
        maintenance=maintenance,
        reason=_reason(lines, maintenance, fallback),
        benefit_status="A",
        employment_status=status,
        member_id=member_identifier(profile, subscriber),
        group_number=profile.policy.group_number,
        person=_person(subscriber, subscriber),
        dates=tuple(dates),
        # A spouse or child plan's line (and volume) is on the covered dependents' loops only;
        # the employee's maintenance and dates still reflect every line of the family.
        coverages=tuple(lines if own is None else own),
        death_date=death_date(profile, subscriber),
    )


def _on_employee_loop(profile: CarrierProfile, coverage: Coverage, line: CoverageLine) -> bool:
    """A spouse or child plan's line goes on the dependents' loops; with no dependent listed it
    stays on the employee's, where the rules report it (never dropped silently)."""
    plan = profile.plan_for(line.lookup_code)
    return plan is None or plan.covers_employee or not coverage.dependent_ids


def _dependent_lines(
    ctx: MappingContext,
    dependent: Dependent,
    lines: list[tuple[Coverage, CoverageLine]],
    report: MappingReport,
) -> list[CoverageLine]:
    """The subscriber's lines that list this dependent, ended where the dependent's cover
    ended (`lines` as dependents see them: see `_as_dependents_see`)."""
    mine = [line for coverage, line in lines if dependent.id in coverage.dependent_ids]
    if dependent.termination_date is None:
        return mine
    end = last_covered_day(ctx.profile, dependent.termination_date)
    if end < ctx.history_horizon:
        if mine:
            report.history_skipped += 1
            report.skipped["dependent-ended-before-lookback"] += 1
        return []
    reason = ctx.profile.termination_reasons.code_for(dependent.termination_reason)
    return [
        line
        if line.maintenance == "024" and line.end is not None and line.end <= end
        else replace(line, status="terminated", maintenance="024", end=end, reason=reason)
        for line in mine
    ]


def _dependent_member(
    ctx: MappingContext,
    subscriber_member: Member,
    dependent: Dependent,
    subscriber: Subscriber,
    lines: list[CoverageLine],
) -> Member:
    relationship = ctx.profile.members.relationship_code(dependent.relationship_code)
    if relationship is None:
        raise RecordProblem(
            f"dependent id={dependent.id}: relationship_code {dependent.relationship_code!r} has "
            f"no INS02 mapping in profile {ctx.profile.name!r} ([members.relationships])",
            code="no-relationship-mapping",
            ref="2000/INS02",
            dependent_id=dependent.id,
            hint="Add the relationship code to the profile's [members.relationships] table.",
        )
    maintenance = _member_maintenance(lines, ctx.file_type)
    dates = _eligibility_dates(lines, maintenance)
    reason = _reason(lines, maintenance, None)
    if not lines and dependent.termination_date is not None:
        # Ended, and listed on no coverage any more: an explicit member-level end.
        end = last_covered_day(ctx.profile, dependent.termination_date)
        maintenance, dates = "024", [("357", end)]
        reason = ctx.profile.termination_reasons.code_for(dependent.termination_reason)
    return Member(
        subscriber_id=subscriber.id,
        dependent_id=dependent.id,
        relationship=relationship,
        maintenance=maintenance,
        reason=reason,
        benefit_status="A",
        employment_status=None,
        member_id=subscriber_member.member_id,
        group_number=subscriber_member.group_number,
        person=_person(dependent, subscriber),
        dates=tuple(dates),
        coverages=tuple(lines),
        student="F" if dependent.student else None,
        handicapped=dependent.disabled,
        death_date=death_date(ctx.profile, dependent),
    )


def _unlisted_termination(
    ctx: MappingContext,
    dependent: Dependent,
    listed_anywhere: bool,
    subscriber_lines: list[CoverageLine],
    report: MappingReport,
) -> bool:
    """A dependent PlanSource ended (divorce, death, overage) whom no coverage lists any more
    is terminated explicitly, not by omission, while the subscriber is covered at this carrier
    (even on a first file), if the end is within the lookback window."""
    if dependent.termination_date is None or listed_anywhere:
        return False
    if not any(line.status != "declined" for line in subscriber_lines):
        return False
    if last_covered_day(ctx.profile, dependent.termination_date) < ctx.history_horizon:
        report.history_skipped += 1
        return False
    report.dependent_terminations += 1
    return True


def _as_dependents_see(
    ctx: MappingContext, lines: list[tuple[Coverage, CoverageLine]]
) -> list[tuple[Coverage, CoverageLine]]:
    """The premium is the subscriber's to pay: it stays on their loop (once per coverage)
    unless the profile says `premium_on = "every_member"`."""
    if ctx.profile.premium_on == "every_member":
        return lines
    return [
        (
            coverage,
            replace(line, premium=None)
            if line.premium is not None and _on_employee_loop(ctx.profile, coverage, line)
            else line,  # a spouse or child plan's premium is on the loop its line is on
        )
        for coverage, line in lines
        if coverage.dependent_ids
    ]


def map_subscriber(
    ctx: MappingContext, records: SubscriberRecords, report: MappingReport
) -> list[Member]:
    """The 834 member loops for one subscriber: theirs first, then their dependents'."""
    subscriber = records.subscriber
    if subscriber.test_employee:
        report.test_employees_skipped += 1
        report.skipped["test-employee"] += 1
        return []
    lines = coverage_lines(ctx, records.coverages, report)
    if not lines:
        return []
    subscriber_lines = [line for _, line in lines]
    own = [line for coverage, line in lines if _on_employee_loop(ctx.profile, coverage, line)]
    subscriber_member = _subscriber_member(ctx, subscriber, subscriber_lines, report, own)
    members = [subscriber_member]
    listed = {
        dependent_id
        for coverage in records.coverages
        if ctx.profile.claims_code(coverage.benefit_lookup_code)
        for dependent_id in coverage.dependent_ids
    }
    seen_by_dependents = _as_dependents_see(ctx, lines) if records.dependents else []
    for dependent in records.dependents:
        dependent_lines = _dependent_lines(ctx, dependent, seen_by_dependents, report)
        if dependent_lines or _unlisted_termination(
            ctx, dependent, dependent.id in listed, subscriber_lines, report
        ):
            members.append(
                _dependent_member(ctx, subscriber_member, dependent, subscriber, dependent_lines)
            )
    return members


def map_members(
    ctx: MappingContext, groups: Iterable[SubscriberRecords], report: MappingReport
) -> Iterator[Member]:
    """Members in source order. Bad records fail the run, or are quarantined when the profile
    says so; either way every problem is named by PlanSource id."""
    problems: list[str] = []
    quarantine = ctx.profile.members.on_bad_record == "quarantine"
    for records in groups:
        try:
            members = map_subscriber(ctx, records, report)
        except RecordProblem as problem:
            if quarantine:
                report.quarantined.append(str(problem))
                continue
            problems.append(str(problem))
            continue
        if problems:
            continue
        for member in members:
            report.count(member)
            yield member
    if problems:
        raise SourceDataError(
            "mapping-failed",
            f"{len(problems)} record(s) cannot be mapped for carrier {ctx.profile.name!r}",
            hint="Fix the records in PlanSource or the carrier profile; nothing was written.",
            record_ids=[p.split(":", 1)[0] for p in problems],
            details=problems[:50],
        )
