"""Delivery against a real OpenSSH sshd on 127.0.0.1: each fault ends in exactly one final file,
or in a failure that was reported, with nothing lost or half-written."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

import transmit
from tests.support.servers import Sshd

FAST = transmit.RetryPolicy(
    max_attempts=4, initial_backoff_s=0.05, max_backoff_s=0.2, max_total_s=60, jitter_s=0.01
)


def payload(tmp_path: Path, size: int = 200_000, name: str = "file.834.pgp") -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def deliver(
    local: Path, sshd: Sshd, **settings: object
) -> tuple[transmit.DeliveryResult, list[transmit.AttemptRecord]]:
    attempts: list[transmit.AttemptRecord] = []
    result = transmit.deliver(
        local,
        local.name,
        lambda: transmit.SftpDestination(sshd.settings(**settings)),
        policy=FAST,
        on_attempt=attempts.append,
    )
    return result, attempts


def test_delivers_with_temp_name_then_rename(tmp_path: Path, sshd: Sshd) -> None:
    local = payload(tmp_path)
    result, attempts = deliver(local, sshd)
    assert result.outcome == "delivered" and len(attempts) == 1
    assert [p.name for p in sshd.inbox.iterdir()] == [local.name]
    assert (sshd.inbox / local.name).read_bytes() == local.read_bytes()
    temp = attempts[0].remote_temp_path or ""
    assert temp.startswith(f".{local.name}.") and temp.endswith(".part") and temp != local.name
    assert attempts[0].host_key_fingerprint == sshd.facts.host_key_fingerprint


def test_already_delivered_is_not_sent_again(tmp_path: Path, sshd: Sshd) -> None:
    local = payload(tmp_path)
    deliver(local, sshd)
    stamp = (sshd.inbox / local.name).stat().st_mtime_ns
    time.sleep(0.01)
    result, _ = deliver(local, sshd)
    assert result.outcome == "already-delivered"
    assert (sshd.inbox / local.name).stat().st_mtime_ns == stamp


def test_a_different_file_under_our_name_is_never_overwritten(tmp_path: Path, sshd: Sshd) -> None:
    local = payload(tmp_path)
    (sshd.inbox / local.name).write_bytes(b"the carrier's own file")
    with pytest.raises(transmit.PermanentDeliveryError) as failed:
        deliver(local, sshd)
    assert failed.value.code == "remote-file-conflict"
    assert (sshd.inbox / local.name).read_bytes() == b"the carrier's own file"


def test_direct_mode_uploads_under_the_final_name(tmp_path: Path, sshd: Sshd) -> None:
    local = payload(tmp_path)
    attempts: list[transmit.AttemptRecord] = []
    transmit.deliver(
        local,
        local.name,
        lambda: transmit.SftpDestination(sshd.settings()),
        upload_mode="direct",
        policy=FAST,
        on_attempt=attempts.append,
    )
    assert [p.name for p in sshd.inbox.iterdir()] == [local.name]
    assert attempts[0].remote_temp_path is None


def test_wrong_host_key_is_permanent_and_not_retried(tmp_path: Path, sshd: Sshd) -> None:
    local = payload(tmp_path)
    with pytest.raises(transmit.PermanentDeliveryError) as failed:
        deliver(local, sshd, host_key="SHA256:" + "A" * 43)
    assert failed.value.code == "host-key-mismatch"
    assert list(sshd.inbox.iterdir()) == []


def test_server_down_is_retried_then_fails(tmp_path: Path, sshd: Sshd) -> None:
    sshd.server.stop()
    attempts: list[transmit.AttemptRecord] = []
    with pytest.raises(transmit.TransientDeliveryError):
        transmit.deliver(
            payload(tmp_path),
            "x.pgp",
            lambda: transmit.SftpDestination(sshd.settings()),
            policy=FAST,
            on_attempt=attempts.append,
        )
    assert [a.outcome for a in attempts] == ["failed"] * FAST.max_attempts
    assert all(a.error_class == "TransientDeliveryError" for a in attempts)


def test_permission_denied_is_permanent(tmp_path: Path, sshd: Sshd) -> None:
    subprocess.run(["chattr", "+i", str(sshd.inbox)], check=True)
    try:
        attempts: list[transmit.AttemptRecord] = []
        with pytest.raises(transmit.PermanentDeliveryError) as failed:
            transmit.deliver(
                payload(tmp_path),
                "x.pgp",
                lambda: transmit.SftpDestination(sshd.settings()),
                policy=FAST,
                on_attempt=attempts.append,
            )
        assert failed.value.code == "permission-denied" and len(attempts) == 1
    finally:
        subprocess.run(["chattr", "-i", str(sshd.inbox)], check=True)
    assert list(sshd.inbox.iterdir()) == []


def test_connection_dropped_mid_upload_then_recovers(tmp_path: Path, sshd: Sshd) -> None:
    local = payload(tmp_path, 50_000_000, "big.834.pgp")

    def cut_when_half_sent() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            partials = list(sshd.inbox.glob(f".{local.name}.*.part"))
            if partials and partials[0].stat().st_size > 5_000_000:
                sshd.restart()  # every session is cut; the server is back for the retry
                return
            time.sleep(0.005)

    cutter = threading.Thread(target=cut_when_half_sent)
    cutter.start()
    attempts: list[transmit.AttemptRecord] = []
    result = transmit.deliver(
        local,
        local.name,
        lambda: transmit.SftpDestination(sshd.settings()),
        policy=FAST,
        on_attempt=attempts.append,
    )
    cutter.join()
    assert result.outcome == "delivered"
    assert attempts[0].outcome == "failed" and attempts[-1].outcome == "delivered"
    assert sorted(p.name for p in sshd.inbox.iterdir()) == [local.name]
    assert transmit.sha256_file(sshd.inbox / local.name) == transmit.sha256_file(local)


@pytest.mark.slow
def test_fifty_megabytes_arrive_intact(tmp_path: Path, sshd: Sshd) -> None:
    local = payload(tmp_path, 50 * 1024 * 1024, "fifty.834.pgp")
    result, _ = deliver(local, sshd)
    assert result.outcome == "delivered"
    assert transmit.sha256_file(sshd.inbox / local.name) == transmit.sha256_file(local)


def test_local_folder_destination_shares_the_same_operation(tmp_path: Path) -> None:
    folder = tmp_path / "share"
    folder.mkdir()
    local = payload(tmp_path)
    result = transmit.deliver(
        local, local.name, lambda: transmit.LocalFolderDestination(folder), policy=FAST
    )
    assert result.outcome == "delivered" and [p.name for p in folder.iterdir()] == [local.name]


def test_aes_gcm_is_offered_first_unless_disabled(sshd: Sshd) -> None:
    """GCM is the faster cipher in paramiko; a profile's disabled algorithms still win."""
    chosen = {}
    for label, disabled in (("default", {}), ("no-gcm", {"ciphers": list(FAST_GCM)})):
        destination = transmit.SftpDestination(sshd.settings(disabled_algorithms=disabled))
        try:
            chosen[label] = destination._transport.remote_cipher
        finally:
            destination.close()
    assert chosen["default"] == "aes128-gcm@openssh.com"
    assert chosen["no-gcm"] not in FAST_GCM


FAST_GCM = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
