"""Delivery, written once over `Destination` (rclone's copy: temp name → check → rename).

Per attempt: open; if the final name already holds a file of our size it was delivered
before (a crash after upload, or a re-run): record it, send nothing. A different file under
the final name is a carrier's file: never overwritten, a permanent error. Otherwise upload to a
temporary name, check the remote size, rename to the final name. `direct` mode uploads under
the final name for drop boxes that move files on arrival. A failed attempt removes its partial.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from transmit.destination import Destination
from transmit.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from transmit.retry import RetryPolicy

UploadMode = Literal["rename", "direct"]
Outcome = Literal["delivered", "already-delivered", "failed"]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    attempt: int
    started_at: datetime
    ended_at: datetime
    outcome: str  # delivered | already-delivered | failed
    remote: str
    remote_temp_path: str | None
    remote_final_path: str
    host_key_fingerprint: str = ""
    error_class: str | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass(slots=True)
class DeliveryResult:
    outcome: Outcome
    attempts: list[AttemptRecord] = field(default_factory=list)

    @property
    def last(self) -> AttemptRecord:
        return self.attempts[-1]


def temp_name(final_name: str) -> str:
    return f".{final_name}.part"


def _attempt_once(
    destination: Destination, local: Path, final_name: str, mode: UploadMode
) -> Outcome:
    size = local.stat().st_size
    existing = destination.stat(final_name)
    if existing is not None:
        if existing.size == size:
            return "already-delivered"
        raise PermanentDeliveryError(
            "remote-file-conflict",
            f"{final_name} already exists on {destination.description} with another size",
            hint="A carrier's file is never overwritten; rename ours or ask the carrier.",
        )
    if mode == "direct":
        destination.put(local, final_name)
        return "delivered"
    partial = temp_name(final_name)
    try:
        destination.put(local, partial)
        uploaded = destination.stat(partial)
        if uploaded is None or uploaded.size != size:
            raise TransientDeliveryError(
                "size-mismatch", f"{partial} on {destination.description} is not {size} bytes"
            )
        destination.rename(partial, final_name)
    except DeliveryError:
        with contextlib.suppress(DeliveryError, OSError):
            destination.remove(partial)
        raise
    return "delivered"


def deliver(
    local: Path,
    final_name: str,
    open_destination: Callable[[], Destination],
    *,
    upload_mode: UploadMode = "rename",
    policy: RetryPolicy | None = None,
    on_attempt: Callable[[AttemptRecord], None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DeliveryResult:
    """Deliver `local` as `final_name`; every attempt is reported to `on_attempt`.
    Raises the last DeliveryError when the policy gives up or the error is permanent."""
    result = DeliveryResult(outcome="failed")

    def attempt(number: int) -> Outcome:
        started = clock()
        remote, fingerprint = "", ""
        try:
            destination = open_destination()
            remote = destination.description
            fingerprint = getattr(destination, "host_key_fingerprint", "")
            try:
                outcome = _attempt_once(destination, local, final_name, upload_mode)
            finally:
                with contextlib.suppress(Exception):
                    destination.close()
        except DeliveryError as error:
            record(number, started, "failed", remote, fingerprint, error)
            raise
        record(number, started, outcome, remote, fingerprint, None)
        return outcome

    def record(
        number: int,
        started: datetime,
        outcome: str,
        remote: str,
        fingerprint: str,
        error: DeliveryError | None,
    ) -> None:
        entry = AttemptRecord(
            attempt=number,
            started_at=started,
            ended_at=clock(),
            outcome=outcome,
            remote=remote,
            remote_temp_path=None if upload_mode == "direct" else temp_name(final_name),
            remote_final_path=final_name,
            host_key_fingerprint=fingerprint,
            error_class=type(error).__name__ if error else None,
            error_code=error.code if error else None,
            error_message=error.message if error else None,
        )
        result.attempts.append(entry)
        if on_attempt is not None:
            on_attempt(entry)

    result.outcome = (policy or RetryPolicy()).run(attempt)
    return result
