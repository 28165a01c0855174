"""`edi scheduler run` with a shared store: two scheduler processes over one workspace defer
each schedule's run (and each periodic check) exactly once per period; a worker runs them."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from tests.scaleout.helpers import (
    delivered,
    edi_run,
    employer,
    env,
    remote_files,
    start_worker,
    wait_for,
)
from tests.support.servers import CarrierKey, Sshd
from tests.support.workspace import assert_valid_834

SPEED = 15.0  # the schedulers' clock runs 15x: a minute every 4 s
CHECK_EVERY_S = 120  # virtual seconds: a check every 8 s
DEFERRED = re.compile(r"acme/(\S+) due (\S+): deferred as job (\d+)")
HANDLED = re.compile(r"acme/colonial due (\S+): (?:deferred|already-queued)")


def _scheduler(url: str, home: Path, anchor: float) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "edi", "--home", str(home), "scheduler", "run"]
    clock = ["--clock-speed", str(SPEED), "--clock-anchor", repr(anchor)]
    return subprocess.Popen(
        [*command, *clock, "--check-every-s", str(CHECK_EVERY_S)],
        env=env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _schedules(home: Path) -> None:
    folder = home / "schedules"
    folder.mkdir(exist_ok=True)
    (folder / "colonial.toml").write_text(
        'carrier = "colonial"\ncron = "* * * * *"\nfile_type = "full"\n'
    )
    # Due eight hours ago, past the 6 h catch-up: never deferred, so the watchdog must see it
    # missed once its one-minute deadline has passed.
    hour = (datetime.now(UTC) - timedelta(hours=8)).hour
    (folder / "unum.toml").write_text(
        f'carrier = "unum"\ncron = "0 {hour} * * *"\nrun_deadline = "1m"\n'
    )


def test_two_schedulers_defer_each_period_once_and_one_worker_delivers_once(
    live_home: Path, sshd: Sshd, carrier_key: CarrierKey, pg_url: str, tmp_path: Path
) -> None:
    home = employer(live_home, sshd, "acme")
    _schedules(home)
    assert edi_run(pg_url, "store", "init").returncode == 0
    anchor = time.time()
    schedulers = [_scheduler(pg_url, home, anchor) for _ in range(2)]
    worker = start_worker(pg_url)
    try:
        time.sleep(22)  # five or six virtual minutes, two or three checks
    finally:
        for scheduler in schedulers:
            scheduler.send_signal(signal.SIGTERM)
    logs = []
    for scheduler in schedulers:
        _, err = scheduler.communicate(timeout=60)
        assert scheduler.returncode == 0, err[-2000:]
        logs.append(err)
    try:
        rows = wait_for(
            pg_url, lambda rows: all(r["status"] in ("succeeded", "failed") for r in rows)
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err[-2000:]

    # Each due time was deferred by exactly one of the two schedulers, and both took part.
    deferred = [m.groups() for log in logs for m in DEFERRED.finditer(log)]
    per_due = Counter((item, due) for item, due, _ in deferred)
    assert per_due and max(per_due.values()) == 1, logs
    for log in logs:
        assert re.search(r"acme/colonial due \S+: (deferred|already-deferred)", log), log[-2000:]
    runs = [r for r in rows if r["kind"] == "run"]
    checks = [r for r in rows if r["kind"] == "checks"]
    dues = sorted(str(r["due"]) for r in runs)
    assert len(dues) == len(set(dues)) >= 3, dues  # one job per period, none twice
    assert {int(str(job)) for item, _, job in deferred if item == "colonial"} == {
        r["id"] for r in runs
    }
    # Every minute in between was deferred, or found its feed's run still queued (the
    # queueing lock: that queued run does the period's work).
    handled = {due for log in logs for due in HANDLED.findall(log)}
    first, last = (datetime.fromisoformat(d) for d in (dues[0], dues[-1]))
    minutes = int((last - first) / timedelta(minutes=1))
    expected = {(first + timedelta(minutes=n)).isoformat() for n in range(minutes + 1)}
    assert expected <= handled, (expected - handled, logs)
    assert len({r["due"] for r in checks}) == len(checks) >= 2
    assert all(r["status"] == "succeeded" for r in rows), rows

    # Each job ran once, in the worker. A full file against the baseline the first one left
    # differs from it (the baseline's own doing); from then on the same file is already
    # delivered: one upload and one log entry per delivered outcome, nothing sent twice.
    with psycopg.connect(pg_url) as conn:
        attempts = conn.execute("SELECT job_id, count(*) FROM edi_runs GROUP BY job_id").fetchall()
    assert sorted(job for job, _ in attempts) == sorted(r["id"] for r in runs)
    assert {n for _, n in attempts} == {1}
    outcomes = [r["outcome"] for r in sorted(runs, key=lambda r: str(r["due"]))]
    assert outcomes[0] == "delivered" and outcomes[-1] == "already-delivered", outcomes
    assert set(outcomes) == {"delivered", "already-delivered"}, outcomes
    sent = remote_files(sshd, "acme")
    entries = delivered(home, pg_url)
    assert len(sent) == len(entries) == outcomes.count("delivered") <= 2
    assert {e["actor"]["schedule_id"] for e in entries} == {"colonial"}  # type: ignore[index]
    for index, remote in enumerate(sent):
        plain = tmp_path / f"acme-{index}.834"
        plain.write_bytes(carrier_key.decrypt(remote))
        assert_valid_834(plain)

    # The checks ran in the worker: the watchdog logged the missed unum run, once.
    done = edi_run(pg_url, "log", "list", "--json", home=home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"run-missed"') == 1
    with psycopg.connect(pg_url) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE args->>'carrier' = 'unum'"
        ).fetchone() or (0,)
    assert count == 0


def test_sigterm_lets_the_worker_finish_the_job_in_hand(
    live_home: Path, sshd: Sshd, pg_url: str
) -> None:
    home = employer(live_home, sshd, "acme")
    assert edi_run(pg_url, "store", "init").returncode == 0
    queued = edi_run(pg_url, "enqueue", "--carrier", "colonial", "--as-of", "2026-11-24", home=home)
    assert queued.returncode == 0, queued.stderr
    worker = start_worker(pg_url)
    deadline = time.monotonic() + 60
    with psycopg.connect(pg_url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT status::text FROM procrastinate_jobs").fetchone()
            if row and row[0] == "doing":
                break
            assert time.monotonic() < deadline and worker.poll() is None
            time.sleep(0.02)
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err[-2000:]
    with psycopg.connect(pg_url) as conn:
        status = conn.execute("SELECT status::text FROM procrastinate_jobs").fetchone()
        run = conn.execute("SELECT outcome, finished_at IS NOT NULL FROM edi_runs").fetchone()
    assert status == ("succeeded",) and run == ("delivered", True)
    assert len(remote_files(sshd, "acme")) == 1 and len(delivered(home, pg_url)) == 1


def test_a_lagging_scheduler_never_defers_an_earlier_period_again(pg_url: str) -> None:
    from edi import store
    from edi.shared_scheduler import defer_periodic

    store.init_schema(pg_url)

    def defer(timestamp: int) -> str:
        outcome, _ = defer_periodic(
            pg_url,
            task_name="edi.run_feed",
            periodic_id="acme/colonial",
            timestamp=timestamp,
            kwargs={"carrier": "colonial"},
            lock="acme/colonial",
        )
        return outcome

    def finish_all() -> None:
        with psycopg.connect(pg_url) as conn:
            conn.execute("UPDATE procrastinate_jobs SET status = 'succeeded'")

    assert defer(120) == "deferred"
    assert defer(120) == "already-deferred"
    assert defer(180) == "already-queued"  # 120's run has not started: it covers 180
    finish_all()
    assert defer(240) == "deferred"  # procrastinate drops its record of 120 here
    finish_all()
    assert defer(120) == "already-deferred"  # a scheduler a period behind
    assert defer(180) == "already-deferred"
    with psycopg.connect(pg_url) as conn:
        stamps = conn.execute(
            "SELECT (args->>'timestamp')::int FROM procrastinate_jobs ORDER BY id"
        ).fetchall()
    assert stamps == [(120,), (240,)]
