"""The build: map → rules → diff → guard → write → validate → rename, under the carrier's run
lock. A file that fails validation is deleted; nothing half-written is left."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

from edi.changes import DiffContext, StreamingDiff, check_guard
from edi.errors import EdiError, NothingToSend, SourceDataError, ValidationFailed
from edi.faults import crash_point
from edi.mapping import MappingContext
from edi.members import FileType, MappingReport, Member
from edi.pipeline.context import RunContext, lock_wait_s
from edi.plansource.export import SubscriberRecords, read_export
from edi.private import private_dir, private_file
from edi.profiles import CarrierProfile, load_profile, profile_names
from edi.rules import RuleContext, RulesReport, screen
from edi.rules.stage import MAX_LISTED_UNCLAIMED, note_unclaimed
from edi.runs import carrier_run
from edi.validate import ValidationReport, validate_file
from edi.workspace import Workspace
from edi.x12.control import LoggedNumber
from edi.x12.writer import Body, Envelope, content_fingerprint, write_body, write_file

Progress = Callable[[int, int], None]
T = TypeVar("T")


@dataclass(slots=True)
class GeneratedFile:
    carrier: str
    path: Path
    file_type: FileType
    envelope: Envelope
    fingerprint: str
    body: Body
    se01: int
    report: MappingReport
    validation: ValidationReport
    source: Path
    sample_data: bool
    as_of: date
    rules: RulesReport = field(default_factory=RulesReport)
    # A change or full file measured against a baseline: the diff's counts (what the file says).
    diff: dict[str, object] | None = None
    # Set when the mass-termination guard was passed on purpose (logged with the delivery).
    mass_termination_reason: str | None = None

    @property
    def isa13(self) -> str:
        return self.envelope.isa13

    def skipped(self) -> dict[str, int]:
        """Every record the run left out, by reason."""
        counts = dict(self.report.skipped)
        if self.rules.unclaimed_count:
            counts["unclaimed-lookup-code"] = self.rules.unclaimed_count
        return counts

    def held_log(self) -> list[dict[str, object]]:
        """Held subscribers for the delivery log and alerts: ids and codes only."""
        return [
            {
                "subscriber_id": sid,
                "codes": sorted({f.code for f in findings if f.is_error}),
                "dependent_ids": sorted({f.dependent_id for f in findings if f.dependent_id}),
                "coverage_ids": sorted({f.coverage_id for f in findings if f.coverage_id}),
            }
            for sid, findings in self.rules.held.items()
        ]

    def summary(self) -> dict[str, object]:
        """Counts and ids only: this goes to screens, logs and alerts."""
        r = self.report
        return {
            "carrier": self.carrier,
            "file": str(self.path),
            "file_type": self.file_type,
            "isa13": self.isa13,
            "gs06": str(self.envelope.control_number),
            "st02": "0001",
            "as_of": self.as_of.isoformat(),
            "members": self.body.members,
            "subscribers": self.body.subscribers,
            "dependents": self.body.dependents,
            "additions": r.additions,
            "changes": r.changes,
            "terminations": r.terminations,
            "coverage_lines": self.body.coverage_lines,
            "elections_ended": r.elections_ended,
            "declines_skipped": r.declines_skipped,
            "declines_sent": r.declines_sent,
            "future_coverages": r.future_coverages,
            "test_employees_skipped": r.test_employees_skipped,
            "history_skipped": r.history_skipped,
            "dependent_terminations": r.dependent_terminations,
            "quarantined": self.rules.held_lines(),
            "held": self.rules.held_list(),
            "held_subscribers": len(self.rules.held),
            "held_members": self.rules.held_members,
            "warnings": self.rules.warnings.as_list(),
            "findings": [finding.as_dict() for finding in r.findings],
            "skipped": dict(sorted(self.skipped().items())),
            "unclaimed_coverages": {
                "count": self.rules.unclaimed_count,
                "coverage_ids": list(self.rules.unclaimed),
            },
            "segments": self.se01,
            "sample_data": self.sample_data,
            "valid": self.validation.valid,
            **({"diff": self.diff} if self.diff is not None else {}),
            **self._diff_counts(),
        }

    def _diff_counts(self) -> dict[str, object]:
        """A change file's counts are the diff's (what the file says), as `edi diff` shows
        them, not the mapping's counts of every member in the source."""
        if self.diff is None:
            return {}
        keys = ("additions", "changes", "terminations", "reinstatements", "disappearances")
        return {key: self.diff[key] for key in keys if key in self.diff}


def tracked(items: Iterable[T], total: int, progress: Progress | None) -> Iterator[T]:
    for done, item in enumerate(items, start=1):
        yield item
        if progress is not None and (done % 500 == 0 or done == total):
            progress(done, total)


