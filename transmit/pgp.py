"""OpenPGP through python-gnupg over the system `gpg`, in a GnuPG home of the caller's.

Output every carrier can read (RFC 4880: v4 keys, AES-256, MDC, no AEAD packets). The
recipient is pinned by full fingerprint; an unknown, expired or revoked key, or one that
cannot encrypt, is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transmit.errors import EncryptionError, KeyRefused

# Pin the cipher, keep integrity protection, and never emit AEAD packets that older carrier
# tooling cannot decrypt (GnuPG 2.3+ would for keys that advertise AEAD).
_CIPHER_OPTIONS = ["--personal-cipher-preferences", "AES256", "--cipher-algo", "AES256"]
_NO_AEAD_OPTIONS = ["--rfc4880"]


@dataclass(frozen=True, slots=True)
class EncryptionSpec:
    recipient_fingerprint: str
    public_key_file: Path
    armor: bool = False
    sign: bool = False
    signer_fingerprint: str | None = None
    signer_passphrase: str | None = None


@dataclass(frozen=True, slots=True)
class EncryptionResult:
    path: Path
    plaintext_sha256: str
    ciphertext_sha256: str
    plaintext_size: int
    ciphertext_size: int
    recipient_fingerprint: str
    signer_fingerprint: str | None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gnupg_home(path: Path) -> Any:
    import gnupg

    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return gnupg.GPG(gnupghome=str(path))


def _key(gpg: Any, fingerprint: str, *, secret: bool = False) -> dict[str, Any] | None:
    for key in gpg.list_keys(secret):
        if key.get("fingerprint", "").upper() == fingerprint.upper():
            return dict(key)
    return None


def check_recipient(gpg: Any, fingerprint: str, now: float | None = None) -> None:
    """Refuse a pinned recipient key that is missing, expired, revoked or cannot encrypt."""
    key = _key(gpg, fingerprint)
    if key is None:
        raise KeyRefused(
            "pgp-key-not-found",
            f"no key with the pinned fingerprint {fingerprint} in the carrier's key file",
            hint="The key file and the profile's recipient_fingerprint must name the same key.",
        )
    validity = key.get("trust", "")
    expires = key.get("expires") or ""
    if validity == "r":
        raise KeyRefused("pgp-key-revoked", f"key {fingerprint} is revoked")
    if validity == "e" or (expires and float(expires) <= (now or time.time())):
        raise KeyRefused("pgp-key-expired", f"key {fingerprint} has expired")
    if "E" not in key.get("cap", ""):
        raise KeyRefused(
            "pgp-key-cannot-encrypt", f"key {fingerprint} has no usable encryption (sub)key"
        )


def import_key_file(gpg: Any, key_file: Path) -> list[str]:
    if not key_file.is_file():
        raise KeyRefused("pgp-key-file-missing", f"key file {key_file} does not exist")
    imported = gpg.import_keys(key_file.read_bytes())
    return [f.upper() for f in imported.fingerprints]


def encrypt_file(src: Path, dst: Path, spec: EncryptionSpec, gnupg_dir: Path) -> EncryptionResult:
    """Encrypts src to dst (temp name, then rename), streaming file to file.

    gpg reads src by name rather than through python-gnupg's stdin pipe (the pipe cost ~9% of
    the encryption time in bench/), and src is hashed on a second core meanwhile.
    """
    gpg = gnupg_home(gnupg_dir)
    import_key_file(gpg, spec.public_key_file)
    check_recipient(gpg, spec.recipient_fingerprint)
    signer = spec.signer_fingerprint if spec.sign else None
    if spec.sign and (signer is None or _key(gpg, signer, secret=True) is None):
        raise KeyRefused(
            "pgp-signer-missing", "signing is on but the workspace signing key is missing"
        )
    partial = dst.with_name(f".{dst.name}.part")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=1) as hasher:
        plaintext_sha256 = hasher.submit(sha256_file, src)
        try:
            _gpg_encrypt(gpg, src, partial, spec, signer)
            partial.replace(dst)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        return EncryptionResult(
            path=dst,
            plaintext_sha256=plaintext_sha256.result(),
            ciphertext_sha256=sha256_file(dst),
            plaintext_size=src.stat().st_size,
            ciphertext_size=dst.stat().st_size,
            recipient_fingerprint=spec.recipient_fingerprint.upper(),
            signer_fingerprint=signer,
        )


def _gpg_encrypt(
    gpg: Any, src: Path, output: Path, spec: EncryptionSpec, signer: str | None
) -> None:
    result = gpg.encrypt_file(
        io.BytesIO(),  # stdin carries only the passphrase, if any; gpg reads src itself
        [spec.recipient_fingerprint],
        armor=spec.armor,
        output=str(output),
        sign=signer,
        passphrase=spec.signer_passphrase,
        always_trust=True,
        extra_args=[*_CIPHER_OPTIONS, *_NO_AEAD_OPTIONS, "--", str(src)],
    )
    if not result.ok or not output.exists():
        raise EncryptionError("pgp-encrypt-failed", f"gpg could not encrypt: {result.status}")


def _gpg(gnupg_dir: Path, *args: str) -> str:
    done = subprocess.run(
        ["gpg", "--homedir", str(gnupg_dir), "--batch", "--yes", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [""])[-1]
        raise EncryptionError(
            "pgp-gpg-failed",
            f"gpg failed with exit {done.returncode}: {last}",
            hint="gpg-agent needs a socket path under ~108 characters: keep the GnuPG home short.",
        )
    return done.stdout


def create_key(
    gnupg_dir: Path,
    user_id: str,
    *,
    algorithm: str = "rsa3072",
    expire: str = "never",
    passphrase: str = "",
) -> str:
    """A new key that can sign and encrypt (no passphrase unless given); returns its fingerprint.
    For demo carriers, the workspace's signing key and tests; carriers send their own keys."""
    gnupg_home(gnupg_dir)
    _gpg(
        gnupg_dir,
        *("--pinentry-mode", "loopback", "--passphrase", passphrase),
        *("--quick-gen-key", user_id, algorithm, "sign,encr", expire),
    )
    listing = _gpg(gnupg_dir, "--list-secret-keys", "--with-colons", user_id)
    fingerprints = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr")]
    if not fingerprints:
        raise EncryptionError("pgp-keygen-failed", f"gpg created no key for {user_id}")
    return fingerprints[0]


