"""The demo: the whole pipeline on embedded defaults, against real servers on this machine.

A scratch workspace gets the carrier profiles plus demo `[encryption]` and `[delivery]` tables:
a demo key per carrier in a GnuPG home of its own (standing in for the carrier's), and a real
OpenSSH sshd on 127.0.0.1 with a throwaway host key, pinned like a carrier's would be.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import date, datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape

import transmit
from edi.delivery_config import delivery_log
from edi.output import render_table
from edi.pipeline import RunOutcome, run
from edi.profiles import profile_names
from edi.workspace import Workspace


def demo_tables(
    carrier: str, fingerprint: str, server: transmit.LoopbackServer, inbox: Path
) -> str:
    lines = [
        "",
        "# Added by `edi demo`: a demo carrier key and the demo's loopback sshd.",
        "[encryption]",
        f'recipient_fingerprint = "{fingerprint}"',
        f'public_key_file = "carriers/keys/{carrier}.asc"',
        "armor = false",
        "sign = false",
        "",
        "[delivery]",
        f'host = "{server.host}"',
        f"port = {server.port}",
        f'username = "{server.username}"',
        f'private_key_file = "{server.client_key}"',
        f'host_key = "{server.host_key_fingerprint}"',
        f'remote_dir = "{inbox}"',
        'upload_mode = "rename"',
        "max_attempts = 3",
        "initial_backoff_s = 0.5",
    ]
    return "\n".join(lines) + "\n"


def prepare(source: Workspace, home: Path) -> Workspace:
    """A fresh demo workspace reading the source workspace's sample data."""
    sample_dir, _ = source.default_source()
    for name in ("carriers", "edi.toml"):
        target = home / name
        if target.is_dir():
            shutil.rmtree(target)
    (home / "carriers" / "keys").mkdir(parents=True, exist_ok=True)
    for name in profile_names(source):
        shutil.copyfile(source.carriers_dir / f"{name}.toml", home / "carriers" / f"{name}.toml")
    (home / "edi.toml").write_text(f'source = "{sample_dir.resolve()}"\nsample_data = true\n')
    return Workspace.open(home)


def carrier_key(home: Path, carrier: str) -> tuple[str, Path]:
    """The stand-in carrier's key pair: the private half stays in the carrier's own GnuPG home."""
    carrier_gnupg = home / "carrier-side" / carrier / "gnupg"
    fingerprint_file = carrier_gnupg.parent / "fingerprint"
    if fingerprint_file.exists():
        fingerprint = fingerprint_file.read_text().strip()
    else:
        fingerprint = transmit.create_key(carrier_gnupg, f"{carrier} demo <edi@{carrier}.example>")
        fingerprint_file.write_text(fingerprint)
    transmit.export_public_key(
        carrier_gnupg, fingerprint, home / "carriers" / "keys" / f"{carrier}.asc"
    )
    return fingerprint, carrier_gnupg


def decrypt_as_carrier(carrier_gnupg: Path, encrypted: Path) -> bytes:
    return subprocess.run(
        ["gpg", "--homedir", str(carrier_gnupg), "--batch", "--quiet", "--decrypt", str(encrypted)],
        check=True,
        capture_output=True,
    ).stdout


def run_demo(
    source: Workspace,
    home: Path,
    *,
    as_of: date,
    now: datetime,
    out: Console,
    err: Console,
    show_log: bool = True,
) -> list[RunOutcome]:
    home.mkdir(parents=True, exist_ok=True)
    workspace = prepare(source, home)
    server_root = home / "carrier-side" / "sftp"
    outcomes: list[RunOutcome] = []
    with transmit.LoopbackSftpServer(server_root, home / "state" / "sshd") as server:
        err.print(
            f"loopback OpenSSH sshd on {server.host}:{server.port}, host key "
            f"{server.host_key_fingerprint}"
        )
        keys = {}
        for carrier in profile_names(workspace):
            fingerprint, carrier_gnupg = carrier_key(home, carrier)
            keys[carrier] = carrier_gnupg
            inbox = server_root / carrier / "inbound"
            inbox.mkdir(parents=True, exist_ok=True)
            profile_file = workspace.carriers_dir / f"{carrier}.toml"
            profile_file.write_text(
                profile_file.read_text() + demo_tables(carrier, fingerprint, server, inbox)
            )
        for carrier in profile_names(workspace):
            outcome = run(workspace, carrier, now=now, as_of=as_of)
            outcomes.append(outcome)
            err.print(
                f"[green]{carrier}[/]: {outcome.outcome} {outcome.facts.path.name} → "
                f"{outcome.remote_path} (ISA13 {outcome.facts.isa13}, "
                f"{outcome.facts.members} members, {outcome.attempts} attempt(s))"
            )
        first = outcomes[0]
        plain = decrypt_as_carrier(keys[first.carrier], Path(first.remote_path))
        same = plain == first.facts.path.read_bytes()
        err.print(
            f"{first.carrier}'s delivered file decrypted with the carrier's key: "
            f"{'identical to the validated 834' if same else 'DIFFERENT'}"
        )
        again = run(workspace, first.carrier, now=now, as_of=as_of)
        err.print(f"re-running {first.carrier}: {again.outcome}, nothing sent twice")
    if show_log:
        _print_log(workspace, out, err)
    where = f"edi --home {escape(str(home))}"
    err.print(
        f"\nThe demo's workspace is {escape(str(home))} (the repository root is a different one).\n"
        f"Look at it with:\n"
        f"  {where} log list\n"
        f"  {where} status\n"
        f"  {where} log verify\n"
        f"  {where} show {escape(str(outcomes[0].facts.path))}\n"
        f"  {where} serve   (the read-only console, then open http://127.0.0.1:8834/)"
        if outcomes
        else "",
        highlight=False,
        soft_wrap=True,
    )
    return outcomes


def _print_log(workspace: Workspace, out: Console, err: Console) -> None:
    log = delivery_log(workspace)
    render_table(
        out,
        err,
        f"Delivery log ({log.where})",
        ("seq", "event", "carrier", "outcome", "isa13", "members", "remote file"),
        [
            (
                entry.seq,
                entry.get("event"),
                entry.get("carrier", ""),
                entry.get("outcome", ""),
                entry.get("isa13", ""),
                entry.get("member_count", ""),
                entry.get("remote_final_path", ""),
            )
            for entry in log.entries()
        ],
    )
    report = log.verify()
    verdict = "[green]intact[/]" if report.ok else f"[red]TAMPERED at {report.first_bad_seq}[/]"
    out.print(
        f"edi log verify: {verdict} ({report.entries} entries, {report.checkpoints} signed "
        "checkpoints)"
    )
