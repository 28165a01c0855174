"""`edi check --carrier NAME`: the "test connection" of an MFT console, one check per step.

resolve → connect → host key (pinned) → authenticate → remote folder → writable (a probe file
written and removed, unless told not to) → acks folder → PGP key (pin, expiry) → alert channels.
A step that cannot run because an earlier one failed is "skipped", never a false pass.
"""

from __future__ import annotations

import secrets
import socket
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import transmit
from edi import delivery_config
from edi.errors import EdiError
from edi.profiles import CarrierProfile
from edi.workspace import Workspace

EXPIRY_WARNING_DAYS = 30

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skipped"
MARKS = {PASS: "✓", FAIL: "✗", WARN: "!", SKIP: "-"}


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str
    detail: str
    hint: str = ""

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def as_dict(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail, "hint": self.hint}


def _error_check(name: str, error: Exception) -> Check:
    if isinstance(error, FileNotFoundError) or isinstance(error.__cause__, FileNotFoundError):
        return Check(
            name,
            FAIL,
            "the folder does not exist on the server",
            "Check remote_dir ([delivery] or [acks]) with the carrier; paths are as the SFTP "
            "server shows them (often relative to the login folder).",
        )
    if isinstance(error, EdiError | transmit.TransmitError):
        return Check(name, FAIL, f"[{error.code}] {error.message}", error.hint)
    return Check(name, FAIL, type(error).__name__)


def run_checks(
    workspace: Workspace,
    profile: CarrierProfile,
    *,
    write: bool = True,
    send_alerts: bool = False,
    now: datetime | None = None,
) -> list[Check]:
    checks: list[Check] = []
    checks.extend(_sftp_checks(workspace, profile, write))
    checks.append(_pgp_check(workspace, profile, now or datetime.now(UTC)))
    checks.extend(_alert_checks(workspace, profile, send_alerts))
    return checks


def _sftp_checks(workspace: Workspace, profile: CarrierProfile, write: bool) -> list[Check]:
    names = ("resolve", "connect", "host key", "authenticate", "remote folder", "writable")
    checks: list[Check] = []

    def skip_rest() -> list[Check]:
        done = {c.name for c in checks}
        rest = [Check(n, SKIP, "an earlier check failed") for n in names if n not in done]
        if profile.acks is not None:
            rest.append(Check("acks folder", SKIP, "an earlier check failed"))
        return checks + rest

    try:
        settings = delivery_config.sftp_settings(profile, workspace)
    except EdiError as error:
        checks.append(_error_check("delivery settings", error))
        return skip_rest()
    try:
        addresses = sorted({str(a[4][0]) for a in socket.getaddrinfo(settings.host, settings.port)})
    except OSError as error:
        checks.append(
            Check(
                "resolve",
                FAIL,
                f"{settings.host}: {type(error).__name__}",
                "Check [delivery] host and this machine's DNS.",
            )
        )
        return skip_rest()
    checks.append(Check("resolve", PASS, f"{settings.host} → {', '.join(addresses)}"))
    try:
        with socket.create_connection(
            (settings.host, settings.port), timeout=settings.connect_timeout_s
        ):
            pass
    except OSError as error:
        checks.append(
            Check(
                "connect",
                FAIL,
                f"{settings.host}:{settings.port}: {type(error).__name__}",
                "Is the port right, and does the carrier allow this machine's address?",
            )
        )
        return skip_rest()
    checks.append(Check("connect", PASS, f"TCP {settings.host}:{settings.port}"))
    try:
        destination = transmit.SftpDestination(settings)
    except transmit.DeliveryError as error:
        step = {"host-key-mismatch": "host key", "auth-failed": "authenticate"}.get(error.code)
        if step == "authenticate":
            checks.append(Check("host key", PASS, f"matches the pin {settings.host_key}"))
        checks.append(_error_check(step or "host key", error))
        return skip_rest()
    try:
        checks.append(
            Check("host key", PASS, f"{destination.host_key_fingerprint} matches the pin")
        )
        checks.append(Check("authenticate", PASS, f"as {settings.username}"))
        checks.extend(_folder_checks(destination, settings.remote_dir, write))
    finally:
        destination.close()
    if profile.acks is not None:
        checks.append(_acks_check(profile, settings))
    return checks


