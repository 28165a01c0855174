"""The pipeline: the one place, with the CLI, that touches disk, network and clock.

generate: read source → map (profile) → write body → allocate control number → write file →
validate → rename. A file that fails validation is deleted; nothing half-written is left.
"""

from __future__ import annotations

import contextlib
import getpass
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import transmit
from edi import delivery_config
from edi.baseline import BaselineStore, ProposalWriter
from edi.changes import (
    ChangesConfig,
    ChangeSet,
    DiffContext,
    MemberChange,
    StreamingDiff,
    changes_config,
    check_guard,
)
from edi.errors import (
    DeliveryFailed,
    EdiError,
    GuardTripped,
    NothingToSend,
    SourceDataError,
    ValidationFailed,
)
from edi.mapping import MappingContext, map_members
from edi.members import FileType, MappingReport, Member
from edi.plansource.export import read_export
from edi.profiles import CarrierProfile, load_profile
from edi.validate import ValidationReport, validate_file
from edi.workspace import Workspace
from edi.x12.control import ControlNumbers
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
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def isa13(self) -> str:
        return self.envelope.isa13

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
            "quarantined": list(r.quarantined),
            "segments": self.se01,
            "sample_data": self.sample_data,
            "valid": self.validation.valid,
            **({"diff": self.extra["changes"]} if "changes" in self.extra else {}),
            **self._diff_counts(),
        }

    def _diff_counts(self) -> dict[str, object]:
        """A change file's counts are the diff's (what the file says), as `edi diff` shows
        them, not the mapping's counts of every member in the source."""
        diff = self.extra.get("changes")
        if not isinstance(diff, dict):
            return {}
        keys = ("additions", "changes", "terminations", "reinstatements", "disappearances")
        return {key: diff[key] for key in keys if key in diff}


def tracked(items: Iterable[T], total: int, progress: Progress | None) -> Iterator[T]:
    for done, item in enumerate(items, start=1):
        yield item
        if progress is not None and (done % 500 == 0 or done == total):
            progress(done, total)


