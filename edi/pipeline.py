"""The pipeline: the one place, with the CLI, that touches disk, network and clock.

generate: read source → map (profile) → write body → allocate control number → write file →
validate → rename. A file that fails validation is deleted; nothing half-written is left.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import logging
import os
import shutil
import socket
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import transmit
from edi import delivery_config, store, stores
from edi.changes import (
    ChangesConfig,
    ChangeSet,
    DiffContext,
    StreamingDiff,
    changes_config,
    check_guard,
)
from edi.errors import (
    ConfigError,
    DeliveryFailed,
    EdiError,
    GuardTripped,
    NothingToSend,
    RunFailed,
    SourceDataError,
    ValidationFailed,
)
from edi.faults import crash_point, instrumented
from edi.mapping import MappingContext
from edi.members import FileType, MappingReport, Member
from edi.plansource.export import SubscriberRecords, read_export
from edi.private import private_dir, private_file
from edi.profiles import CarrierProfile, check_carrier_name, load_profile, profile_names
from edi.rules import RuleContext, RulesReport, screen
from edi.rules.stage import MAX_LISTED_UNCLAIMED, note_unclaimed
from edi.runs import (
    RunLocked,
    carrier_run,
    preview_scratch,
)
from edi.validate import ValidationReport, validate_file
from edi.workspace import Workspace
from edi.x12.control import LoggedNumber
from edi.x12.writer import Body, Envelope, content_fingerprint, write_body, write_file

Progress = Callable[[int, int], None]
logger = logging.getLogger("edi")
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
    extra: dict[str, object] = field(default_factory=dict)
    rules: RulesReport = field(default_factory=RulesReport)

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
            **({"diff": self.extra["changes"]} if "changes" in self.extra else {}),
        }


def tracked(items: Iterable[T], total: int, progress: Progress | None) -> Iterator[T]:
    for done, item in enumerate(items, start=1):
        yield item
        if progress is not None and (done % 500 == 0 or done == total):
            progress(done, total)


def control_numbers(workspace: Workspace) -> stores.ControlNumberStore:
    return stores.control_numbers(workspace)


def resolve_source(workspace: Workspace, source: Path | None) -> tuple[Path, bool]:
    if source is not None:
        return source, False
    return workspace.default_source()


def write_834(
    workspace: Workspace,
    profile: CarrierProfile,
    members: Iterable[Member],
    *,
    out_dir: Path,
    scratch: Path,
    file_type: FileType,
    now: datetime,
    before_envelope: Callable[[Body], None] | None = None,
) -> tuple[Path, Envelope, str, Body, int, ValidationReport]:
    """Members → a validated 834 under its final name in out_dir, or nothing at all. The body
    and the unvalidated file live in the run's private scratch folder until they pass."""
    body_path, part_path = scratch / "file.body", scratch / "file.part"
    body = write_body(members, profile, body_path)
    if before_envelope is not None:
        before_envelope(body)
    if body.members == 0:
        raise SourceDataError(
            "nothing-to-send",
            f"no member of carrier {profile.name!r} is in the source data",
            hint="Check the profile's `claims` patterns against the coverages' lookup codes.",
        )
    fingerprint = content_fingerprint(profile, file_type, body)
    envelope = control_numbers(workspace).allocate(profile.name, fingerprint, now)
    crash_point("after-control-number")
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
    return final, envelope, fingerprint, body, se01, validation


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


def baselines(workspace: Workspace) -> stores.Baselines:
    return stores.baselines(workspace)


def _profile_file(workspace: Workspace, carrier: str) -> Path:
    return workspace.carriers_dir / f"{carrier}.toml"


def lock_wait_s(workspace: Workspace) -> float:
    return workspace.settings.runs.lock_wait_s


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
    with carrier_run(workspace.state_dir, carrier, wait_s=lock_wait_s(workspace)) as scratch:
        return build(
            workspace,
            carrier,
            scratch=scratch,
            now=now,
            as_of=as_of,
            source=source,
            out_dir=out_dir,
            file_type=file_type,
            progress=progress,
            allow_mass_termination=allow_mass_termination,
            reason=reason,
        )


