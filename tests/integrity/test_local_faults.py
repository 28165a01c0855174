"""Local faults: full and read-only disks, damaged or lost state databases, a foreign file under
our name, loose permissions. Each gives a clear one-line error (no traceback), is alerted and
logged where the log can be written, and never loses or silently re-sends a delivery."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integrity.harness import (
    AS_OF,
    Done,
    assert_files_match_names_and_log,
    assert_no_traceback,
    delivered_entries,
    edi_command,
    edi_env,
    final_files,
    log_entries,
    run_edi,
    temp_files,
)
from tests.support.servers import CarrierKey, SmtpServer, Sshd
from tests.support.workspace import REPO

pytestmark = pytest.mark.slow
RUN = ("run", "-c", "colonial", "--as-of", AS_OF)


@contextmanager
def mounted(kind: str, target: Path, *options: str) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *options, kind, str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], check=True)


def fill(folder: Path) -> None:
    """Leave no free byte on the file system that holds folder."""
    descriptor = os.open(folder / "filler", os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        for size in (65536, 512, 1):
            try:
                while True:
                    os.write(descriptor, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(descriptor)


def assert_clear_failure(done: Done, smtp: SmtpServer, code: str) -> None:
    assert done.code == 1, done.err[-2000:]
    assert_no_traceback(done)
    assert f"[{code}]" in done.err, done.err[-2000:]
    assert smtp.messages, "the failure was not alerted"


def test_full_state_folder(live_home: Path, sshd: Sshd, smtp_server: SmtpServer) -> None:
    with mounted("tmpfs", live_home / "state", "-t", "tmpfs", "-o", "size=2m") as state:
        fill(state)
        done = run_edi(live_home, *RUN)
        assert_clear_failure(done, smtp_server, "disk-full")
        subjects = [m["Subject"] for m in smtp_server.messages]
        assert any("log-unwritable" in s for s in subjects), subjects
        assert final_files(sshd) == [] and temp_files(sshd) == []


def test_full_out_folder(live_home: Path, sshd: Sshd, smtp_server: SmtpServer) -> None:
    with mounted("tmpfs", live_home / "out" / "colonial", "-t", "tmpfs", "-o", "size=1m") as out:
        fill(out)
        done = run_edi(live_home, *RUN)
        assert_clear_failure(done, smtp_server, "disk-full")
        assert not list(out.glob("*.834"))
    assert final_files(sshd) == []
    (failure,) = [e for e in log_entries(live_home) if e.get("outcome") == "failed"]
    assert failure["error_code"] == "disk-full" and failure["alerts_sent"] == ["email:sent"]


def test_read_only_state(live_home: Path, sshd: Sshd, smtp_server: SmtpServer) -> None:
    state = live_home / "state"
    state.mkdir()
    with mounted(str(state), state, "--bind", "-o", "ro"):
        subprocess.run(["mount", "-o", "remount,bind,ro", str(state)], check=True)
        done = run_edi(live_home, *RUN)
        assert_clear_failure(done, smtp_server, "read-only-filesystem")
    assert final_files(sshd) == []


DATABASES = ("control.sqlite", "baseline.sqlite", "delivery-log.sqlite")
DAMAGE = ("truncated", "zero-length", "random-bytes", "deleted")


def damage(path: Path, how: str) -> None:
    for sidecar in path.parent.glob(path.name + "-*"):
        sidecar.unlink()
    if how == "deleted":
        path.unlink()
    elif how == "zero-length":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    else:
        path.write_bytes(os.urandom(path.stat().st_size))


@pytest.mark.sqlite_only
@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("database", DATABASES)
def test_damaged_state_database_never_loses_or_resends(
    database: str,
    how: str,
    live_home: Path,
    sshd: Sshd,
    carrier_key: CarrierKey,
    smtp_server: SmtpServer,
) -> None:
    assert run_edi(live_home, *RUN).code == 0
    (delivered,) = final_files(sshd)
    original = delivered.read_bytes()
    damage(live_home / "state" / database, how)
    smtp_server.messages.clear()
    done = run_edi(live_home, *RUN)
    assert_no_traceback(done)
    assert done.code in (0, 1), done.err[-2000:]
    if done.code == 1:
        assert "error [" in done.err and smtp_server.messages, done.err[-2000:]
    # The same data: nothing new on the server, the delivered file untouched.
    assert final_files(sshd) == [delivered] and delivered.read_bytes() == original
    assert temp_files(sshd) == []


@pytest.mark.sqlite_only
def test_lost_control_store_is_rebuilt_from_the_log(
    live_home: Path, sshd: Sshd, carrier_key: CarrierKey
) -> None:
    assert run_edi(live_home, *RUN).code == 0
    (first,) = final_files(sshd)
    (live_home / "state" / "control.sqlite").unlink()
    again = run_edi(live_home, *RUN)
    assert again.code == 0, again.err[-2000:]
    assert final_files(sshd) == [first]  # same content, same ISA13: already delivered
    events = [e["event"] for e in log_entries(live_home)]
    assert "control-numbers-restored" in events


@pytest.mark.sqlite_only
def test_lost_control_store_and_changed_data_get_a_new_number(
    live_home: Path, sshd: Sshd, carrier_key: CarrierKey
) -> None:
    """The case that used to be logged "already delivered" and never sent."""
    assert run_edi(live_home, *RUN).code == 0
    (live_home / "state" / "control.sqlite").unlink()
    source = live_home / "changed-source"
    shutil.copytree(REPO / "samples" / "plansource", source)
    subscribers = json.loads((source / "subscribers.json").read_text())
    records = subscribers["data"] if isinstance(subscribers, dict) else subscribers
    first = records[0] if "id" in records[0] else records[0]["data"][0]
    first["address_1"] = "1 Changed Street"
    (source / "subscribers.json").write_text(json.dumps(subscribers))
    done = run_edi(live_home, *RUN, "--source", str(source))
    assert done.code == 0, done.err[-2000:]
    remote = final_files(sshd)
    assert len(remote) == 2 and remote[0].name != remote[1].name
    assert len(delivered_entries(live_home)) == 2
    assert_files_match_names_and_log(live_home, sshd, carrier_key)


def test_foreign_file_under_our_name_is_never_overwritten(
    live_home: Path, sshd: Sshd, smtp_server: SmtpServer
) -> None:
    generated = run_edi(live_home, "generate", "-c", "colonial", "--as-of", AS_OF)
    assert generated.code == 0, generated.err[-2000:]
    name = Path(generated.out.strip()).name + ".pgp"
    foreign = sshd.inbox / name
    foreign.write_bytes(b"not ours")
    done = run_edi(live_home, *RUN)
    assert_clear_failure(done, smtp_server, "remote-file-conflict")
    assert foreign.read_bytes() == b"not ours" and final_files(sshd) == [foreign]


@pytest.mark.sqlite_only
def test_phi_at_rest_is_owner_only_whatever_the_umask(live_home: Path, sshd: Sshd) -> None:
    done = subprocess.run(
        ["sh", "-c", 'umask 000 && exec "$@"', "sh", *edi_command(live_home, *RUN)],
        env=edi_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    state, out = live_home / "state", live_home / "out" / "colonial"
    for folder in (state, out, state / "scratch", state / "locks"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for held in (state / "baseline.sqlite", state / "control.sqlite", *out.glob("*.834")):
        assert stat.S_IMODE(held.stat().st_mode) == 0o600, held


def test_private_key_readable_by_others_is_refused(
    live_home: Path, sshd: Sshd, smtp_server: SmtpServer
) -> None:
    os.chmod(sshd.facts.client_key, 0o644)
    done = run_edi(live_home, *RUN)
    assert done.code == 2 and "[key-readable-by-others]" in done.err
    assert_no_traceback(done)
    assert final_files(sshd) == [] and smtp_server.messages


def test_log_signing_key_readable_by_others_is_refused(
    live_home: Path, sshd: Sshd, smtp_server: SmtpServer
) -> None:
    assert run_edi(live_home, *RUN).code == 0
    os.chmod(live_home / "state" / "keys" / "log-ed25519.pem", 0o644)
    smtp_server.messages.clear()
    done = run_edi(live_home, *RUN)
    assert done.code == 1 and "[log-key-readable-by-others]" in done.err, done.err[-2000:]
    assert_no_traceback(done)
    assert smtp_server.messages and len(final_files(sshd)) == 1


def test_secret_pasted_as_env_name_is_not_echoed(live_home: Path, sshd: Sshd) -> None:
    profile = live_home / "carriers" / "colonial.toml"
    secret = "hunter2-S3cr3t!value"
    text = profile.read_text().replace(
        f'private_key_file = "{sshd.facts.client_key}"', f'password_env = "{secret}"'
    )
    profile.write_text(text)
    done = run_edi(live_home, *RUN)
    assert done.code == 2 and "[secret-env-name-invalid]" in done.err
    assert secret not in done.err + done.out
    assert secret not in json.dumps(log_entries(live_home))


@pytest.mark.parametrize("name", ["../../x", "Colonial", "colonial.toml", "a/b"])
def test_carrier_names_cannot_leave_carriers(live_home: Path, name: str) -> None:
    done = run_edi(live_home, "generate", "-c", name)
    assert done.code == 2 and "[bad-carrier-name]" in done.err
    assert_no_traceback(done)


def test_json_with_trailing_data_is_refused(live_home: Path, tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(REPO / "samples" / "plansource", source)
    path = source / "coverages.json"
    path.write_text(path.read_text() + '\n{"id": 1}')
    done = run_edi(live_home, "generate", "-c", "colonial", "--source", str(source))
    assert done.code == 1 and "[source-not-json]" in done.err and "coverages.json" in done.err
