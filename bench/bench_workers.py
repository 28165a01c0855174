"""Queued runs through 1 and then 2 workers: feeds per hour, queue latency, peak RSS.

    python bench/bench_workers.py [--workspaces 30] [--employees 1000] [--workers 1,2]
                                  [--store-url postgresql://…] [--out bench/results_workers.json]

WORKSPACES employers (each its own workspace, seeded export of EMPLOYEES employees, and the
three carriers colonial, unum and allstate, each delivering encrypted to its own folder on one
loopback sshd) share one PostgreSQL store: a throwaway cluster started here (initdb, as the test
fixture does) unless --store-url names one. For each worker count, every feed starts from
nothing (state/ and the sshd folders emptied, a fresh database), all feeds are enqueued, then
that many `edi worker` processes (one job at a time each) run them. Measured: wall time from
the workers' start to the last job's end (feeds per hour), queue latency (procrastinate's
`deferred` → `started` events: for the batch, and for single jobs enqueued to an idle worker),
and each worker process's peak RSS (os.wait4). Writes the JSON and prints a table. Not a test:
nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import transmit  # noqa: E402
from bench.make_data import write as make_data  # noqa: E402
from edi import jobs, store  # noqa: E402
from edi.demo import carrier_key, demo_tables, prepare  # noqa: E402
from edi.workspace import Workspace  # noqa: E402

CARRIERS = ("colonial", "unum", "allstate")
AS_OF = date(2026, 11, 24)
# Runs the worker, forwards SIGTERM to it, prints its exit status, peak RSS (KiB), CPU seconds.
_WRAPPER = """
import os, signal, subprocess, sys
child = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=open(sys.argv[1], "w"))
signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum))
_, status, usage = os.wait4(child.pid, 0)
print(status, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, flush=True)
"""


def machine_cpu() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine so far (/proc/stat): what else ran."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return (sum(fields) - idle) / tick, sum(fields) / tick


def build_workspaces(
    scratch: Path, count: int, employees: int, server: transmit.LoopbackServer
) -> list[Path]:
    """COUNT employer workspaces with the three carriers, each delivering to its own folder."""
    template = prepare(Workspace.open(REPO), scratch / "template")
    keys = {carrier: carrier_key(template.home, carrier)[0] for carrier in CARRIERS}
    homes = []
    for index in range(count):
        name = f"employer-{index:02d}"
        home = scratch / name
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(template.carriers_dir, home / "carriers")
        data = scratch / "data" / f"{employees}-{index:02d}"
        if not data.exists():
            make_data(employees, 100 + index, data)
        for carrier in CARRIERS:
            inbox = server.root / name / carrier
            profile = home / "carriers" / f"{carrier}.toml"
            profile.write_text(
                profile.read_text() + demo_tables(carrier, keys[carrier], server, inbox)
            )
        (home / "edi.toml").write_text(
            f'name = "{name}"\nsource = "{data.resolve()}"\nsample_data = true\n\n[store]\n'
        )
        homes.append(home)
    return homes


def reset(homes: list[Path], server: transmit.LoopbackServer) -> None:
    for home in homes:
        transmit.stop_gpg_agent(home / "state" / "gnupg")
        shutil.rmtree(home / "state", ignore_errors=True)
        shutil.rmtree(home / "out", ignore_errors=True)
        for carrier in CARRIERS:
            inbox = server.root / home.name / carrier
            shutil.rmtree(inbox, ignore_errors=True)
            inbox.mkdir(parents=True)


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    import psycopg

    name = f"edi_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _final(url: str, job_ids: list[int]) -> bool:
    with store.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE id = ANY(%s) AND status::text = ANY(%s)",
            (job_ids, list(jobs.FINAL)),
        ).fetchone()
    return bool(row and row[0] == len(job_ids))


def _wait(url: str, job_ids: list[int], timeout_s: float, workers: list[Any]) -> None:
    deadline = time.monotonic() + timeout_s
    while not _final(url, job_ids):
        if any(w.poll() is not None for w in workers):
            raise RuntimeError("a worker exited before the queue was done")
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs not done within {timeout_s:g} s")
        time.sleep(0.1)


def _latencies(url: str, job_ids: list[int]) -> list[float]:
    with store.connect(url) as conn:
        rows = conn.execute(
            """
            SELECT extract(epoch FROM min(s.at) - min(d.at))
              FROM procrastinate_events d JOIN procrastinate_events s USING (job_id)
             WHERE job_id = ANY(%s) AND d.type = 'deferred' AND s.type = 'started'
             GROUP BY job_id
            """,
            (job_ids,),
        ).fetchall()
    return [float(r[0]) for r in rows]


def _span(url: str, job_ids: list[int]) -> tuple[float, float]:
    """Epoch seconds of the first job's start and the last job's end."""
    with store.connect(url) as conn:
        row = conn.execute(
            """
            SELECT extract(epoch FROM min(at) FILTER (WHERE type = 'started')),
                   extract(epoch FROM max(at) FILTER (WHERE type::text = ANY(%s)))
              FROM procrastinate_events WHERE job_id = ANY(%s)
            """,
            (list(jobs.FINAL), job_ids),
        ).fetchone()
    assert row is not None
    return float(row[0]), float(row[1])


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(p95, 3),
        "max": round(ordered[-1], 3),
        "mean": round(statistics.fmean(ordered), 3),
    }


def trial(
    admin_url: str,
    homes: list[Path],
    server: transmit.LoopbackServer,
    workers: int,
    scratch: Path,
    probes: int,
) -> dict[str, Any]:
    reset(homes, server)
    with fresh_database(admin_url) as url:
        store.init_schema(url)
        feeds = [(home, carrier) for home in homes for carrier in CARRIERS]
        job_ids = []
        for home, carrier in feeds:
            queued = jobs.enqueue(url, Workspace.open(home), carrier, as_of=AS_OF)
            assert queued.queued and queued.job_id is not None
            job_ids.append(queued.job_id)
        load_before = os.getloadavg()[0]
        env = {**os.environ, store.DEFAULT_URL_ENV: url, "PYTHONPATH": str(REPO)}
        env.pop("EDI_CRASH_AT", None)
        command = [sys.executable, "-m", "edi", "worker", "--poll-s", "0.5"]
        started = time.time()
        busy_before, total_before = machine_cpu()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _WRAPPER, str(scratch / f"w{workers}-{n}.log"), *command],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for n in range(workers)
        ]
        try:
            _wait(url, job_ids, 3600, procs)
            finished = time.time()
            busy_after, total_after = machine_cpu()
            first_start, last_end = _span(url, job_ids)
            batch_latency = _latencies(url, job_ids)
            idle_latency = []
            for n in range(probes):  # one job at a time into an idle queue
                time.sleep(1.0)
                home, carrier = feeds[n % len(feeds)]
                probe = jobs.enqueue(url, Workspace.open(home), carrier, as_of=AS_OF)
                assert probe.job_id is not None
                _wait(url, [probe.job_id], 600, procs)
                idle_latency.extend(_latencies(url, [probe.job_id]))
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            rss, statuses, cpu = [], [], []
            for proc in procs:
                out, _ = proc.communicate(timeout=300)
                status, max_rss_kb, cpu_s = out.split()
                statuses.append(int(status))
                rss.append(round(int(max_rss_kb) / 1024, 1))
                cpu.append(float(cpu_s))
        load_after = os.getloadavg()[0]
        rows = jobs.list_jobs(url)
    outcomes = Counter(
        f"{row.status}/{row.outcome or row.error_code}" for row in rows if row.id in job_ids
    )
    uploads = sum(
        1
        for home in homes
        for carrier in CARRIERS
        for path in (server.root / home.name / carrier).iterdir()
        if not path.name.startswith(".")
    )
    wall = finished - started
    return {
        "workers": workers,
        "feeds": len(job_ids),
        "wall_s": round(wall, 2),
        "feeds_per_hour": round(len(job_ids) / wall * 3600),
        "jobs_span_s": round(last_end - first_start, 2),
        "feeds_per_hour_jobs_span": round(len(job_ids) / (last_end - first_start) * 3600),
        "queue_latency_batch_s": _stats(batch_latency),
        "queue_latency_idle_s": _stats(idle_latency),
        "peak_rss_mb_per_worker": rss,
        "worker_exit_status": statuses,
        # The workers' own CPU (with the gpg they wait for), per feed; and how busy the whole
        # machine was while the batch ran (sshd, PostgreSQL, and whatever else shares it).
        "worker_cpu_s_per_feed": round(sum(cpu) / (len(job_ids) + probes), 3),
        "machine_busy_cores": round((busy_after - busy_before) / wall, 2),
        "machine_cores_seen": round((total_after - total_before) / wall, 2),
        "outcomes": dict(outcomes),
        "uploads": uploads,
        "load_avg_1m": [round(load_before, 2), round(load_after, 2)],
    }


def run_bench(
    *,
    workspaces: int,
    employees: int,
    worker_counts: list[int],
    scratch: Path,
    store_url: str | None,
    probes: int = 3,
) -> dict[str, Any]:
    scratch.mkdir(parents=True, exist_ok=True)
    for stale in ("template", "sftp-root", "sshd"):
        shutil.rmtree(scratch / stale, ignore_errors=True)
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count()},
        "size": {"workspaces": workspaces, "carriers": len(CARRIERS), "employees": employees},
        "trials": [],
    }
    with contextlib.ExitStack() as stack:
        if store_url is None:
            from tests.support.postgres import running_postgres

            server_pg = stack.enter_context(running_postgres())
            store_url = server_pg.url()
        server = stack.enter_context(
            transmit.LoopbackSftpServer(scratch / "sftp-root", scratch / "sshd")
        )
        homes = build_workspaces(scratch, workspaces, employees, server)
        for count in worker_counts:
            print(f"{count} worker(s) ...", file=sys.stderr, flush=True)
            results["trials"].append(trial(store_url, homes, server, count, scratch, probes))
        for home in homes:
            transmit.stop_gpg_agent(home / "state" / "gnupg")
    for carrier in CARRIERS:
        transmit.stop_gpg_agent(scratch / "template" / "carrier-side" / carrier / "gnupg")
    return add_ratios(results)


def add_ratios(results: dict[str, Any]) -> dict[str, Any]:
    """The measured 2 / 1 ratios (the best trial of each count); and, since the machine may be
    shared, what the workers' own CPU per feed says two free cores would give (2 x CPU per feed
    alone / CPU per feed side by side: an estimate leaving out sshd and PostgreSQL)."""
    by_count: dict[int, dict[str, Any]] = {}
    for t in results["trials"]:  # with repeated counts (--workers 1,2,1,2): the best of each
        best = by_count.get(t["workers"])
        if best is None or t["feeds_per_hour"] > best["feeds_per_hour"]:
            by_count[t["workers"]] = t
    if 1 in by_count and 2 in by_count:
        one, two = by_count[1], by_count[2]
        results["ratio_2_vs_1_workers"] = round(two["feeds_per_hour"] / one["feeds_per_hour"], 2)
        results["ratio_2_vs_1_workers_jobs_span"] = round(
            two["feeds_per_hour_jobs_span"] / one["feeds_per_hour_jobs_span"], 2
        )
        if one.get("worker_cpu_s_per_feed") and two.get("worker_cpu_s_per_feed"):
            results["ratio_2_vs_1_estimate_two_free_cores"] = round(
                2 * one["worker_cpu_s_per_feed"] / two["worker_cpu_s_per_feed"], 2
            )
    return results


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    size = results["size"]
    table = Table(
        title=f"{size['workspaces']} workspaces x {size['carriers']} carriers x "
        f"{size['employees']} employees through edi workers"
    )
    for column in ("workers", "wall s", "feeds/h", "latency p50/p95 s", "idle latency", "RSS MB"):
        table.add_column(column)
    for t in results["trials"]:
        batch, idle = t["queue_latency_batch_s"], t["queue_latency_idle_s"]
        table.add_row(
            str(t["workers"]),
            str(t["wall_s"]),
            str(t["feeds_per_hour"]),
            f"{batch.get('p50')}/{batch.get('p95')}",
            str(idle.get("p50")),
            ", ".join(map(str, t["peak_rss_mb_per_worker"])),
        )
    Console().print(table)
    if "ratio_2_vs_1_workers" in results:
        print(f"2 workers / 1 worker: {results['ratio_2_vs_1_workers']}x (goal >= 1.8)")
        for t in results["trials"]:
            print(
                f"{t['workers']} worker(s): {t['worker_cpu_s_per_feed']} CPU-s per feed, "
                f"machine busy {t['machine_busy_cores']} of {t['machine_cores_seen']} cores"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=30)
    parser.add_argument("--employees", type=int, default=1000)
    parser.add_argument(
        "--workers", default="1,2", help="worker counts, one trial each (1,2,1,2: best of two)"
    )
    parser.add_argument("--probes", type=int, default=3, help="single jobs into an idle queue")
    parser.add_argument("--store-url", default=None, help="an admin URL (default: a temp cluster)")
    parser.add_argument("--scratch", type=Path, default=REPO / "bench" / "out" / "workers")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results_workers.json")
    args = parser.parse_args()
    results = run_bench(
        workspaces=args.workspaces,
        employees=args.employees,
        worker_counts=[int(n) for n in args.workers.split(",") if n],
        scratch=args.scratch.resolve(),
        store_url=args.store_url,
        probes=args.probes,
    )
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


if __name__ == "__main__":
    main()
