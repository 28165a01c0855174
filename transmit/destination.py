"""Where files go: a small backend interface, written once for every operation (rclone-style).

A `Destination` puts a local file under a remote name, stats, renames and removes remote
files, lists and gets them (acks). `deliver` is written once over it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from transmit.errors import PermanentDeliveryError, TransientDeliveryError


@dataclass(frozen=True, slots=True)
class RemoteStat:
    name: str
    size: int


class Destination(Protocol):
    """A remote folder. Implementations convert their library's errors to transmit's."""

    description: str
    can_rename: bool

    def put(self, local: Path, remote_name: str) -> None: ...
    def stat(self, remote_name: str) -> RemoteStat | None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def remove(self, remote_name: str) -> None: ...
    def list(self, pattern: str = "*") -> list[RemoteStat]: ...
    def get(self, remote_name: str, local: Path) -> None: ...
    def sha256(self, remote_name: str) -> str:
        """The SHA-256 of a remote file's content, read back in full."""
        ...

    def close(self) -> None: ...


class LocalFolderDestination:
    """A folder on this machine (a mounted share, or tests)."""

    can_rename = True

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.description = f"file://{folder}"

    def _path(self, name: str) -> Path:
        if "/" in name or name in ("", ".", ".."):
            raise PermanentDeliveryError("bad-remote-name", f"not a plain file name: {name!r}")
        return self.folder / name

    def put(self, local: Path, remote_name: str) -> None:
        try:
            shutil.copyfile(local, self._path(remote_name))
        except PermissionError as exc:
            raise PermanentDeliveryError(
                "permission-denied", f"cannot write {self.folder}"
            ) from exc
        except OSError as exc:
            raise TransientDeliveryError(
                "local-write-failed", f"cannot write {self.folder}"
            ) from exc

    def stat(self, remote_name: str) -> RemoteStat | None:
        path = self._path(remote_name)
        return RemoteStat(remote_name, path.stat().st_size) if path.exists() else None

    def rename(self, src: str, dst: str) -> None:
        self._path(src).rename(self._path(dst))

    def remove(self, remote_name: str) -> None:
        self._path(remote_name).unlink(missing_ok=True)

    def list(self, pattern: str = "*") -> list[RemoteStat]:
        return [
            RemoteStat(p.name, p.stat().st_size)
            for p in sorted(self.folder.iterdir())
            if p.is_file() and fnmatch.fnmatch(p.name, pattern)
        ]

    def get(self, remote_name: str, local: Path) -> None:
        shutil.copyfile(self._path(remote_name), local)

    def sha256(self, remote_name: str) -> str:
        with self._path(remote_name).open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()

    def close(self) -> None:
        return None