def control_numbers(workspace: Workspace) -> ControlNumbers:
    return ControlNumbers(workspace.state_dir / "control.sqlite")


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
    file_type: FileType,
    now: datetime,
    before_envelope: Callable[[Body], None] | None = None,
) -> tuple[Path, Envelope, str, Body, int, ValidationReport]:
    """Members → a validated 834 under its final name in out_dir, or nothing at all."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = out_dir / f".{profile.name}.{uuid.uuid4().hex}"
    body_path, part_path = scratch.with_suffix(".body"), scratch.with_suffix(".part")
    try:
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
        se01 = write_file(profile, file_type, body, envelope, part_path)
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
        part_path.replace(final)
        return final, envelope, fingerprint, body, se01, validation
    finally:
        for leftover in (body_path, part_path):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def baselines(workspace: Workspace) -> BaselineStore:
    return BaselineStore(workspace.state_dir / "baseline.sqlite")


def _profile_file(workspace: Workspace, carrier: str) -> Path:
    return workspace.carriers_dir / f"{carrier}.toml"


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
    target = out_dir or workspace.home / "out" / carrier
    store = baselines(workspace)
    has_baseline = store.has_baseline(carrier)
    reader = store.lookup(carrier)
    proposal = None if chosen == "audit" else ProposalWriter(store.path, carrier, uuid.uuid4().hex)
    diff_ctx = DiffContext(profile, config, effective)
    differ = StreamingDiff(
        diff_ctx,
        reader.get,
        reader.others,
        reader.active_members() if has_baseline else 0,
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

    try:
        with read_export(source_dir, claims=profile.claims_code) as data:
            groups = tracked(data.groups(), len(data), progress)
            mapping_type: FileType = "audit" if chosen == "audit" else "full"
            members: Iterable[Member] = map_members(
                MappingContext(profile, effective, mapping_type), groups, report
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
                file_type=chosen,
                now=now,
                before_envelope=guard,
            )
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
    """No failure goes unlogged and unalerted; the alert names codes and ids, never PHI."""
    log = delivery_config.delivery_log(workspace)
    control = {"isa13": facts.isa13, "gs06": facts.gs06, "st02": facts.st02} if facts else {}
    sent = delivery_config.send_alert(
        workspace,
        transmit.AlertEvent(
            kind=kind,
            carrier=carrier,
            message=error.message,
            file_id=facts.path.name if facts else None,
            control_numbers={k: v for k, v in control.items() if v},
            counts={"members": facts.members, "coverage_lines": facts.coverage_lines}
            if facts
            else {},
            error_code=error.code,
            error_class=type(error).__name__,
        ),
    )
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
        **facts.log_facts(),
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
        encrypted_path, encrypted = _outbox_copy(workspace, profile, facts, plain_sha, now)
    except transmit.TransmitError as error:
        record_failure(
            workspace,
            profile.name,
            error,
            kind="delivery-failed",
            now=now,
            facts=facts,
            schedule_id=schedule_id,
        )
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
            lambda: transmit.SftpDestination(settings),
            upload_mode=mode,
            policy=delivery_config.retry_policy(profile, workspace),
            on_attempt=log_attempt,
        )
    except transmit.DeliveryError as error:
        record_failure(
            workspace,
            profile.name,
            error,
            kind="delivery-failed",
            now=now,
            facts=facts,
            schedule_id=schedule_id,
        )
        raise DeliveryFailed(
            error.code, f"{profile.name}: {error.message}", hint=error.hint
        ) from error
    last = result.last
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
        outcome=result.outcome,
        attempt=last.attempt,
        host_key_fingerprint=last.host_key_fingerprint,
        remote_temp_path=remote(last.remote_temp_path),
        remote_final_path=f"{remote_dir}/{last.remote_final_path}",
        alerts_sent=sent,
        **base,
        **crypto,
    )
    log.checkpoint(now=now)
    if generated is not None and generated.file_type != "audit":
        baselines(workspace).commit(profile.name, generated.fingerprint, now)
    return RunOutcome(
        profile.name,
        result.outcome,
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
    """generate → validate → encrypt → deliver → log; any failure is logged and alerted.
    An empty change file raises NothingToSend (exit 0), logged as nothing-to-send."""
    profile = load_profile(workspace, carrier)
    config = changes_config(profile, _profile_file(workspace, carrier))
    chosen = file_type or due_file_type(workspace, carrier, config, now)

    def make(kind: FileType | None) -> GeneratedFile:
        return generate(
            workspace,
            carrier,
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
    except GuardTripped as error:
        record_failure(
            workspace,
            carrier,
            error,
            kind="mass-termination-guard",
            now=now,
            schedule_id=schedule_id,
        )
        raise
    except (SourceDataError, ValidationFailed) as error:
        record_failure(
            workspace, carrier, error, kind="validation-failed", now=now, schedule_id=schedule_id
        )
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
    return deliver_file(
        workspace, profile, facts, now=now, schedule_id=schedule_id, generated=generated
    )


def send(
    workspace: Workspace, carrier: str, file: Path, *, now: datetime, schedule_id: str | None = None
) -> RunOutcome:
    """Deliver an existing file; it is validated first, and never sent when invalid."""
    profile = load_profile(workspace, carrier)
    report = validate_file(file, profile)
    if not report.valid:
        error = ValidationFailed(
            "file-invalid",
            f"{file.name} failed validation with {len(report.findings)} finding(s); "
            "it was not sent",
            details=[f.line() for f in report.findings[:50]],
        )
        record_failure(
            workspace, carrier, error, kind="validation-failed", now=now, schedule_id=schedule_id
        )
        raise error
    return deliver_file(workspace, profile, FileFacts.scan(file), now=now, schedule_id=schedule_id)


def preview(
    workspace: Workspace,
    carrier: str,
    *,
    now: datetime,
    as_of: date | None = None,
    source: Path | None = None,
) -> ChangeSet:
    """What a change file would say now, without writing or proposing anything."""
    profile = load_profile(workspace, carrier)
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
            reader.active_members() if has_baseline else 0,
            has_baseline,
        )
        with read_export(source_dir, claims=profile.claims_code) as data:
            mapped = map_members(MappingContext(profile, effective), data.groups(), MappingReport())
            if not has_baseline:
                return first_file_preview(mapped)
            for _ in differ.members(mapped):
                pass
    finally:
        reader.close()
    return differ.result


FIRST_FILE_KINDS = {"021": "addition", "024": "termination", "025": "reinstatement"}


def first_file_preview(members: Iterable[Member]) -> ChangeSet:
    """With no baseline the first file is a full file of every member as mapped, so the preview
    counts exactly what `edi generate` writes (its INS03 per member)."""
    result = ChangeSet(has_baseline=False)
    for member in members:
        kind = FIRST_FILE_KINDS.get(member.maintenance, "change")
        result.changes.append(
            MemberChange(kind, member, len(member.coverages))  # type: ignore[arg-type]
        )
    return result
