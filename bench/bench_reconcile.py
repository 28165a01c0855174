"""Reconciliation at scale: ~100k members on each side, timed end to end with peak memory.

    python bench/bench_reconcile.py [--employees 59000] [--small 5900]

PlanSource's side is a seeded export (bench/make_data.py); the carrier's roster is our own full
colonial file turned round as a carrier sends it (audit 834, INS03/HD01 030), with planted
differences: every 1000th member's birth date, every 1500th member's first HD05, every 2000th
member loop left out. `edi reconcile` runs in a child process (wall time and peak RSS of that
process), at the full size and at a tenth of it: flat memory means the two peaks are close.
Writes bench/results_reconcile.json. Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.make_data import write as make_data  # noqa: E402
from edi.mapping import MappingContext, map_members  # noqa: E402
from edi.members import MappingReport  # noqa: E402
from edi.plansource.export import read_export  # noqa: E402
from edi.profiles import load_profile  # noqa: E402
from edi.workspace import Workspace  # noqa: E402
from edi.x12.writer import Envelope, write_body, write_file  # noqa: E402

CARRIER = "colonial"
AS_OF = date(2026, 11, 24)
NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def our_full_file(workspace: Workspace, source: Path, target: Path) -> int:
    """What we would send: the full file (written by the project's writer, not validated here:
    the test suite validates what this writer produces)."""
    profile = load_profile(workspace, CARRIER)
    body_path = target.with_suffix(".body")
    with read_export(source, claims=profile.claims_code) as data:
        context = MappingContext(profile, AS_OF, "full")
        members = map_members(context, data.groups(), MappingReport())
        body = write_body(members, profile, body_path)
    write_file(profile, "full", body, Envelope(1, NOW), target)
    body_path.unlink()
    return body.members


def carrier_roster(ours: Path, roster: Path) -> dict[str, int]:
    """Our file as the carrier sends it back, with planted differences (streamed line by line)."""
    planted = {"birthdate": 0, "tier": 0, "missing": 0}
    member = 0
    skipping = False
    tier_pending = False
    removed_segments = 0
    with ours.open() as src, roster.open("w") as dst:
        for line in src:
            seg = line.rstrip("~\n").split("*")
            tag = seg[0]
            if tag == "INS":
                member += 1
                skipping = member % 2000 == 0 and seg[2] != "18"
                planted["missing"] += skipping
                tier_pending = member % 1500 == 0
                if seg[3] != "024":
                    seg[3] = "030"
                    seg[4:5] = [""] if len(seg) > 4 else []
            elif tag in ("SE", "GE", "IEA") and skipping:
                skipping = False
            if skipping:
                removed_segments += 1
                continue
            if tag == "ISA":
                seg[5], seg[6], seg[7], seg[8] = seg[7], seg[8], seg[5], seg[6]
            elif tag == "GS":
                seg[2], seg[3] = seg[3], seg[2]
            elif tag == "BGN":
                seg[8] = "4"
            elif tag == "HD":
                if seg[1] != "024":
                    seg[1] = "030"
                if tier_pending and len(seg) > 5 and seg[5]:
                    seg[5] = "ECH" if seg[5] != "ECH" else "FAM"
                    planted["tier"] += 1
                    tier_pending = False
            elif tag == "DMG" and member % 1000 == 0:
                seg[2] = "19000101"
                planted["birthdate"] += 1
            dst.write("*".join(seg) + "~\n")
    planted["segments_removed"] = removed_segments
    return planted


def timed_reconcile(home: Path, roster: Path, source: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "edi",
        "--now",
        NOW.isoformat(),
        "reconcile",
        "--carrier",
        CARRIER,
        str(roster),
        "--source",
        str(source),
        "--as-of",
        AS_OF.isoformat(),
        "--json",
        "--home",
        str(home),
    ]
    script = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "s = time.perf_counter() - t\n"
        "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "rss = usage.ru_maxrss / 1024\n"
        "cpu = usage.ru_utime + usage.ru_stime\n"
        "load = open('/proc/loadavg').read().split()[0]\n"
        "print(json.dumps({'s': s, 'rss': rss, 'cpu': cpu, 'load': load,"
        " 'code': done.returncode, 'out': done.stdout, 'err': done.stderr[-2000:]}))\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    probe = subprocess.run(
        [sys.executable, "-c", script, *command],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    measured = json.loads(probe.stdout)
    if measured["code"] not in (0, 1):
        raise SystemExit(f"reconcile failed: {measured['err']}")
    report = json.loads(measured["out"])
    return {
        "reconcile_s": round(measured["s"], 2),
        # CPU seconds of both processes together (the roster reader runs on the second core):
        # the wall time on a machine shared with other work is larger, the load average says how.
        "reconcile_cpu_s": round(measured["cpu"], 2),
        "load_average_after": float(measured["load"]),
        "peak_rss_mb": round(measured["rss"], 1),
        "exit_code": measured["code"],
        "summary": report["summary"],
    }


def one_size(employees: int, scratch: Path) -> dict[str, Any]:
    source = scratch / f"data-{employees}"
    if not (source / "coverages.json").exists():
        make_data(employees, 7, source)
    home = scratch / f"reconcile-workspace-{employees}"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(REPO / "carriers", home / "carriers")
    workspace = Workspace.open(home)
    ours = home / "ours.834"
    started = time.perf_counter()
    members = our_full_file(workspace, source, ours)
    write_s = time.perf_counter() - started
    roster = home / "roster.834"
    planted = carrier_roster(ours, roster)
    roster_members = sum(1 for line in roster.open() if line.startswith("INS*"))
    result = timed_reconcile(home, roster, source)
    return {
        "employees": employees,
        "plansource_members": members,
        "roster_members": roster_members,
        "roster_mb": round(roster.stat().st_size / 1e6, 1),
        "planted": planted,
        "our_file_write_s": round(write_s, 1),
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, default=59_000)
    parser.add_argument("--small", type=int, default=5_900, help="0: skip the memory comparison")
    parser.add_argument("--scratch", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args()
    scratch = args.scratch.resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count()},
        "note": "reconcile_s is wall time of `edi reconcile` on this machine as shared at the "
        "time (see load_average_after); reconcile_cpu_s is the CPU of both of its processes "
        "together, an upper bound of its wall time on two otherwise idle cores",
        "sizes": [],
    }
    sizes = [args.small, args.employees] if args.small else [args.employees]
    for employees in sizes:
        measured = one_size(employees, scratch)
        results["sizes"].append(measured)
        print(json.dumps(measured, indent=2), flush=True)
    if len(results["sizes"]) == 2:
        small, large = results["sizes"]
        results["rss_large_vs_small"] = round(large["peak_rss_mb"] / small["peak_rss_mb"], 2)
    results["self_peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    (REPO / "bench" / "results_reconcile.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