def _folder_checks(
    destination: transmit.SftpDestination, remote_dir: str, write: bool
) -> list[Check]:
    try:
        listed = destination.list()
    except transmit.DeliveryError as error:
        return [
            _error_check("remote folder", error),
            Check("writable", SKIP, "the remote folder is not readable"),
        ]
    checks = [Check("remote folder", PASS, f"{remote_dir} exists ({len(listed)} files)")]
    if not write:
        return [*checks, Check("writable", SKIP, "--no-write: no probe file written")]
    probe = f".edi-check-{secrets.token_hex(4)}.tmp"
    with tempfile.TemporaryDirectory(prefix="edi-check-") as scratch:
        local = Path(scratch) / probe
        local.write_bytes(b"edi check probe; safe to delete\n")
        try:
            destination.put(local, probe)
            stat = destination.stat(probe)
            destination.remove(probe)
        except transmit.DeliveryError as error:
            return [*checks, _error_check("writable", error)]
    if stat is None or stat.size != len(b"edi check probe; safe to delete\n"):
        return [*checks, Check("writable", FAIL, f"the probe {probe} did not arrive whole")]
    return [*checks, Check("writable", PASS, f"wrote and removed {remote_dir}/{probe}")]


def _acks_check(profile: CarrierProfile, settings: transmit.SftpSettings) -> Check:
    from edi.acks import acks_config

    try:
        config = acks_config(profile)
        destination = transmit.SftpDestination(replace(settings, remote_dir=config.remote_dir))
    except (EdiError, transmit.DeliveryError) as error:
        return _error_check("acks folder", error)
    try:
        found = destination.list(config.pattern)
    except transmit.DeliveryError as error:
        return _error_check("acks folder", error)
    finally:
        destination.close()
    return Check(
        "acks folder", PASS, f"{config.remote_dir} readable ({len(found)} {config.pattern})"
    )


def _pgp_check(workspace: Workspace, profile: CarrierProfile, now: datetime) -> Check:
    try:
        spec = delivery_config.encryption_spec(profile, workspace)
        facts = transmit.check_key_file(
            spec.public_key_file, spec.recipient_fingerprint, now.timestamp()
        )
    except (EdiError, transmit.TransmitError) as error:
        return _error_check("PGP key", error)
    if facts.expires_at is None:
        return Check("PGP key", PASS, f"{facts.fingerprint} matches the pin, never expires")
    expires = datetime.fromtimestamp(facts.expires_at, UTC)
    days = (expires - now).total_seconds() / 86400
    detail = f"{facts.fingerprint} matches the pin, expires {expires:%Y-%m-%d}"
    if days < EXPIRY_WARNING_DAYS:
        return Check(
            "PGP key",
            WARN,
            f"{detail} (in {max(days, 0):.0f} days)",
            "Ask the carrier for their renewed key before it expires.",
        )
    return Check("PGP key", PASS, detail)


def _alert_checks(workspace: Workspace, profile: CarrierProfile, send: bool) -> list[Check]:
    alerter = delivery_config.alerter(workspace)
    if not alerter.channels:
        return [
            Check(
                "alerts",
                WARN,
                "no alert channel configured: failures would go unnoticed",
                "Set [alerts] email_to or webhook_url in edi.toml.",
            )
        ]
    if not send:
        names = ", ".join(c.name for c in alerter.channels)
        return [Check("alerts", PASS, f"configured: {names} (--alerts sends a test alert)")]
    event = transmit.AlertEvent(
        kind="test",
        carrier=profile.name,
        message="edi check: a test alert; nothing went wrong",
    )
    return [
        Check(
            f"alert {o.channel}",
            PASS if o.ok else FAIL,
            "test alert sent" if o.ok else f"sending failed: {o.error}",
            "" if o.ok else "Check [smtp] / the webhook URL in edi.toml.",
        )
        for o in alerter.send(event)
    ]
