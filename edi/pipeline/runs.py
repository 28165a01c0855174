"""A run end to end (build, then delivery, inside the failure boundary) and `send` of an
existing file."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

from edi import delivery_config, store
from edi.changes import ChangesConfig
from edi.errors import NothingToSend, ValidationFailed
from edi.members import FileType
from edi.pipeline.build import BuildOptions, GeneratedFile, Progress, build
from edi.pipeline.context import RunContext, lock_wait_s
from edi.pipeline.delivery import FileFacts, RunOutcome, alert_held, deliver_file
from edi.pipeline.failures import failure_boundary, warn_without_alert_channels
from edi.pipeline.stores import baselines
from edi.profiles import check_carrier_name
from edi.runs import carrier_run
from edi.validate import validate_file
from edi.workspace import Workspace

AUDIT_PERIODS = {
    "weekly": timedelta(days=7),
    "monthly": timedelta(days=30),
    "quarterly": timedelta(days=91),
}


def due_file_type(
    workspace: Workspace, carrier: str, config: ChangesConfig, now: datetime
) -> FileType | None:
    """An audit file when the profile asks for one every period and none was delivered in it
    (never before the carrier has had a first file)."""
    period = AUDIT_PERIODS.get(config.audit_every)
    if period is None or not baselines(workspace).has_baseline(carrier):
        return None
    since = now - period
    for entry in delivery_config.delivery_log(workspace).entries(
        carrier=carrier, event="delivery", since=since
    ):
        if entry.get("file_type") == "audit" and entry.get("outcome") in (
            "delivered",
            "already-delivered",
        ):
            return None
    return "audit"


def run(
    workspace: Workspace,
    carrier: str,
    *,
    now: datetime,
    as_of: date | None = None,
    source: Path | None = None,
    file_type: FileType | None = None,
    schedule_id: str | None = None,
    progress: Progress | None = None,
    allow_mass_termination: bool = False,
    reason: str | None = None,
) -> RunOutcome:
    """generate → validate → encrypt → deliver → log, under the carrier's run lock; any
    failure is logged and alerted. An empty change file raises NothingToSend (exit 0),
    logged as nothing-to-send."""
    check_carrier_name(carrier)
    warn_without_alert_channels(workspace)
    made: list[FileFacts] = []
    with (
        failure_boundary(
            workspace,
            carrier,
            now=now,
            schedule_id=schedule_id,
            facts=lambda: made[0] if made else None,
        ),
        store.run_lock(workspace, carrier, wait_s=lock_wait_s(workspace)),
        carrier_run(workspace.state_dir, carrier, wait_s=lock_wait_s(workspace)) as scratch,
    ):
        ctx = RunContext.open(workspace, carrier, now=now, schedule_id=schedule_id)
        options = BuildOptions(
            as_of=as_of,
            source=source,
            file_type=file_type or due_file_type(workspace, carrier, ctx.changes, now),
            allow_mass_termination=allow_mass_termination,
            reason=reason,
        )
        generated = _build_or_nothing(ctx, options, scratch, progress)
        if generated.mass_termination_reason is not None:
            ctx.log.append(
                "mass-termination-allowed",
                now=now,
                carrier=carrier,
                actor=ctx.actor(),
                reason=generated.mass_termination_reason,
                isa13=generated.isa13,
                details=generated.diff,
            )
        facts = FileFacts(
            generated.path,
            generated.isa13,
            str(generated.envelope.control_number),
            "0001",
            generated.body.members,
            generated.body.coverage_lines,
        )
        made.append(facts)
        if generated.rules.held:
            alert_held(ctx, generated, facts)
        return deliver_file(ctx, facts, generated)


def _build_or_nothing(
    ctx: RunContext, options: BuildOptions, scratch: Path, progress: Progress | None
) -> GeneratedFile:
    """The file to send; nothing to send is logged (and raised), unless the profile wants a
    file every run: an 834 needs a member loop, so that carrier gets the audit snapshot
    (BGN08 4, INS03 030), which applies no updates."""
    try:
        try:
            return build(ctx, options, scratch=scratch, progress=progress)
        except NothingToSend:
            if not ctx.changes.send_empty:
                raise
            return build(
                ctx, replace(options, file_type="audit"), scratch=scratch, progress=progress
            )
    except NothingToSend:
        ctx.log.append(
            "nothing-to-send",
            now=ctx.now,
            carrier=ctx.carrier,
            outcome="nothing-to-send",
            actor=ctx.actor(),
        )
        ctx.log.checkpoint(now=ctx.now)
        raise


def send(
    workspace: Workspace, carrier: str, file: Path, *, now: datetime, schedule_id: str | None = None
) -> RunOutcome:
    """Deliver an existing file; it is validated first, and never sent when invalid."""
    check_carrier_name(carrier)
    warn_without_alert_channels(workspace)
    scanned: list[FileFacts] = []
    with (
        failure_boundary(
            workspace,
            carrier,
            now=now,
            schedule_id=schedule_id,
            facts=lambda: scanned[0] if scanned else None,
        ),
        store.run_lock(workspace, carrier, wait_s=lock_wait_s(workspace)),
        carrier_run(workspace.state_dir, carrier, wait_s=lock_wait_s(workspace)),
    ):
        ctx = RunContext.open(workspace, carrier, now=now, schedule_id=schedule_id)
        report = validate_file(file, ctx.profile)
        if not report.valid:
            raise ValidationFailed(
                "file-invalid",
                f"{file.name} failed validation with {len(report.findings)} finding(s); "
                "it was not sent",
                details=[f.line() for f in report.findings[:50]],
            )
        scanned.append(FileFacts.scan(file))
        return deliver_file(ctx, scanned[0])
