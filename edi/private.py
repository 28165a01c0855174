"""Owner-only folders and files, whatever the umask: what holds PHI or keys is made private
from its first byte. This module imports nothing from `edi`, so every store can use it."""

from __future__ import annotations

import os
from pathlib import Path


def private_dir(path: Path) -> Path:
    """A folder only this user can enter (its parents stay as they are)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """A file readable by its owner only; created empty when missing (e.g. before SQLite
    opens it, so the database is never readable by others, not even for a moment)."""
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)
    return path
