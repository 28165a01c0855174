"""The delivery: encrypt → deliver (retry) → log; a file already delivered is never sent twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import transmit
from edi import delivery_config
from edi.errors import DeliveryFailed
from edi.faults import crash_point, instrumented
from edi.pipeline.build import GeneratedFile
from edi.pipeline.context import RunContext
from edi.profiles import CarrierProfile
from edi.workspace import Workspace


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


def alert_held(ctx: RunContext, generated: GeneratedFile, facts: FileFacts) -> list[str]:
    """One alert per run naming the held families by PlanSource id, with counts and codes."""
    rules = generated.rules
    ids = list(rules.held)
    shown = ", ".join(ids[:50]) + (f" and {len(ids) - 50} more" if len(ids) > 50 else "")
    codes = ", ".join(f"{code} {count}" for code, count in sorted(rules.error_summary().items()))
    return ctx.alert(
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
    ctx: RunContext, facts: FileFacts, generated: GeneratedFile | None = None
) -> RunOutcome:
    """Encrypt → deliver (retry) → log; a file already delivered is never sent twice."""
    plain_sha = transmit.sha256_file(facts.path)
    base = _entry_facts(ctx, facts, plain_sha, generated)
    previous = ctx.log.last_delivery(ctx.carrier, plain_sha)
    if previous is not None:
        return _already_delivered(ctx, facts, previous, base, generated)
    try:
        settings = delivery_config.sftp_settings(ctx.profile, ctx.workspace)
        crash_point("before-encryption")
        encrypted_path, encrypted = _outbox_copy(
            ctx.workspace, ctx.profile, facts, plain_sha, ctx.now
        )
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
    remote = RemotePaths(settings.remote_dir.rstrip("/"))
    result = _transfer(ctx, settings, encrypted_path, remote, {**base, **crypto})
    crash_point("before-log-write")
    # Our bytes were already under the final name but no entry says they were delivered: a
    # run killed between the transfer and its log entry. This entry records that transfer.
    outcome = "delivered" if result.outcome == "already-delivered" else result.outcome
    last = result.last
    entry = ctx.log.append(
        "delivery",
        now=ctx.now,
        outcome=outcome,
        **({"confirmed_by": "remote-content-sha256"} if outcome != result.outcome else {}),
        attempt=last.attempt,
        host_key_fingerprint=last.host_key_fingerprint,
        remote_temp_path=remote(last.remote_temp_path),
        remote_final_path=remote(last.remote_final_path),
        alerts_sent=_announce_success(ctx, facts, result.outcome),
        **base,
        **crypto,
    )
    crash_point("during-log-write")
    ctx.log.checkpoint(now=ctx.now)
    _commit_baseline(ctx, generated)
    return RunOutcome(
        ctx.carrier,
        outcome,
        facts,
        str(remote(last.remote_final_path)),
        len(result.attempts),
        entry.seq,
        generated,
    )


@dataclass(frozen=True, slots=True)
class RemotePaths:
    remote_dir: str

    def __call__(self, name: str | None) -> str | None:
        return f"{self.remote_dir}/{name}" if name else None


def _entry_facts(
    ctx: RunContext, facts: FileFacts, plain_sha: str, generated: GeneratedFile | None
) -> dict[str, object]:
    """What every entry of this delivery says about the file (ids, hashes, counts)."""
    return {
        "carrier": ctx.carrier,
        "actor": ctx.actor(),
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


def _already_delivered(
    ctx: RunContext,
    facts: FileFacts,
    previous: transmit.LogEntry,
    base: dict[str, object],
    generated: GeneratedFile | None,
) -> RunOutcome:
    entry = ctx.log.append(
        "delivery",
        now=ctx.now,
        outcome="already-delivered",
        remote_final_path=previous.get("remote_final_path"),
        details={"previous_entry": previous.seq},
        **base,
    )
    ctx.log.checkpoint(now=ctx.now)
    _commit_baseline(ctx, generated)
    return RunOutcome(
        ctx.carrier,
        "already-delivered",
        facts,
        str(previous.get("remote_final_path")),
        0,
        entry.seq,
        generated,
    )


def _transfer(
    ctx: RunContext,
    settings: transmit.SftpSettings,
    encrypted_path: Path,
    remote: RemotePaths,
    facts: dict[str, object],
) -> transmit.DeliveryResult:
    """The upload with the profile's retry policy; every attempt is a log entry."""

    def log_attempt(a: transmit.AttemptRecord) -> None:
        ctx.log.append(
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
            **facts,
        )

    try:
        return transmit.deliver(
            encrypted_path,
            encrypted_path.name,
            lambda: instrumented(transmit.SftpDestination(settings)),
            upload_mode=delivery_config.delivery_config(ctx.profile, ctx.workspace).upload_mode,
            policy=delivery_config.retry_policy(ctx.profile, ctx.workspace),
            on_attempt=log_attempt,
        )
    except transmit.DeliveryError as error:
        raise DeliveryFailed(
            error.code, f"{ctx.carrier}: {error.message}", hint=error.hint
        ) from error


def _announce_success(ctx: RunContext, facts: FileFacts, outcome: str) -> list[str]:
    if not ctx.workspace.settings.alerts.notify_success:
        return []
    return ctx.alert(
        transmit.AlertEvent(
            kind="delivery-succeeded",
            carrier=ctx.carrier,
            message=outcome,
            file_id=facts.path.name,
            control_numbers={"isa13": facts.isa13},
        )
    )


def _commit_baseline(ctx: RunContext, generated: GeneratedFile | None) -> None:
    """Only a delivered (or found delivered) file moves the baseline; audits never do."""
    if generated is not None and generated.file_type != "audit":
        ctx.stores.baselines.commit(ctx.carrier, generated.fingerprint, ctx.now)
