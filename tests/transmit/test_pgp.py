"""OpenPGP with the real gpg: round trip, packet format, and every key we must refuse."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest

import transmit
from tests.support.servers import CarrierKey
from transmit.pgp import gnupg_home, import_key_file

SIGNER = "TEST workspace signer <edi@test.invalid>"


def plaintext(tmp_path: Path) -> Path:
    path = tmp_path / "file.834"
    path.write_bytes(b"ISA*00*TEST~" * 2000)
    return path


@pytest.mark.parametrize("armor", [False, True])
def test_round_trip_aes256_with_mdc_and_no_aead(
    tmp_path: Path, carrier_key: CarrierKey, armor: bool
) -> None:
    src = plaintext(tmp_path)
    spec = transmit.EncryptionSpec(
        carrier_key.fingerprint, carrier_key.public_key_file, armor=armor
    )
    result = transmit.encrypt_file(src, tmp_path / "out.pgp", spec, tmp_path / "workspace-gnupg")
    assert carrier_key.decrypt(result.path) == src.read_bytes()
    assert result.plaintext_sha256 == transmit.sha256_file(src)
    assert result.ciphertext_sha256 == transmit.sha256_file(result.path)
    assert result.path.read_bytes().startswith(b"-----BEGIN PGP MESSAGE") is armor
    packets = carrier_key.packets(result.path)
    assert re.search(r"encrypted data packet:\s+length: \S+\s+mdc_method: 2", packets), packets
    assert "tag=20" not in packets, "AEAD (OCB) packets are unreadable for older carrier tooling"
    assert "AES256 encrypted data" in packets
    assert not list(tmp_path.glob(".*.part"))


def test_wrong_fingerprint_is_refused(tmp_path: Path, carrier_key: CarrierKey) -> None:
    spec = transmit.EncryptionSpec("A" * 40, carrier_key.public_key_file)
    with pytest.raises(transmit.KeyRefused) as refused:
        transmit.encrypt_file(plaintext(tmp_path), tmp_path / "out.pgp", spec, tmp_path / "g")
    assert refused.value.code == "pgp-key-not-found"
    assert not (tmp_path / "out.pgp").exists()


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("expired", "pgp-key-expired"),
        ("revoked", "pgp-key-revoked"),
        ("sign-only", "pgp-key-cannot-encrypt"),
    ],
)
def test_unusable_keys_are_refused(
    tmp_path: Path, bad_keys: dict[str, CarrierKey], kind: str, code: str
) -> None:
    key = bad_keys[kind]
    spec = transmit.EncryptionSpec(key.fingerprint, key.public_key_file)
    with pytest.raises(transmit.KeyRefused) as refused:
        transmit.encrypt_file(
            plaintext(tmp_path), tmp_path / "out.pgp", spec, tmp_path / f"g-{kind}"
        )
    assert refused.value.code == code
    assert not (tmp_path / "out.pgp").exists()


def test_gpg_reads_a_source_whose_name_has_spaces_and_a_leading_dash(
    tmp_path: Path, carrier_key: CarrierKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    src = Path("-o odd name.834")
    src.write_bytes(plaintext(tmp_path).read_bytes())
    spec = transmit.EncryptionSpec(carrier_key.fingerprint, carrier_key.public_key_file)
    result = transmit.encrypt_file(src, tmp_path / "odd.pgp", spec, tmp_path / "g")
    assert carrier_key.decrypt(result.path) == src.read_bytes()
    assert result.plaintext_sha256 == transmit.sha256_file(src)


def test_a_missing_source_fails_without_leaving_output(
    tmp_path: Path, carrier_key: CarrierKey
) -> None:
    spec = transmit.EncryptionSpec(carrier_key.fingerprint, carrier_key.public_key_file)
    with pytest.raises(transmit.EncryptionError) as failed:
        transmit.encrypt_file(tmp_path / "gone.834", tmp_path / "out.pgp", spec, tmp_path / "g")
    assert failed.value.code == "pgp-encrypt-failed"
    assert not (tmp_path / "out.pgp").exists()
    assert not list(tmp_path.glob(".*.part"))


def workspace_signer(passphrase: str) -> tuple[Path, str]:
    # Signing needs gpg-agent, whose socket path must stay short (pytest's tmp paths are long).
    home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
    return home, transmit.create_key(home, SIGNER, algorithm="rsa2048", passphrase=passphrase)


@pytest.mark.parametrize("passphrase", ["", "test passphrase, not a secret"])
def test_signed_with_the_workspace_key(
    tmp_path: Path, carrier_key: CarrierKey, passphrase: str
) -> None:
    workspace_gnupg, signer = workspace_signer(passphrase)
    signer_public = transmit.export_public_key(workspace_gnupg, signer, tmp_path / "signer.asc")
    spec = transmit.EncryptionSpec(
        carrier_key.fingerprint,
        carrier_key.public_key_file,
        sign=True,
        signer_fingerprint=signer,
        signer_passphrase=passphrase or None,
    )
    src = plaintext(tmp_path)
    result = transmit.encrypt_file(src, tmp_path / "signed.pgp", spec, workspace_gnupg)
    assert result.signer_fingerprint == signer
    import_key_file(gnupg_home(carrier_key.gnupg), signer_public)
    checked = subprocess.run(
        [
            "gpg",
            "--homedir",
            str(carrier_key.gnupg),
            "--batch",
            "--status-fd",
            "1",
            "--decrypt",
            str(result.path),
        ],
        capture_output=True,
    )
    assert f"VALIDSIG {signer}".encode() in checked.stdout
    assert src.read_bytes() in checked.stdout


def test_a_wrong_signing_passphrase_fails_without_leaving_output(
    tmp_path: Path, carrier_key: CarrierKey
) -> None:
    workspace_gnupg, signer = workspace_signer("the right one")
    spec = transmit.EncryptionSpec(
        carrier_key.fingerprint,
        carrier_key.public_key_file,
        sign=True,
        signer_fingerprint=signer,
        signer_passphrase="the wrong one",
    )
    with pytest.raises(transmit.EncryptionError) as failed:
        transmit.encrypt_file(plaintext(tmp_path), tmp_path / "x.pgp", spec, workspace_gnupg)
    assert failed.value.code == "pgp-encrypt-failed"
    assert not (tmp_path / "x.pgp").exists()


def test_signing_without_the_key_is_refused(tmp_path: Path, carrier_key: CarrierKey) -> None:
    spec = transmit.EncryptionSpec(
        carrier_key.fingerprint, carrier_key.public_key_file, sign=True, signer_fingerprint="B" * 40
    )
    with pytest.raises(transmit.KeyRefused, match="signing"):
        transmit.encrypt_file(
            plaintext(tmp_path), tmp_path / "x.pgp", spec, tmp_path / "empty-gnupg"
        )
