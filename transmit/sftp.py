"""SFTP with paramiko: the host key is pinned, never learned; errors are classified here.

Permanent (never retried): unknown or changed host key, authentication refused, permission
denied. Transient (retried by the policy): refused, reset or timed-out connections and
transfers cut short.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import socket
import stat as stat_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from transmit.destination import RemoteStat
from transmit.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError

BLOCK = 1 << 18
WINDOW = 1 << 26  # a large window keeps a pipelined upload streaming on a fast link
PACKET = 1 << 15
# AES-GCM encrypts and authenticates in one pass: measurably faster than CTR + HMAC in paramiko.
FAST_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


@dataclass(frozen=True, slots=True)
class SftpSettings:
    host: str
    port: int
    username: str
    host_key: str  # "SHA256:<base64>" or a known_hosts line
    remote_dir: str = "."
    private_key_file: Path | None = None
    password: str | None = field(default=None, repr=False)
    connect_timeout_s: float = 30.0
    timeout_s: float = 120.0
    disabled_algorithms: dict[str, list[str]] = field(default_factory=dict)


def fingerprint_of(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def pinned_fingerprint(host_key: str) -> str:
    """The SHA256 fingerprint a profile pins, from either accepted form."""
    if host_key.startswith("SHA256:"):
        return host_key.rstrip("=")
    parts = host_key.split()
    blob = base64.b64decode(parts[-1] if len(parts) == 2 else parts[2])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _load_private_key(path: Path) -> paramiko.PKey:
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key_file(str(path))
        except paramiko.SSHException:
            continue
        except OSError as exc:
            raise PermanentDeliveryError("private-key-unreadable", f"cannot read {path}") from exc
    raise PermanentDeliveryError("private-key-unreadable", f"{path} is not a supported private key")


def _transient(exc: BaseException, settings: SftpSettings, what: str) -> TransientDeliveryError:
    return TransientDeliveryError(
        "connection-failed", f"{what} {settings.host}:{settings.port}: {type(exc).__name__}"
    )


class SftpDestination:
    """One SFTP session to one remote folder; open it, use it, close it."""

    can_rename = True

    def __init__(self, settings: SftpSettings) -> None:
        self.settings = settings
        self.description = (
            f"sftp://{settings.username}@{settings.host}:{settings.port}{settings.remote_dir}"
        )
        self.host_key_fingerprint = ""
        self._transport, self._sftp = self._connect()

    def _connect(self) -> tuple[paramiko.Transport, paramiko.SFTPClient]:
        s = self.settings
        try:
            sock = socket.create_connection((s.host, s.port), timeout=s.connect_timeout_s)
        except OSError as exc:
            raise _transient(exc, s, "cannot connect to") from exc
        transport = paramiko.Transport(
            sock,
            default_window_size=WINDOW,
            default_max_packet_size=PACKET,
            disabled_algorithms=s.disabled_algorithms or None,
        )
        _prefer_fast_ciphers(transport)
        try:
            transport.start_client(timeout=s.connect_timeout_s)
            self._check_host_key(transport)
            self._authenticate(transport)
            sftp = paramiko.SFTPClient.from_transport(transport)
            if sftp is None:
                raise TransientDeliveryError(
                    "sftp-unavailable", "the server opened no SFTP channel"
                )
            sftp.get_channel().settimeout(s.timeout_s)  # type: ignore[union-attr]
            return transport, sftp
        except DeliveryError:
            transport.close()
            raise
        except paramiko.AuthenticationException as exc:
            transport.close()
            raise PermanentDeliveryError(
                "auth-failed",
                f"{s.host}:{s.port} refused user {s.username}",
                hint="Check the username and key or password the profile names.",
            ) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            transport.close()
            raise _transient(exc, s, "SSH handshake failed with") from exc

    def _check_host_key(self, transport: paramiko.Transport) -> None:
        offered = fingerprint_of(transport.get_remote_server_key())
        self.host_key_fingerprint = offered
        if offered != pinned_fingerprint(self.settings.host_key):
            raise PermanentDeliveryError(
                "host-key-mismatch",
                f"{self.settings.host}:{self.settings.port} offered host key {offered}, "
                "not the one the profile pins",
                hint="Never accept a changed host key without confirming it with the carrier.",
            )

    def _authenticate(self, transport: paramiko.Transport) -> None:
        s = self.settings
        if s.private_key_file is not None:
            transport.auth_publickey(s.username, _load_private_key(s.private_key_file))
        elif s.password is not None:
            transport.auth_password(s.username, s.password)
        else:
            raise PermanentDeliveryError("no-credentials", "no private key or password configured")

    def _remote(self, name: str) -> str:
        return f"{self.settings.remote_dir.rstrip('/')}/{name}"

    def _classify(self, exc: BaseException, what: str) -> DeliveryError:
        denied = isinstance(exc, PermissionError) or (
            isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM)
        )
        if denied:
            return PermanentDeliveryError(
                "permission-denied", f"{what} refused on {self.description}"
            )
        return _transient(exc, self.settings, f"{what} failed on")

    def _call(self, what: str, action: Any, *args: Any) -> Any:
        try:
            return action(*args)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise self._classify(exc, what) from exc

    def put(self, local: Path, remote_name: str) -> None:
        def upload() -> None:
            with (
                local.open("rb") as source,
                self._sftp.open(self._remote(remote_name), "wb") as target,
            ):
                target.set_pipelined(True)
                for block in iter(lambda: source.read(BLOCK), b""):
                    target.write(block)

        self._call("upload", upload)

    def stat(self, remote_name: str) -> RemoteStat | None:
        try:
            attributes = self._sftp.stat(self._remote(remote_name))
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) or exc.errno == errno.ENOENT:
                return None
            raise self._classify(exc, "stat") from exc
        except (paramiko.SSHException, EOFError) as exc:
            raise self._classify(exc, "stat") from exc
        return RemoteStat(remote_name, int(attributes.st_size or 0))

    def rename(self, src: str, dst: str) -> None:
        def posix_or_plain() -> None:
            try:
                self._sftp.posix_rename(self._remote(src), self._remote(dst))
            except OSError as exc:
                if "posix-rename" not in str(exc) and exc.errno is not None:
                    raise
                self._sftp.rename(self._remote(src), self._remote(dst))

        self._call("rename", posix_or_plain)

    def remove(self, remote_name: str) -> None:
        self._call("remove", self._sftp.remove, self._remote(remote_name))

    def list(self, pattern: str = "*") -> list[RemoteStat]:
        import fnmatch

        entries = self._call("list", self._sftp.listdir_attr, self.settings.remote_dir)
        return sorted(
            (
                RemoteStat(e.filename, int(e.st_size or 0))
                for e in entries
                if fnmatch.fnmatch(e.filename, pattern) and stat_module.S_ISREG(e.st_mode or 0)
            ),
            key=lambda r: r.name,
        )

    def get(self, remote_name: str, local: Path) -> None:
        self._call("download", self._sftp.get, self._remote(remote_name), str(local))

    def sha256(self, remote_name: str) -> str:
        def read_back() -> str:
            digest = hashlib.sha256()
            with self._sftp.open(self._remote(remote_name), "rb") as handle:
                handle.prefetch()
                for block in iter(lambda: handle.read(BLOCK), b""):
                    digest.update(block)
            return digest.hexdigest()

        result: str = self._call("read back", read_back)
        return result

    def close(self) -> None:
        self._sftp.close()
        self._transport.close()


def _prefer_fast_ciphers(transport: paramiko.Transport) -> None:
    """Offer AES-GCM first; the server still chooses among what both sides allow."""
    options = transport.get_security_options()
    allowed = tuple(options.ciphers)  # already without the settings' disabled algorithms
    fast = tuple(c for c in FAST_CIPHERS if c in allowed)
    options.ciphers = fast + tuple(c for c in allowed if c not in fast)
