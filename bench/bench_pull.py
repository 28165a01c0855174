"""Benchmark `edi pull` against the PlanSource sandbox with injected latency.

    python bench/bench_pull.py [--employees 100000] [--small 1000] [--latency-ms 50]

Same run, same sandbox: a pull at the default concurrency and one at concurrency 1 (sequential),
and their ratio; then the peak RSS of a pull of few pages (the small export) against one of many
pages (the large export). Every pull runs in its own child process, which reports its own time
and peak RSS (`ru_maxrss`). The sandbox is `edi sandbox plansource`, a separate process.
Data comes from `bench/make_data.py` (deterministic; kept in bench/out/pull/).

Writes bench/results_pull.json and prints a table. Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out" / "pull"
RESULTS = REPO / "bench" / "results_pull.json"
SECRET = "sandbox-secret"
RECORD_KINDS = ("subscribers", "dependents", "coverages")


def make_data(employees: int, seed: int) -> Path:
    folder = OUT / f"data-{employees}"
    if not (folder / "coverages.json").exists():
        command = [sys.executable, "bench/make_data.py", "--employees", str(employees)]
        subprocess.run([*command, "--seed", str(seed), "--out", str(folder)], cwd=REPO, check=True)
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def sandbox(data: Path, latency_ms: float) -> Iterator[str]:
    """`edi sandbox plansource` in a child process; yields its root URL once it answers."""
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "edi", "sandbox", "plansource", "--port", str(port)]
    command += ["--data", str(data), "--latency-ms", str(latency_ms)]
    server = subprocess.Popen(command, cwd=REPO, stderr=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # loading 100k employees takes a while
        while True:
            try:
                httpx.get(f"{root}/_sandbox/stats", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.2)
        yield root
    finally:
        server.terminate()
        server.wait(timeout=30)


def sandbox_stats(root: str) -> dict[str, Any]:
    import httpx

    stats: dict[str, Any] = httpx.get(f"{root}/_sandbox/stats", timeout=5).json()
    return stats


def child_pull(root: str, concurrency: int, out: Path) -> dict[str, Any]:
    """One pull in a fresh process: its own wall time and peak RSS."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, __file__, "--child", root, "--concurrency", str(concurrency)]
    started = time.perf_counter()
    done = subprocess.run([*command, "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pull failed: {done.stderr.strip()[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    report["process_seconds"] = round(time.perf_counter() - started, 2)
    shutil.rmtree(out, ignore_errors=True)
    return report


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class RssSampler:
    """A pull progress callback: the resident size after every 100th page."""

    def __init__(self) -> None:
        self.pages = 0
        self.samples: list[tuple[int, float]] = []

    def __call__(self, endpoint: str, done: int, total: int | None) -> None:
        self.pages += 1
        if self.pages % 100 == 0:
            self.samples.append((self.pages, current_rss_mb()))


def run_child(root: str, concurrency: int, out: Path) -> None:
    sys.path.insert(0, str(REPO))
    from edi.plansource.client import ClientSecret
    from edi.plansource.pull import pull
    from edi.workspace import PlanSourceSettings

    settings = PlanSourceSettings(
        base_url=f"{root}/admin/v2",
        token_url=f"{root}/oauth/v2/token",
        client_id="sandbox",
        per_page=500,
        concurrency=concurrency,
    )
    rss = RssSampler()
    started = time.perf_counter()
    manifest = pull(settings, out, progress=rss, credentials=ClientSecret("sandbox", SECRET))
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {
        "concurrency": concurrency,
        "pull_seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "rss_mb_by_pages": rss.samples,
        "records": manifest.counts,
        "pages": {name: e.pages for name, e in manifest.endpoints.items()},
        "record_pages": sum(manifest.endpoints[k].pages for k in RECORD_KINDS),
        "snapshot_mb": round(sum(f.stat().st_size for f in out.rglob("*")) / 2**20, 1),
    }
    print(json.dumps(report))


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"  {label:<{width}}  {value}" for label, value in rows)


def measure(args: argparse.Namespace, concurrency: int) -> dict[str, Any]:
    """The timed pair on the large export, then the RSS points on the smaller ones."""
    large = make_data(args.employees, args.seed)
    with sandbox(large, args.latency_ms) as root:
        concurrent = child_pull(root, concurrency, OUT / "snap-concurrent")
        sequential = child_pull(root, 1, OUT / "snap-sequential")
        stats = sandbox_stats(root)
    rss_points = {}
    for employees in (args.small, args.medium):
        with sandbox(make_data(employees, args.seed), args.latency_ms) as root:
            rss_points[employees] = child_pull(root, concurrency, OUT / f"snap-{employees}")
    rss_points[args.employees] = concurrent
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "employees": args.employees,
        "latency_ms": args.latency_ms,
        "per_page": 500,
        "concurrent": concurrent,
        "sequential": sequential,
        "concurrent_over_sequential": round(
            concurrent["pull_seconds"] / sequential["pull_seconds"], 3
        ),
        "target_ratio": 0.3,
        "sandbox_max_in_flight": stats["max_in_flight"],
        "peak_rss_by_employees": {
            str(n): {"record_pages": r["record_pages"], "peak_rss_mb": r["peak_rss_mb"]}
            for n, r in sorted(rss_points.items())
        },
    }


def report(results: dict[str, Any], concurrency: int) -> str:
    concurrent, sequential = results["concurrent"], results["sequential"]
    rows = [
        ("records", json.dumps(concurrent["records"])),
        ("pages", f"{concurrent['record_pages']} record pages: {concurrent['pages']}"),
        (
            f"concurrency {concurrency} (default)",
            f"{concurrent['pull_seconds']:.1f} s, CPU {concurrent['cpu_seconds']:.1f} s",
        ),
        (
            "concurrency 1",
            f"{sequential['pull_seconds']:.1f} s, CPU {sequential['cpu_seconds']:.1f} s",
        ),
        ("ratio (target <= 0.3)", f"{results['concurrent_over_sequential']:.3f}"),
        ("most requests in flight", str(results["sandbox_max_in_flight"])),
    ]
    for employees, point in results["peak_rss_by_employees"].items():
        label = f"peak RSS, {int(employees):,} employees"
        rows.append((label, f"{point['peak_rss_mb']} MB ({point['record_pages']} pages)"))
    curve = ", ".join(f"{n}: {mb}" for n, mb in concurrent["rss_mb_by_pages"][::2])
    rows.append(("RSS MB after N pages (large)", curve))
    return table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--employees", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1_000, help="employees, few pages (RSS)")
    parser.add_argument("--medium", type=int, default=10_000, help="employees, more pages (RSS)")
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", metavar="ROOT_URL", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.concurrency, args.out)
        return

    sys.path.insert(0, str(REPO))
    from edi.workspace import PlanSourceSettings

    concurrency = int(PlanSourceSettings().concurrency)
    results = measure(args, concurrency)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"edi pull from the sandbox, {args.latency_ms:g} ms latency per request, per_page 500")
    print(report(results, concurrency))
    print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