def logged_control_numbers(workspace: Workspace, carrier: str) -> list[LoggedNumber]:
    """Every control number the delivery log recorded for the carrier (none without a log)."""
    log = delivery_config.delivery_log(workspace)
    if not log.backend.exists():
        return []
    numbers: dict[int, LoggedNumber] = {}
    for entry in log.entries(carrier=carrier):
        isa13 = str(entry.get("isa13") or "")
        if not isa13.isdigit():
            continue
        known = LoggedNumber(
            int(isa13), entry.get("content_fingerprint"), entry.get("envelope_created_at")
        )
        if known.fingerprint or int(isa13) not in numbers:
            numbers[int(isa13)] = known
    return list(numbers.values())


def restore_control_numbers(workspace: Workspace, carrier: str, now: datetime) -> None:
    """A lost or rolled-back control-number store is rebuilt from the log, never restarted."""
    restoration = control_numbers(workspace).restore_from_log(
        carrier, logged_control_numbers(workspace, carrier)
    )
    if restoration is None:
        return
    log = delivery_config.delivery_log(workspace)
    log.append(
        "control-numbers-restored",
        now=now,
        carrier=carrier,
        store_highest=restoration.store_highest,
        log_highest=restoration.log_highest,
        restored=restoration.restored,
    )
    log.checkpoint(now=now)


