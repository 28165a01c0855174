"""`edi run --dry-run`: everything a run does before the upload, against a scratch copy of
the workspace's state, so nothing real changes.

The scratch workspace links the real one's files (profiles, keys, snapshots) and holds copies
of the control-number, baseline and delivery-log databases (for a workspace with a shared store,
SQLite copies of its rows there): the file is generated with the
ISA13 a real run would use now, validated, encrypted, and checked against the log ("already
delivered"?). Then the scratch folder is deleted: no control number is consumed, no baseline
proposed, nothing logged, nothing sent.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import transmit
from edi import delivery_config, pipeline, stores
from edi.changes import changes_config
from edi.private import private_dir
from edi.profiles import load_profile
from edi.workspace import Workspace

DATABASES = ("control.sqlite", "baseline.sqlite", "delivery-log.sqlite")
LINKED_STATE = ("keys", "snapshots")


@dataclass
class DryRun:
    generated: dict[str, Any]
    file_name: str
    encrypted_name: str
    encrypted_size: int
    remote_host: str
    remote_path: str
    already_delivered_as: str | None = None
    findings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "carrier": self.generated["carrier"],
            "outcome": "already-delivered" if self.already_delivered_as else "would-send",
            "file": self.file_name,
            "encrypted_file": self.encrypted_name,
            "encrypted_size": self.encrypted_size,
            "remote_host": self.remote_host,
            "remote_path": self.already_delivered_as or self.remote_path,
            "findings": self.findings,
            "generated": {k: v for k, v in self.generated.items() if k != "file"},
        }


def _copy_database(source: Path, target: Path) -> None:
    """A consistent copy (WAL included); reading leaves the source as it was (a read-only
    connection would leave an empty -wal file behind)."""
    if not source.exists():
        return
    with (
        closing(sqlite3.connect(source, timeout=30)) as src,
        closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def scratch_workspace(real: Workspace, scratch: Path, carrier: str) -> Workspace:
    """A workspace of SQLite files whatever the real one's store: copies of its databases, or
    of its rows in the shared store (then without `[store]`: nothing reaches the store)."""
    scratch.mkdir(parents=True)
    for entry in real.home.iterdir():
        if entry.name != "state":
            (scratch / entry.name).symlink_to(entry)
    state = private_dir(scratch / "state")
    settings = real.settings
    if stores.shared(real) is not None:
        from edi import pgmigrate

        pgmigrate.copy_to_sqlite(real, carrier, state)
        settings = settings.model_copy(update={"store": None})
    else:
        for name in DATABASES:
            _copy_database(real.state_dir / name, state / name)
    for name in LINKED_STATE:
        if (real.state_dir / name).exists():
            (state / name).symlink_to(real.state_dir / name)
    return Workspace(scratch, settings)


def dry_run(
    workspace: Workspace,
    carrier: str,
    *,
    now: datetime,
    as_of: date | None = None,
    source: Path | None = None,
    file_type: Any = None,
    allow_mass_termination: bool = False,
    reason: str | None = None,
) -> DryRun:
    profile = load_profile(workspace, carrier)
    # Settings errors surface before any work.
    delivery = delivery_config.delivery_config(profile, workspace)
    settings = delivery_config.sftp_settings(profile, workspace)
    source_dir, _ = pipeline.resolve_source(workspace, source)
    scratch = Path(tempfile.mkdtemp(prefix="edi-dry-"))  # short: gpg-agent's socket path
    try:
        shadow = scratch_workspace(workspace, scratch / "ws", carrier)
        config = changes_config(profile, workspace.carriers_dir / f"{carrier}.toml")
        chosen = file_type or pipeline.due_file_type(shadow, carrier, config, now)
        generated = pipeline.generate(
            shadow,
            carrier,
            now=now,
            as_of=as_of,
            source=source_dir.resolve(),
            out_dir=scratch / "out",
            file_type=chosen,
            allow_mass_termination=allow_mass_termination,
            reason=reason,
        )
        extension = delivery_config.encryption_config(profile, shadow).extension
        encrypted_path = scratch / "outbox" / (generated.path.name + extension)
        spec = delivery_config.encryption_spec(profile, workspace)
        # A throwaway GnuPG home, unless the file is signed with the workspace's own key.
        gnupg = workspace.gnupg_home if spec.sign else scratch / "gnupg"
        encrypted = transmit.encrypt_file(generated.path, encrypted_path, spec, gnupg)
        previous = delivery_config.delivery_log(shadow).last_delivery(
            carrier, encrypted.plaintext_sha256
        )
        summary = generated.summary()
        summary["source"] = str(source_dir)
        return DryRun(
            generated=summary,
            file_name=generated.path.name,
            encrypted_name=encrypted_path.name,
            encrypted_size=encrypted.ciphertext_size,
            remote_host=f"{settings.host}:{settings.port}",
            remote_path=f"{delivery.remote_dir.rstrip('/')}/{encrypted_path.name}",
            already_delivered_as=str(previous.get("remote_final_path")) if previous else None,
            findings=[f.line() for f in generated.validation.findings],
        )
    finally:
        gnupg = scratch / "gnupg"
        if gnupg.exists():
            import subprocess

            subprocess.run(
                ["gpgconf", "--homedir", str(gnupg), "--kill", "all"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(scratch, ignore_errors=True)
