"""TA1 and 999 acknowledgments: parsed, matched to deliveries, logged, alerted.

TA1 answers an interchange (matched by ISA13); a 999 answers a group and its transaction sets
(AK1 names our GS06, AK2 our ST02; IK5/AK9 carry the verdict). Unmatched acks are kept and
reported, never dropped. Overdue acks are alerted once.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import transmit
from edi.errors import ConfigError, ValidationFailed
from edi.profiles import CarrierProfile
from edi.workspace import StrictModel, Workspace
from edi.x12.reader import segments_from_text

AckStatus = Literal["accepted", "accepted-with-errors", "rejected"]
VERDICTS: dict[str, AckStatus] = {
    "A": "accepted",
    "E": "accepted-with-errors",
    "P": "accepted-with-errors",
    "R": "rejected",
    "M": "rejected",
    "W": "rejected",
    "X": "rejected",
}


class AcksConfig(StrictModel):
    remote_dir: str = "/outbound"
    pattern: str = "*"
    delete_after_fetch: bool = False
    expected_within: str | None = None


@dataclass(frozen=True, slots=True)
class Ack:
    kind: Literal["TA1", "999"]
    status: AckStatus
    isa13: str | None = None  # TA1: the interchange it answers
    gs06: str | None = None  # 999: AK102
    st02s: tuple[str, ...] = ()  # 999: AK202 of each set
    codes: tuple[str, ...] = field(default_factory=tuple)  # TA105, IK3/IK4/IK5/AK9 codes


def parse_ack(text: str) -> list[Ack]:
    try:
        segments = list(segments_from_text(text))
    except ValidationFailed:
        return []
    acks: list[Ack] = []
    group: dict[str, Any] | None = None
    for seg in segments:
        tag = seg[0]
        if tag == "TA1" and len(seg) > 5:
            acks.append(Ack("TA1", VERDICTS.get(seg[4], "rejected"), isa13=seg[1], codes=(seg[5],)))
        elif tag == "AK1" and len(seg) > 2:
            group = {"gs06": seg[2], "st02s": [], "codes": [], "verdicts": []}
        elif group is not None and tag == "AK2" and len(seg) > 2:
            group["st02s"].append(seg[2])
        elif group is not None and tag in ("IK3", "IK4"):
            group["codes"].append(f"{tag}:{seg[-1]}")
        elif group is not None and tag == "IK5" and len(seg) > 1:
            group["verdicts"].append(seg[1])
            group["codes"].extend(f"IK5:{code}" for code in seg[2:] if code)
        elif group is not None and tag == "AK9" and len(seg) > 1:
            verdict = seg[1]
            acks.append(
                Ack(
                    "999",
                    VERDICTS.get(verdict, "rejected"),
                    gs06=group["gs06"],
                    st02s=tuple(group["st02s"]),
                    codes=tuple(group["codes"] + [f"AK9:{c}" for c in seg[5:] if c]),
                )
            )
            group = None
    return acks


def acks_config(profile: CarrierProfile) -> AcksConfig:
    try:
        return AcksConfig.model_validate(profile.acks or {})
    except Exception as exc:
        raise ConfigError(
            "profile-invalid-acks", f"carriers/{profile.name}.toml: [acks]: {exc}"
        ) from None


def _delivery_for(log: transmit.DeliveryLog, carrier: str, ack: Ack) -> transmit.LogEntry | None:
    for entry in reversed(log.entries(carrier=carrier, event="delivery")):
        if entry.get("outcome") not in ("delivered", "already-delivered"):
            continue
        if ack.kind == "TA1" and entry.get("isa13") == ack.isa13:
            return entry
        if (
            ack.kind == "999"
            and entry.get("gs06") == ack.gs06
            and (not ack.st02s or entry.get("st02") in ack.st02s)
        ):
            return entry
    return None


@dataclass(slots=True)
class AckReport:
    matched: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)


def record_acks(workspace: Workspace, carrier: str, files: list[Path], now: datetime) -> AckReport:
    """Match fetched ack files to deliveries; log each; alert on rejection; keep the rest."""
    from edi.delivery_config import delivery_log, send_alert

    log, report = delivery_log(workspace), AckReport()
    for path in files:
        acks = parse_ack(path.read_text(errors="replace"))
        matches = [(ack, _delivery_for(log, carrier, ack)) for ack in acks]
        if not acks or any(entry is None for _, entry in matches):
            kept = workspace.state_dir / "acks" / "unmatched" / path.name
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, kept)
            report.unmatched.append(path.name)
        for ack, entry in matches:
            if entry is None:
                continue
            sent: list[str] = []
            if ack.status == "rejected":
                sent = send_alert(
                    workspace,
                    transmit.AlertEvent(
                        kind="ack-rejected",
                        carrier=carrier,
                        message=f"{ack.kind} rejected the file",
                        file_id=entry.get("file_id"),
                        control_numbers={"isa13": entry.get("isa13", "")},
                        error_code=",".join(ack.codes) or None,
                    ),
                )
                report.alerts.extend(sent)
            log.append(
                "ack",
                now=now,
                carrier=carrier,
                ack_status=ack.status,
                ack_kind=ack.kind,
                isa13=entry.get("isa13"),
                gs06=entry.get("gs06"),
                st02=entry.get("st02"),
                file_id=entry.get("file_id"),
                ack_file=path.name,
                ack_codes=list(ack.codes),
                delivery_entry=entry.seq,
                alerts_sent=sent,
                outcome=ack.status,
            )
            report.matched.append(
                {
                    "file": path.name,
                    "kind": ack.kind,
                    "status": ack.status,
                    "delivery_entry": entry.seq,
                    "isa13": entry.get("isa13"),
                }
            )
    log.checkpoint(now=now)
    return report


def fetch_acks(workspace: Workspace, profile: CarrierProfile, now: datetime) -> AckReport:
    """Download acks over the profile's pinned SFTP connection (temp + rename) and record them."""
    from edi.delivery_config import sftp_settings

    config = acks_config(profile)
    settings = sftp_settings(profile, workspace)
    settings = replace(settings, remote_dir=config.remote_dir)
    inbox = workspace.state_dir / "acks" / profile.name
    inbox.mkdir(parents=True, exist_ok=True)
    fetched: list[Path] = []
    destination = transmit.SftpDestination(settings)
    try:
        for remote in destination.list(config.pattern):
            target = inbox / remote.name
            partial = inbox / f".{remote.name}.part"
            destination.get(remote.name, partial)
            partial.replace(target)
            fetched.append(target)
            if config.delete_after_fetch:
                destination.remove(remote.name)
    finally:
        destination.close()
    return record_acks(workspace, profile.name, fetched, now)