def build(
    workspace: Workspace,
    carrier: str,
    *,
    scratch: Path,
    now: datetime,
    as_of: date | None = None,
    source: Path | None = None,
    out_dir: Path | None = None,
    file_type: FileType | None = None,
    progress: Progress | None = None,
    allow_mass_termination: bool = False,
    reason: str | None = None,
) -> GeneratedFile:
    """One validated 834. Full and change files are measured against the baseline (the last
    delivered state): disappeared members become explicit terminations, and past the profile's
    limits nothing is written. The members the file leaves the carrier with are proposed as
    the next baseline; only a successful delivery commits them."""
    profile = load_profile(workspace, carrier)
    config = changes_config(profile, _profile_file(workspace, carrier))
    chosen: FileType = file_type or config.file_type
    source_dir, sample = resolve_source(workspace, source)
    effective = as_of or now.date()
    report = MappingReport()
    rules = RulesReport()
    target = out_dir or workspace.home / "out" / carrier
    restore_control_numbers(workspace, carrier, now)
    store = baselines(workspace)
    has_baseline = store.has_baseline(carrier)
    reader = store.lookup(carrier)
    proposal = None if chosen == "audit" else store.proposal(carrier, uuid.uuid4().hex)
    diff_ctx = DiffContext(profile, config, effective)
    differ = StreamingDiff(
        diff_ctx,
        reader.get,
        reader.others,
        reader.active_subscribers() if has_baseline else 0,
        has_baseline,
    )

    def guard(body: Body) -> None:
        if chosen != "audit":
            check_guard(diff_ctx, differ.result, allow=allow_mass_termination, reason=reason)
        if chosen == "changes" and body.members == 0:
            raise NothingToSend(
                "nothing-to-send",
                f"{carrier}: nothing changed since the last delivered file",
                hint="No file was written; the baseline is where it was.",
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
            path, envelope, fingerprint, body, se01, validation = write_834(
                workspace,
                profile,
                members,
                out_dir=target,
                scratch=scratch,
                file_type=chosen,
                now=now,
                before_envelope=guard,
            )
        report.findings.extend(body.findings)
        if proposal is not None:
            proposal.finish(fingerprint)
            proposal = None
    finally:
        reader.close()
        if proposal is not None:
            proposal.discard()
    generated = GeneratedFile(
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
    )
    if has_baseline and chosen != "audit":
        generated.extra["changes"] = differ.result.summary()
    if allow_mass_termination and reason:
        generated.extra["mass_termination_reason"] = reason
    return generated


# Delivery -------------------------------------------------------------------------------------


@dataclass(slots=True)
class FileFacts:
    """What the log and alerts say about a file: ids, control numbers and counts, no PHI."""

    path: Path
    isa13: str
    gs06: str
    st02: str
    members: int
    coverage_lines: int

    @classmethod
    def scan(cls, path: Path) -> FileFacts:
        from edi.x12.reader import read_segments

        positions = {"ISA": 13, "GS": 6, "ST": 2}
        ids = dict.fromkeys(positions, "")
        members = lines = 0
        for seg in read_segments(path):
            position = positions.get(seg[0])
            if position is not None and not ids[seg[0]] and len(seg) > position:
                ids[seg[0]] = seg[position]
            members += seg[0] == "INS"
            lines += seg[0] == "HD"
        return cls(path, ids["ISA"], ids["GS"], ids["ST"], members, lines)

    def log_facts(self) -> dict[str, object]:
        return {
            "file_id": self.path.name,
            "isa13": self.isa13,
            "gs06": self.gs06,
            "st02": self.st02,
            "member_count": self.members,
            "coverage_count": self.coverage_lines,
        }


@dataclass(slots=True)
class RunOutcome:
    carrier: str
    outcome: str  # delivered | already-delivered
    facts: FileFacts
    remote_path: str
    attempts: int
    log_seq: int
    generated: GeneratedFile | None = None

    def summary(self) -> dict[str, object]:
        return {
            "carrier": self.carrier,
            "outcome": self.outcome,
            "remote_path": self.remote_path,
            "attempts": self.attempts,
            "log_seq": self.log_seq,
            **self.facts.log_facts(),
            **({"generated": self.generated.summary()} if self.generated else {}),
        }


def actor(schedule_id: str | None) -> dict[str, object]:
    return {"host": socket.gethostname(), "user": getpass.getuser(), "schedule_id": schedule_id}


def record_failure(
    workspace: Workspace,
    carrier: str,
    error: EdiError | transmit.TransmitError,
    *,
    kind: str,
    now: datetime,
    facts: FileFacts | None = None,
    schedule_id: str | None = None,
) -> None:
    """No failure goes unlogged and unalerted; the alert names codes and ids, never PHI. The
    log may be what failed (a read-only or corrupt state): then a second alert says so."""
    control = {"isa13": facts.isa13, "gs06": facts.gs06, "st02": facts.st02} if facts else {}
    event = transmit.AlertEvent(
        kind=kind,
        carrier=carrier,
        message=error.message,
        file_id=facts.path.name if facts else None,
        control_numbers={k: v for k, v in control.items() if v},
        counts={"members": facts.members, "coverage_lines": facts.coverage_lines} if facts else {},
        error_code=error.code,
        error_class=type(error).__name__,
    )
    sent = delivery_config.send_alert(workspace, event)
    try:
        log = delivery_config.delivery_log(workspace)
        log.append(
            kind,
            now=now,
            carrier=carrier,
            outcome="failed",
            actor=actor(schedule_id),
            error_class=type(error).__name__,
            error_code=error.code,
            error_message=error.message,
            alerts_sent=sent,
            **(facts.log_facts() if facts else {}),
        )
        log.checkpoint(now=now)
    except Exception as exc:  # the boundary must report even when the log is what broke
        problem = unexpected_failure(exc)
        delivery_config.send_alert(
            workspace,
            transmit.AlertEvent(
                kind="log-unwritable",
                carrier=carrier,
                message=f"the delivery log could not record a {kind} failure: {problem.message}",
                error_code=problem.code,
                error_class=type(exc).__name__,
            ),
        )


def unexpected_failure(exc: BaseException) -> RunFailed:
    """An exception from outside our error classes, in our words, without PHI: OS and SQLite
    messages name files and conditions; anything else is named by its class only."""
    if isinstance(exc, transmit.TransmitError):
        return RunFailed(exc.code, exc.message, hint=exc.hint)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return RunFailed(
            "state-database-locked",
            f"a state database stayed locked: {exc}",
            hint="Another process holds it; retry, or look for a stuck edi process.",
        )
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        return RunFailed(
            "disk-full",
            f"a state database could not grow: {exc}",
            hint=OS_FAILURES[errno.ENOSPC][1],
        )
    if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
        return RunFailed(
            "read-only-filesystem",
            f"a state database is read-only: {exc}",
            hint=OS_FAILURES[errno.EROFS][1],
        )
    if isinstance(exc, sqlite3.Error):
        return RunFailed(
            "state-database-error",
            f"a state database under state/ failed: {exc}",
            hint="The file may be corrupt or truncated: restore state/ from backup; the "
            "delivery log is verified with `edi log verify`.",
        )
    if isinstance(exc, OSError):
        code, hint = OS_FAILURES.get(
            exc.errno or 0, ("os-error", "Check the disk and the permissions of the workspace.")
        )
        where = f" ({exc.filename})" if exc.filename else ""
        return RunFailed(code, f"{exc.strerror or type(exc).__name__}{where}", hint=hint)
    return RunFailed(
        "unexpected-error",
        f"the run failed with {type(exc).__name__}",
        hint="Rerun with --debug for the traceback, and report it.",
    )


OS_FAILURES = {
    errno.ENOSPC: ("disk-full", "Free space on the disk that holds the workspace or out/."),
    errno.EDQUOT: ("disk-full", "Free space on the disk that holds the workspace or out/."),
    errno.EROFS: ("read-only-filesystem", "The workspace's state/ or out/ is mounted read-only."),
    errno.EACCES: ("permission-denied", "Check the owner and mode of the workspace's files."),
    errno.EPERM: ("permission-denied", "Check the owner and mode of the workspace's files."),
}


def warn_without_alert_channels(workspace: Workspace) -> None:
    if not delivery_config.alerter(workspace).channels:
        logger.warning(
            "no alert channel is configured: failures of this run reach no one "
            "(set [alerts] email_to, webhook_url or slack_webhook_url in edi.toml)"
        )


def _outbox_copy(
    workspace: Workspace, profile: CarrierProfile, facts: FileFacts, plain_sha: str, now: datetime
) -> tuple[Path, transmit.EncryptionResult]:
    """The encrypted file, made once per content: a retry or re-run sends the same bytes."""
    spec = delivery_config.encryption_spec(profile, workspace)
    extension = delivery_config.encryption_config(profile, workspace).extension
    target = (
        workspace.state_dir / "outbox" / profile.name / plain_sha / (facts.path.name + extension)
    )
    if target.exists():
        return target, transmit.EncryptionResult(
            path=target,
            plaintext_sha256=plain_sha,
            ciphertext_sha256=transmit.sha256_file(target),
            plaintext_size=facts.path.stat().st_size,
            ciphertext_size=target.stat().st_size,
            recipient_fingerprint=spec.recipient_fingerprint,
            signer_fingerprint=spec.signer_fingerprint if spec.sign else None,
        )
    return target, transmit.encrypt_file(facts.path, target, spec, workspace.gnupg_home)


def alert_held(workspace: Workspace, generated: GeneratedFile, facts: FileFacts) -> list[str]:
    """One alert per run naming the held families by PlanSource id, with counts and codes."""
    rules = generated.rules
    ids = list(rules.held)
    shown = ", ".join(ids[:50]) + (f" and {len(ids) - 50} more" if len(ids) > 50 else "")
    codes = ", ".join(f"{code} {count}" for code, count in sorted(rules.error_summary().items()))
    return delivery_config.send_alert(
        workspace,
        transmit.AlertEvent(
            kind="members-held",
            carrier=generated.carrier,
            message=f"{len(ids)} subscriber(s) held out of the file with their families "
            f"(subscriber ids {shown}; findings: {codes}); everyone else is in the file",
            file_id=facts.path.name,
            control_numbers={"isa13": facts.isa13},
            counts={"held_subscribers": len(ids), "held_members": rules.held_members},
            error_code="members-held",
            extra={"held": generated.held_log()[:200]},
        ),
    )


def deliver_file(
    workspace: Workspace,
    profile: CarrierProfile,
    facts: FileFacts,
    *,
    now: datetime,
    schedule_id: str | None = None,
    generated: GeneratedFile | None = None,
) -> RunOutcome:
    """Encrypt → deliver (retry) → log; a file already delivered is never sent twice."""
    log = delivery_config.delivery_log(workspace)
    plain_sha = transmit.sha256_file(facts.path)
    base = {
        "carrier": profile.name,
        "actor": actor(schedule_id),
        "plaintext_sha256": plain_sha,
        "verification": "pyx12 and profile rules: valid",
        "file_type": generated.file_type if generated else None,
        "held": (generated.held_log() or None) if generated else None,
        **facts.log_facts(),
        **(
            {
                "content_fingerprint": generated.fingerprint,
                "envelope_created_at": generated.envelope.created_at.isoformat(),
            }
            if generated
            else {}
        ),
    }
    previous = log.last_delivery(profile.name, plain_sha)
    if previous is not None:
        entry = log.append(
            "delivery",
            now=now,
            outcome="already-delivered",
            remote_final_path=previous.get("remote_final_path"),
            details={"previous_entry": previous.seq},
            **base,
        )
        log.checkpoint(now=now)
        if generated is not None and generated.file_type != "audit":
            baselines(workspace).commit(profile.name, generated.fingerprint, now)
        return RunOutcome(
            profile.name,
            "already-delivered",
            facts,
            str(previous.get("remote_final_path")),
            0,
            entry.seq,
            generated,
        )
    try:
        settings = delivery_config.sftp_settings(profile, workspace)
        mode = delivery_config.delivery_config(profile, workspace).upload_mode
        crash_point("before-encryption")
        encrypted_path, encrypted = _outbox_copy(workspace, profile, facts, plain_sha, now)
        crash_point("after-encryption")
    except transmit.TransmitError as error:
        raise DeliveryFailed(error.code, error.message, hint=error.hint) from error
    crypto = {
        "ciphertext_sha256": encrypted.ciphertext_sha256,
        "plaintext_size": encrypted.plaintext_size,
        "ciphertext_size": encrypted.ciphertext_size,
        "recipient_fingerprint": encrypted.recipient_fingerprint,
        "signer_fingerprint": encrypted.signer_fingerprint,
        "remote_host": settings.host,
        "remote_port": settings.port,
    }
    remote_dir = settings.remote_dir.rstrip("/")

    def remote(name: str | None) -> str | None:
        return f"{remote_dir}/{name}" if name else None

    def log_attempt(a: transmit.AttemptRecord) -> None:
        log.append(
            "attempt",
            now=a.ended_at,
            attempt=a.attempt,
            outcome=a.outcome,
            host_key_fingerprint=a.host_key_fingerprint or None,
            remote_temp_path=remote(a.remote_temp_path),
            remote_final_path=remote(a.remote_final_path),
            error_class=a.error_class,
            error_code=a.error_code,
            error_message=a.error_message,
            **base,
            **crypto,
        )

    try:
        result = transmit.deliver(
            encrypted_path,
            encrypted_path.name,
            lambda: instrumented(transmit.SftpDestination(settings)),
            upload_mode=mode,
            policy=delivery_config.retry_policy(profile, workspace),
            on_attempt=log_attempt,
        )
    except transmit.DeliveryError as error:
        raise DeliveryFailed(
            error.code, f"{profile.name}: {error.message}", hint=error.hint
        ) from error
    crash_point("before-log-write")
    last = result.last
    # Our bytes were already under the final name but no entry says they were delivered: a
    # run killed between the transfer and its log entry. This entry records that transfer.
    outcome = "delivered" if result.outcome == "already-delivered" else result.outcome
    sent: list[str] = []
    if workspace.settings.alerts.notify_success:
        sent = delivery_config.send_alert(
            workspace,
            transmit.AlertEvent(
                kind="delivery-succeeded",
                carrier=profile.name,
                message=f"{result.outcome}",
                file_id=facts.path.name,
                control_numbers={"isa13": facts.isa13},
            ),
        )
    entry = log.append(
        "delivery",
        now=now,
        outcome=outcome,
        **({"confirmed_by": "remote-content-sha256"} if outcome != result.outcome else {}),
        attempt=last.attempt,
        host_key_fingerprint=last.host_key_fingerprint,
        remote_temp_path=remote(last.remote_temp_path),
        remote_final_path=f"{remote_dir}/{last.remote_final_path}",
        alerts_sent=sent,
        **base,
        **crypto,
    )
    crash_point("during-log-write")
    log.checkpoint(now=now)
    if generated is not None and generated.file_type != "audit":
        baselines(workspace).commit(profile.name, generated.fingerprint, now)
    return RunOutcome(
        profile.name,
        outcome,
        facts,
        f"{remote_dir}/{last.remote_final_path}",
        len(result.attempts),
        entry.seq,
        generated,
    )


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


FAILURE_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (GuardTripped, "mass-termination-guard"),
    (SourceDataError, "validation-failed"),
    (ValidationFailed, "validation-failed"),
    (DeliveryFailed, "delivery-failed"),
    (RunLocked, "run-locked"),
    (ConfigError, "config-error"),
)