def export_public_key(gnupg_dir: Path, fingerprint: str, path: Path) -> Path:
    gpg = gnupg_home(gnupg_dir)
    armored = gpg.export_keys(fingerprint)
    if not armored:
        raise EncryptionError("pgp-export-failed", f"no public key {fingerprint} to export")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(armored)
    return path


def stop_gpg_agent(gnupg_dir: Path) -> None:
    """Stop the gpg-agent a GnuPG home started, so runs leave no daemon behind."""
    if not gnupg_dir.is_dir():
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            ["gpgconf", "--homedir", str(gnupg_dir), "--kill", "gpg-agent"],
            capture_output=True,
            timeout=30,
            check=False,
        )


_SESSION_KEY_PACKET_TAGS = frozenset({0x84, 0x85, 0x86, 0x87, 0x8C, 0x8D, 0x8E, 0x8F, 0xC1, 0xC3})


@dataclass(frozen=True, slots=True)
class DecryptionResult:
    path: Path
    ciphertext_sha256: str
    plaintext_sha256: str


def is_encrypted(path: Path) -> bool:
    """An OpenPGP message: ASCII armor, or a binary message starting with a session-key packet
    (public-key or symmetric, old or new packet format)."""
    with path.open("rb") as handle:
        head = handle.read(64)
    if head.lstrip().startswith(b"-----BEGIN PGP MESSAGE"):
        return True
    return bool(head) and head[0] in _SESSION_KEY_PACKET_TAGS


def decrypt_file(
    src: Path, dst: Path, gnupg_dir: Path, *, passphrase: str | None = None
) -> DecryptionResult:
    """Decrypts src with a secret key in gnupg_dir (the workspace's own) to dst (0600, temp
    name then rename). The passphrase, if any, goes to gpg on a pipe, never on its argv."""
    gnupg_home(gnupg_dir)
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(f".{dst.name}.part")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    os.close(os.open(partial, os.O_CREAT | os.O_WRONLY, 0o600))
    try:
        done = subprocess.run(
            [
                "gpg",
                *("--homedir", str(gnupg_dir), "--batch", "--yes", "--quiet"),
                *("--pinentry-mode", "loopback", "--passphrase-fd", "0"),
                *("--output", str(partial), "--decrypt", str(src)),
            ],
            input=(passphrase or "").encode(),
            capture_output=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            last = (done.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
            raise EncryptionError(
                "pgp-decrypt-failed",
                f"gpg could not decrypt {src.name} (exit {done.returncode}): {last}",
                hint="The file must be encrypted to the workspace's own key (its GnuPG home).",
            )
        os.chmod(partial, 0o600)
        partial.replace(dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return DecryptionResult(dst, sha256_file(src), sha256_file(dst))


@dataclass(frozen=True, slots=True)
class KeyFacts:
    fingerprint: str
    expires_at: float | None  # POSIX time the key (or its encryption subkey) stops working


def check_key_file(key_file: Path, fingerprint: str, now: float | None = None) -> KeyFacts:
    """The refusals encryption applies (missing, expired, revoked, cannot encrypt), in a
    throwaway GnuPG home so checking changes nothing; and when the key stops working."""
    import shutil
    import tempfile

    home = Path(tempfile.mkdtemp(prefix="transmit-key-"))  # short: gpg-agent's socket path
    try:
        gpg = gnupg_home(home)
        import_key_file(gpg, key_file)
        check_recipient(gpg, fingerprint, now)
        key = _key(gpg, fingerprint) or {}
        ends = [float(key["expires"])] if key.get("expires") else []
        for info in (key.get("subkey_info") or {}).values():
            if "e" in str(info.get("cap", "")).lower() and info.get("expires"):
                ends.append(float(info["expires"]))
        return KeyFacts(fingerprint.upper(), min(ends) if ends else None)
    finally:
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False
        )
        shutil.rmtree(home, ignore_errors=True)
