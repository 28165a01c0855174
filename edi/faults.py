"""Named points where the kill -9 tests stop a run dead (`EDI_CRASH_AT=<point>`).

Production never sets the variable; the integrity tests set it to prove that a run killed at
any of these points leaves nothing wrong, lost or unlogged behind, and that the next run
finishes the job exactly once.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import transmit

CRASH_ENV = "EDI_CRASH_AT"

POINTS = (
    "during-generate",
    "after-control-number",
    "before-validation",
    "before-encryption",
    "after-encryption",
    "mid-upload",
    "after-rename",
    "before-log-write",
    "during-log-write",
)


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


class _CrashingDestination:
    """Passes every call through, stopping dead after the upload or the rename when asked."""

    def __init__(self, inner: transmit.Destination) -> None:
        self.inner = inner
        self.description = inner.description
        self.can_rename = inner.can_rename
        self.host_key_fingerprint: str = getattr(inner, "host_key_fingerprint", "")

    def put(self, local: Path, remote_name: str) -> None:
        self.inner.put(local, remote_name)
        crash_point("mid-upload")

    def stat(self, remote_name: str) -> transmit.RemoteStat | None:
        return self.inner.stat(remote_name)

    def rename(self, src: str, dst: str) -> None:
        self.inner.rename(src, dst)
        crash_point("after-rename")

    def remove(self, remote_name: str) -> None:
        self.inner.remove(remote_name)

    def list(self, pattern: str = "*") -> list[transmit.RemoteStat]:
        return self.inner.list(pattern)

    def get(self, remote_name: str, local: Path) -> None:
        self.inner.get(remote_name, local)

    def sha256(self, remote_name: str) -> str:
        return self.inner.sha256(remote_name)

    def close(self) -> None:
        self.inner.close()


def instrumented(destination: transmit.Destination) -> transmit.Destination:
    """The destination itself, unless a crash point in the transfer is armed."""
    if os.environ.get(CRASH_ENV) in ("mid-upload", "after-rename"):
        return _CrashingDestination(destination)
    return destination
