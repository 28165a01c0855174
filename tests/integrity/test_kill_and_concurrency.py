"""kill -9 at every instrumented point and at random moments, and concurrent runs: exactly one
right file on the server, exactly one `delivered` entry for it, nothing left behind."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from edi.faults import POINTS
from tests.integrity.harness import (
    AS_OF,
    assert_files_match_names_and_log,
    assert_no_traceback,
    delivered_entries,
    final_files,
    log_entries,
    run_edi,
    start_edi,
    system_temp_leftovers,
    temp_files,
)
from tests.support.servers import CarrierKey, Sshd
from tests.support.workspace import assert_valid_834

pytestmark = pytest.mark.slow


def assert_healed(home: Path, sshd: Sshd, key: CarrierKey) -> None:
    (remote,) = final_files(sshd)
    assert temp_files(sshd) == []
    (entry,) = delivered_entries(home)
    assert entry["remote_final_path"] == str(remote)
    assert_files_match_names_and_log(home, sshd, key)
    (local,) = (home / "out" / "colonial").glob("*.834")
    assert key.decrypt(remote) == local.read_bytes()
    assert_valid_834(local)
    assert not [p for p in (home / "out" / "colonial").iterdir() if p.name.startswith(".")]
    scratch = home / "state" / "scratch" / "colonial"
    assert not scratch.exists() or list(scratch.iterdir()) == []
    assert run_edi(home, "log", "verify").code == 0


@pytest.mark.parametrize("point", POINTS)
def test_killed_at_each_point_then_a_normal_run_delivers_once(
    point: str, live_home: Path, sshd: Sshd, carrier_key: CarrierKey
) -> None:
    killed = run_edi(live_home, "run", "-c", "colonial", "--as-of", AS_OF, crash_at=point)
    assert killed.code == -signal.SIGKILL, killed.err[-2000:]
    healed = run_edi(live_home, "run", "-c", "colonial", "--as-of", AS_OF)
    assert healed.code == 0, healed.err[-2000:]
    assert_no_traceback(healed)
    assert_healed(live_home, sshd, carrier_key)
    again = run_edi(live_home, "run", "-c", "colonial", "--as-of", AS_OF)
    assert (
        again.code == 0 and len(final_files(sshd)) == 1 and len(delivered_entries(live_home)) == 1
    )
    assert system_temp_leftovers() == []  # nothing (no PHI) written to the system temp folder


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killed_at_a_random_moment_then_a_normal_run_delivers_once(
    seed: int, live_home: Path, sshd: Sshd, carrier_key: CarrierKey
) -> None:
    delay = random.Random(seed).uniform(0.3, 2.5)
    process = start_edi(live_home, "run", "-c", "colonial", "--as-of", AS_OF)
    time.sleep(delay)
    process.kill()
    process.communicate(timeout=60)
    healed = run_edi(live_home, "run", "-c", "colonial", "--as-of", AS_OF)
    assert healed.code == 0, healed.err[-2000:]
    assert_healed(live_home, sshd, carrier_key)


@pytest.mark.parametrize("runs", [2, 4])
def test_concurrent_runs_of_one_carrier_deliver_once(
    runs: int, live_home: Path, sshd: Sshd, carrier_key: CarrierKey
) -> None:
    processes = [
        start_edi(live_home, "run", "-c", "colonial", "--as-of", AS_OF) for _ in range(runs)
    ]
    results = [p.communicate(timeout=300) for p in processes]
    for process, (_, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err[-2000:]
        assert "Traceback" not in err
    assert_healed(live_home, sshd, carrier_key)
    outcomes = [e["outcome"] for e in log_entries(live_home) if e.get("event") == "delivery"]
    assert sorted(outcomes) == ["already-delivered"] * (runs - 1) + ["delivered"]


def test_concurrent_runs_of_every_file_type(
    live_home: Path, sshd: Sshd, carrier_key: CarrierKey
) -> None:
    """full and audit files of one carrier at once: each its own control number and file."""
    processes = [
        start_edi(live_home, "run", "-c", "colonial", "--as-of", AS_OF, "--type", kind)
        for kind in ("full", "audit", "full", "audit")
    ]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
    remote = final_files(sshd)
    assert len(remote) == 2 and temp_files(sshd) == []
    assert len(delivered_entries(live_home)) == 2
    assert_files_match_names_and_log(live_home, sshd, carrier_key)
    changes = run_edi(live_home, "run", "-c", "colonial", "--as-of", AS_OF, "--type", "changes")
    assert changes.code == 0 and len(final_files(sshd)) == 2  # nothing changed: nothing sent


def test_a_second_run_waits_then_fails_clearly_logged_and_alerted(
    live_home: Path, sshd: Sshd, smtp_server: object
) -> None:
    (live_home / "edi.toml").write_text(
        (live_home / "edi.toml").read_text() + "\n[runs]\nlock_wait_s = 0.5\n"
    )
    from filelock import FileLock

    locks = live_home / "state" / "locks"
    locks.mkdir(parents=True)
    with FileLock(locks / "colonial.lock"):  # a run of colonial in progress
        blocked = run_edi(live_home, "run", "-c", "colonial", "--as-of", AS_OF)
    assert blocked.code == 1 and "[run-in-progress]" in blocked.err
    assert_no_traceback(blocked)
    assert final_files(sshd) == []
    messages = smtp_server.messages  # type: ignore[attr-defined]
    assert any("run-locked" in m["Subject"] for m in messages)
    assert [e["event"] for e in log_entries(live_home)] == ["run-locked"]


def test_concurrent_runs_of_different_carriers(
    live_home: Path, sshd: Sshd, carrier_key: CarrierKey
) -> None:
    """colonial and unum at once, twice each: no "database is locked", one file per carrier."""
    colonial = (live_home / "carriers" / "colonial.toml").read_text()
    delivery = colonial[colonial.index("\n[encryption]") :]
    unum = live_home / "carriers" / "unum.toml"
    unum.write_text(unum.read_text() + delivery)
    processes = [
        start_edi(live_home, "run", "-c", carrier, "--as-of", AS_OF)
        for carrier in ("colonial", "unum", "colonial", "unum")
    ]
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
        assert "Traceback" not in err and "locked" not in err
    names = [p.name for p in final_files(sshd)]
    assert len(names) == 2 and any("colonial" in n for n in names)
    assert temp_files(sshd) == []
    assert len(delivered_entries(live_home, "colonial")) == 1
    assert len(delivered_entries(live_home, "unum")) == 1