def overdue_acks(workspace: Workspace, carrier: str, window: timedelta, now: datetime) -> list[int]:
    """Deliveries with no ack inside the window; each is alerted and logged once."""
    from edi.delivery_config import delivery_log, send_alert

    log = delivery_log(workspace)
    entries = log.entries(carrier=carrier)
    answered = {e.get("delivery_entry") for e in entries if e.get("event") == "ack"}
    flagged = {e.get("delivery_entry") for e in entries if e.get("event") == "ack-overdue"}
    overdue = []
    for entry in entries:
        if entry.get("event") != "delivery" or entry.get("outcome") != "delivered":
            continue
        sent_at = datetime.fromisoformat(entry.get("recorded_at"))
        if entry.seq in answered or entry.seq in flagged or now - sent_at <= window:
            continue
        sent = send_alert(
            workspace,
            transmit.AlertEvent(
                kind="ack-overdue",
                carrier=carrier,
                message=f"no TA1/999 within {window} of delivery",
                file_id=entry.get("file_id"),
                control_numbers={"isa13": entry.get("isa13", "")},
            ),
        )
        log.append(
            "ack-overdue",
            now=now,
            carrier=carrier,
            delivery_entry=entry.seq,
            isa13=entry.get("isa13"),
            file_id=entry.get("file_id"),
            outcome="overdue",
            alerts_sent=sent,
        )
        overdue.append(entry.seq)
    return overdue
