"""A real OpenSSH `sshd` on 127.0.0.1 with its own host key and authorized keys.

The demo delivers to it and the tests run every SFTP case against it. It serves this
machine's file system to the current user through `internal-sftp`, so remote paths are the
absolute paths of the folders it was given.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from transmit.errors import TransmitError

SSHD = "/usr/sbin/sshd"


@dataclass(frozen=True, slots=True)
class LoopbackServer:
    host: str
    port: int
    username: str
    client_key: Path
    host_key_fingerprint: str
    root: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def _fingerprint(public_key: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(public_key)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()[1]


class LoopbackSftpServer:
    """`with LoopbackSftpServer(root, state) as server:` — sshd runs until the block ends."""

    def __init__(self, root: Path, state: Path, port: int | None = None) -> None:
        self.root = root
        self.state = state
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def _config(self) -> Path:
        self.state.mkdir(parents=True, exist_ok=True)
        host_key, client_key = self.state / "host_ed25519", self.state / "client_ed25519"
        for key in (host_key, client_key):
            if not key.exists():
                _keygen(key)
        authorized = self.state / "authorized_keys"
        authorized.write_text((client_key.with_suffix(".pub")).read_text())
        config = self.state / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"PidFile {self.state / 'sshd.pid'}\nAuthorizedKeysFile {authorized}\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
            "Subsystem sftp internal-sftp\nLogLevel ERROR\nMaxStartups 50\n"
        )
        return config

    def start(self) -> LoopbackServer:
        if not Path(SSHD).exists():
            raise TransmitError(
                "sshd-missing",
                f"{SSHD} is not installed",
                hint="scripts/install installs openssh-server",
            )
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        config = self._config()
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_until_listening()
        self.root.mkdir(parents=True, exist_ok=True)
        return LoopbackServer(
            host="127.0.0.1",
            port=self.port,
            username=getpass.getuser(),
            client_key=self.state / "client_ed25519",
            host_key_fingerprint=_fingerprint(self.state / "host_ed25519.pub"),
            root=self.root,
        )

    def _wait_until_listening(self, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                raise TransmitError("sshd-failed", f"sshd exited: {error.strip()[:300]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise TransmitError("sshd-timeout", f"sshd did not listen on port {self.port}")

    def stop(self) -> None:
        """Stops the listener and every session it forked, cutting transfers in flight."""
        if self.process is not None and self.process.poll() is None:
            for child in _descendants(self.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, owner in parents.items() if owner == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def sftp_client_available() -> bool:
    return shutil.which("sftp") is not None