def failure_kind(error: BaseException) -> str:
    for error_class, kind in FAILURE_KINDS:
        if isinstance(error, error_class):
            return kind
    return "run-failed"


@contextlib.contextmanager
def failure_boundary(
    workspace: Workspace,
    carrier: str,
    *,
    now: datetime,
    schedule_id: str | None,
    facts: Callable[[], FileFacts | None] = lambda: None,
) -> Iterator[None]:
    """Every exception of a run, ours or not, becomes a logged and alerted failure and an
    EdiError with a code and hint (the CLI prints one line; --debug adds the traceback)."""
    try:
        yield
    except NothingToSend:
        raise
    except Exception as exc:
        error = exc if isinstance(exc, EdiError) else unexpected_failure(exc)
        record_failure(
            workspace,
            carrier,
            error,
            kind=failure_kind(error),
            now=now,
            facts=facts(),
            schedule_id=schedule_id,
        )
        if error is exc:
            raise
        raise error from exc
    finally:
        transmit.stop_gpg_agent(workspace.gnupg_home)


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
        profile = load_profile(workspace, carrier)
        config = changes_config(profile, _profile_file(workspace, carrier))
        chosen = file_type or due_file_type(workspace, carrier, config, now)

        def make(kind: FileType | None) -> GeneratedFile:
            return build(
                workspace,
                carrier,
                scratch=scratch,
                now=now,
                as_of=as_of,
                source=source,
                file_type=kind,
                progress=progress,
                allow_mass_termination=allow_mass_termination,
                reason=reason,
            )

        try:
            try:
                generated = make(chosen)
            except NothingToSend:
                if not config.send_empty:
                    raise
                # An 834 needs a member loop: a carrier that wants a file every time gets the
                # audit snapshot (BGN08 4, INS03 030), which applies no updates.
                generated = make("audit")
        except NothingToSend:
            log = delivery_config.delivery_log(workspace)
            log.append(
                "nothing-to-send",
                now=now,
                carrier=carrier,
                outcome="nothing-to-send",
                actor=actor(schedule_id),
            )
            log.checkpoint(now=now)
            raise
        if "mass_termination_reason" in generated.extra:
            delivery_config.delivery_log(workspace).append(
                "mass-termination-allowed",
                now=now,
                carrier=carrier,
                actor=actor(schedule_id),
                reason=generated.extra["mass_termination_reason"],
                isa13=generated.isa13,
                details=generated.extra.get("changes"),
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
            alert_held(workspace, generated, facts)
        return deliver_file(
            workspace, profile, facts, now=now, schedule_id=schedule_id, generated=generated
        )


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
        profile = load_profile(workspace, carrier)
        report = validate_file(file, profile)
        if not report.valid:
            raise ValidationFailed(
                "file-invalid",
                f"{file.name} failed validation with {len(report.findings)} finding(s); "
                "it was not sent",
                details=[f.line() for f in report.findings[:50]],
            )
        scanned.append(FileFacts.scan(file))
        return deliver_file(workspace, profile, scanned[0], now=now, schedule_id=schedule_id)


def _keep_held(reader: stores.BaselineLookup, records: SubscriberRecords) -> None:
    for key in (f"S{records.subscriber.id}", *(f"D{d.id}" for d in records.dependents)):
        reader.get(key)


def preview(
    workspace: Workspace,
    carrier: str,
    *,
    now: datetime,
    as_of: date | None = None,
    source: Path | None = None,
) -> ChangeSet:
    """What a change file would say now, without writing or proposing anything."""
    profile = load_profile(workspace, check_carrier_name(carrier))
    config = changes_config(profile, _profile_file(workspace, carrier))
    effective = as_of or now.date()
    store = baselines(workspace)
    has_baseline = store.has_baseline(carrier)
    reader = store.lookup(carrier)
    source_dir, _ = resolve_source(workspace, source)
    try:
        differ = StreamingDiff(
            DiffContext(profile, config, effective),
            reader.get,
            reader.others,
            reader.active_subscribers() if has_baseline else 0,
            has_baseline,
        )
        with (
            preview_scratch(workspace.state_dir) as scratch,
            read_export(source_dir, scratch, claims=profile.claims_code) as data,
        ):
            mapped = screen(
                MappingContext(profile, effective, first_file=not has_baseline),
                data.groups(),
                MappingReport(),
                RulesReport(),
                on_held=lambda records: _keep_held(reader, records),
            )
            for _ in differ.members(mapped):
                pass
    finally:
        reader.close()
    return differ.result