def resolve_source(workspace: Workspace, source: Path | None) -> tuple[Path, bool]:
    if source is not None:
        return source, False
    return workspace.default_source()


def seal_834(
    ctx: RunContext, body: Body, *, out_dir: Path, scratch: Path, file_type: FileType
) -> tuple[Path, Envelope, str, int, ValidationReport]:
    """A written body → a validated 834 under its final name in out_dir, or nothing at all:
    the control number is reserved for this content, the envelope written around the body in
    the run's private scratch folder, validated, and only then renamed into place."""
    profile = ctx.profile
    if body.members == 0:
        raise SourceDataError(
            "nothing-to-send",
            f"no member of carrier {profile.name!r} is in the source data",
            hint="Check the profile's `claims` patterns against the coverages' lookup codes.",
        )
    fingerprint = content_fingerprint(profile, file_type, body)
    envelope = ctx.stores.control.allocate(profile.name, fingerprint, ctx.now)
    crash_point("after-control-number")
    part_path = scratch / "file.part"
    se01 = write_file(profile, file_type, body, envelope, part_path)
    crash_point("before-validation")
    validation = validate_file(part_path, profile)
    if not validation.valid:
        raise ValidationFailed(
            "file-invalid",
            f"the {profile.name} 834 (ISA13 {envelope.isa13}) failed validation with "
            f"{len(validation.findings)} finding(s); it was deleted and nothing was sent",
            hint="The findings name segment numbers; fix the profile or the records.",
            details=[f.line() for f in validation.findings[:50]],
        )
    final = out_dir / profile.file.name_pattern.format(
        carrier=profile.name,
        sponsor=profile.interchange.sender_id.strip(),
        isa13=envelope.isa13,
        date=envelope.created_at,
        file_type=file_type,
    )
    publish(part_path, final)
    return final, envelope, fingerprint, se01, validation


def publish(validated: Path, final: Path) -> None:
    """Move a validated file to its final name atomically, readable by its owner only."""
    private_dir(final.parent)
    private_file(validated)
    try:
        os.replace(validated, final)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        staged = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            shutil.copyfile(validated, staged)
            private_file(staged)
            os.replace(staged, final)
        finally:
            staged.unlink(missing_ok=True)


def claimed_by_any(workspace: Workspace, profile: CarrierProfile) -> Callable[[str], bool]:
    """Whether any profile of the workspace claims a lookup code (a profile that does not load
    is its own run's problem: its codes then count as unclaimed here)."""
    profiles = [profile]
    for name in profile_names(workspace):
        if name == profile.name:
            continue
        with contextlib.suppress(EdiError):
            profiles.append(load_profile(workspace, name))
    known: dict[str, bool] = {}

    def claimed(code: str) -> bool:
        found = known.get(code)
        if found is None:
            found = known[code] = any(p.claims_code(code) for p in profiles)
        return found

    return claimed


def logged_control_numbers(ctx: RunContext) -> list[LoggedNumber]:
    """Every control number the delivery log recorded for the carrier (none without a log)."""
    if not ctx.log.backend.exists():
        return []
    numbers: dict[int, LoggedNumber] = {}
    for entry in ctx.log.entries(carrier=ctx.carrier):
        isa13 = str(entry.get("isa13") or "")
        if not isa13.isdigit():
            continue
        known = LoggedNumber(
            int(isa13), entry.get("content_fingerprint"), entry.get("envelope_created_at")
        )
        if known.fingerprint or int(isa13) not in numbers:
            numbers[int(isa13)] = known
    return list(numbers.values())


def restore_control_numbers(ctx: RunContext) -> None:
    """A lost or rolled-back control-number store is rebuilt from the log, never restarted."""
    restoration = ctx.stores.control.restore_from_log(ctx.carrier, logged_control_numbers(ctx))
    if restoration is None:
        return
    ctx.log.append(
        "control-numbers-restored",
        now=ctx.now,
        carrier=ctx.carrier,
        store_highest=restoration.store_highest,
        log_highest=restoration.log_highest,
        restored=restoration.restored,
    )
    ctx.log.checkpoint(now=ctx.now)


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """What the person or schedule asked of one file."""

    as_of: date | None = None
    source: Path | None = None
    out_dir: Path | None = None
    file_type: FileType | None = None
    allow_mass_termination: bool = False
    reason: str | None = None


