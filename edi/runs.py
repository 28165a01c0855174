"""One run per (workspace, carrier) at a time, and the private scratch folder each run works in.

A run holds `state/locks/<carrier>.lock` from generating its file to writing its log entry; a
second run waits up to `[runs] lock_wait_s`, then fails (the pipeline logs and alerts it).
Scratch (the source index, the file body, the unvalidated `.part`, validation pieces) lives
in `state/scratch/<carrier>/<uuid>/`, 0700, never in the system temp folder; whatever a
killed run left there is removed by the next run of that carrier before it starts.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from edi.errors import EdiError
from edi.private import private_dir
from edi.profiles import check_carrier_name

PREVIEW_SCRATCH_MAX_AGE_S = 3600


class RunLocked(EdiError):
    """Another run of the same carrier held the lock for longer than the wait allows."""


def scratch_root(state_dir: Path) -> Path:
    return private_dir(state_dir / "scratch")


@contextlib.contextmanager
def carrier_run(state_dir: Path, carrier: str, *, wait_s: float) -> Iterator[Path]:
    """Hold the carrier's run lock and yield a fresh scratch folder for this run."""
    check_carrier_name(carrier)
    private_dir(state_dir)
    locks = private_dir(state_dir / "locks")
    lock = FileLock(locks / f"{carrier}.lock", timeout=wait_s, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        raise RunLocked(
            "run-in-progress",
            f"another run of {carrier} held its lock for more than {wait_s:g} s; this run did "
            "nothing",
            hint="Wait for it to finish (edi status), or raise [runs] lock_wait_s in edi.toml.",
        ) from None
    try:
        carrier_scratch = private_dir(scratch_root(state_dir) / carrier)
        for leftover in carrier_scratch.iterdir():  # a killed run's; we hold the lock
            _remove(leftover)
        scratch = private_dir(carrier_scratch / uuid.uuid4().hex)
        try:
            yield scratch
        finally:
            _remove(scratch)
    finally:
        lock.release()


@contextlib.contextmanager
def preview_scratch(state_dir: Path) -> Iterator[Path]:
    """Scratch for read-only commands (diff previews), which take no run lock."""
    previews = private_dir(scratch_root(state_dir) / ".preview")
    cutoff = time.time() - PREVIEW_SCRATCH_MAX_AGE_S
    for leftover in previews.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if leftover.stat().st_mtime < cutoff:
                _remove(leftover)
    scratch = private_dir(previews / uuid.uuid4().hex)
    try:
        yield scratch
    finally:
        _remove(scratch)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
