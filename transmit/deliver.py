"""Delivery, written once over `Destination` (rclone's copy: temp name → check → rename).

Per attempt: open; if the final name already holds a file, its content is read back and
hashed: the same bytes were delivered before (a crash after upload, or a re-run): record it,
send nothing. A different file under the final name is never overwritten: a permanent error.
Otherwise remove partials a killed run of ours left for this name, upload to a temporary name
unique to the attempt, check the remote size, rename to the final name. `direct` mode uploads
under the final name for drop boxes that move files on arrival. A failed attempt removes its
partial.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import re
import uuid
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


def temp_name(final_name: str, attempt_id: str = "") -> str:
    """Our temporary remote name for `final_name`; unique per attempt when given an id."""
    return f".{final_name}.{attempt_id}.part" if attempt_id else f".{final_name}.part"


def _is_our_partial(remote_name: str, final_name: str) -> bool:
    pattern = rf"\.{re.escape(final_name)}(\.[0-9a-f]{{12}})?\.part"
    return re.fullmatch(pattern, remote_name) is not None


def _remove_stale_partials(destination: Destination, final_name: str) -> None:
    with contextlib.suppress(DeliveryError, OSError):
        for entry in destination.list(f".{glob.escape(final_name)}.*"):
            if _is_our_partial(entry.name, final_name):
                destination.remove(entry.name)


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _attempt_once(
    destination: Destination,
    local: Path,
    final_name: str,
    mode: UploadMode,
    *,
    local_sha256: str,
    partial: str,
) -> Outcome:
    size = local.stat().st_size
    existing = destination.stat(final_name)
    if existing is not None:
        if existing.size == size and destination.sha256(final_name) == local_sha256:
            return "already-delivered"
        raise PermanentDeliveryError(
            "remote-file-conflict",
            f"{final_name} already exists on {destination.description} with other content",
            hint="A file under our name with other content is never overwritten: find out "
            "who wrote it (a lost control-number store?) before sending again.",
        )
    if mode == "direct":
        destination.put(local, final_name)
        return "delivered"
    _remove_stale_partials(destination, final_name)
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
    local_sha256 = sha256_of(local)

    def attempt(number: int) -> Outcome:
        started = clock()
        remote, fingerprint = "", ""
        partial = temp_name(final_name, uuid.uuid4().hex[:12])
        try:
            destination = open_destination()
            remote = destination.description
            fingerprint = getattr(destination, "host_key_fingerprint", "")
            try:
                outcome = _attempt_once(
                    destination,
                    local,
                    final_name,
                    upload_mode,
                    local_sha256=local_sha256,
                    partial=partial,
                )
            finally:
                with contextlib.suppress(Exception):
                    destination.close()
        except DeliveryError as error:
            record(number, started, "failed", remote, fingerprint, partial, error)
            raise
        record(number, started, outcome, remote, fingerprint, partial, None)
        return outcome

    def record(
        number: int,
        started: datetime,
        outcome: str,
        remote: str,
        fingerprint: str,
        partial: str,
        error: DeliveryError | None,
    ) -> None:
        entry = AttemptRecord(
            attempt=number,
            started_at=started,
            ended_at=clock(),
            outcome=outcome,
            remote=remote,
            remote_temp_path=None if upload_mode == "direct" else partial,
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