def guard(
    ctx: RunContext,
    diff_ctx: DiffContext,
    differ: StreamingDiff,
    body: Body,
    options: BuildOptions,
    chosen: FileType,
) -> None:
    """Before any control number is reserved: the mass-termination guard, and an empty change
    file is nothing to send."""
    if chosen != "audit":
        check_guard(
            diff_ctx, differ.result, allow=options.allow_mass_termination, reason=options.reason
        )
    if chosen == "changes" and body.members == 0:
        raise NothingToSend(
            "nothing-to-send",
            f"{ctx.carrier}: nothing changed since the last delivered file",
            hint="No file was written; the baseline is where it was.",
        )


def build(
    ctx: RunContext,
    options: BuildOptions,
    *,
    scratch: Path,
    progress: Progress | None = None,
) -> GeneratedFile:
    """One validated 834. Full and change files are measured against the baseline (the last
    delivered state): disappeared members become explicit terminations, and past the profile's
    limits nothing is written. The members the file leaves the carrier with are proposed as
    the next baseline; only a successful delivery commits them."""
    workspace, profile, carrier = ctx.workspace, ctx.profile, ctx.carrier
    chosen: FileType = options.file_type or ctx.changes.file_type
    source_dir, sample = resolve_source(workspace, options.source)
    effective = options.as_of or ctx.now.date()
    report = MappingReport()
    rules = RulesReport()
    target = options.out_dir or workspace.home / "out" / carrier
    restore_control_numbers(ctx)
    store = ctx.stores.baselines
    has_baseline = store.has_baseline(carrier)
    reader = store.lookup(carrier)
    proposal = None if chosen == "audit" else store.proposal(carrier, uuid.uuid4().hex)
    diff_ctx = DiffContext(profile, ctx.changes, effective)
    differ = StreamingDiff(
        diff_ctx,
        reader.get,
        reader.others,
        reader.active_subscribers() if has_baseline else 0,
        has_baseline,
    )

    def held(records: SubscriberRecords) -> None:
        """A held family is neither sent nor disappears: the baseline keeps what the carrier
        last had for them (looking them up also keeps them out of the disappearances)."""
        if not has_baseline:
            return
        keys = [f"S{records.subscriber.id}", *(f"D{d.id}" for d in records.dependents)]
        for key in keys:
            then = reader.get(key)
            if then is not None and proposal is not None:
                proposal.keep(then)

    try:
        with read_export(
            source_dir,
            scratch,
            claims=profile.claims_code,
            claimed_by_any=claimed_by_any(workspace, profile),
        ) as data:
            crash_point("during-generate")
            per_family = note_unclaimed(
                rules,
                RuleContext(profile, effective),
                data.unclaimed_count,
                data.unclaimed(MAX_LISTED_UNCLAIMED),
            )
            groups = tracked(data.groups(), len(data), progress)
            mapping_type: FileType = "audit" if chosen == "audit" else "full"
            members: Iterable[Member] = screen(
                MappingContext(profile, effective, mapping_type, first_file=not has_baseline),
                groups,
                report,
                rules,
                unclaimed_of=data.unclaimed_of if per_family else None,
                on_held=held,
            )
            if proposal is not None:
                members = proposal.tee(members)
            if chosen != "audit" and has_baseline:
                members = differ.members(members, full=chosen == "full")
            body = write_body(members, profile, scratch / "file.body")
            guard(ctx, diff_ctx, differ, body, options, chosen)
            path, envelope, fingerprint, se01, validation = seal_834(
                ctx, body, out_dir=target, scratch=scratch, file_type=chosen
            )
        report.findings.extend(body.findings)
        if proposal is not None:
            proposal.finish(fingerprint)
            proposal = None
    finally:
        reader.close()
        if proposal is not None:
            proposal.discard()
    return GeneratedFile(
        carrier=carrier,
        path=path,
        file_type=chosen,
        envelope=envelope,
        fingerprint=fingerprint,
        body=body,
        se01=se01,
        report=report,
        validation=validation,
        source=source_dir,
        sample_data=sample,
        as_of=effective,
        rules=rules,
        diff=differ.result.summary() if has_baseline and chosen != "audit" else None,
        mass_termination_reason=(
            options.reason if options.allow_mass_termination and options.reason else None
        ),
    )


def generate(
    workspace: Workspace,
    carrier: str,
    *,
    now: datetime,
    as_of: date | None = None,
    source: Path | None = None,
    out_dir: Path | None = None,
    file_type: FileType | None = None,
    progress: Progress | None = None,
    allow_mass_termination: bool = False,
    reason: str | None = None,
) -> GeneratedFile:
    """One validated 834, written under the carrier's run lock (see `build`)."""
    ctx = RunContext.open(workspace, carrier, now=now)
    options = BuildOptions(as_of, source, out_dir, file_type, allow_mass_termination, reason)
    with carrier_run(workspace.state_dir, carrier, wait_s=lock_wait_s(workspace)) as scratch:
        return build(ctx, options, scratch=scratch, progress=progress)
