"""The benchmark: every figure is a ratio against a reference measured in the same run.

    bench/run [--sizes 1000,10000,100000] [--sftp-mb 50]

Writes bench/results.json and prints a table. Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import transmit  # noqa: E402
from bench.make_data import write as make_data  # noqa: E402
from edi.baseline import BaselineStore, ProposalWriter  # noqa: E402
from edi.demo import carrier_key, demo_tables, prepare  # noqa: E402
from edi.mapping import MappingContext, map_members  # noqa: E402
from edi.members import MappingReport  # noqa: E402
from edi.pipeline import content_fingerprint, run  # noqa: E402
from edi.plansource.export import read_export  # noqa: E402
from edi.profiles import load_profile  # noqa: E402
from edi.validate import parallel_pyx12_findings, pyx12_findings  # noqa: E402
from edi.workspace import Workspace  # noqa: E402
from edi.x12.writer import Envelope, write_body, write_file  # noqa: E402

CARRIER = "colonial"
AS_OF = date(2026, 11, 24)
NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def timed(action: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def generate_without_validation(workspace: Workspace, source: Path, out: Path) -> tuple[Path, int]:
    """What `edi generate` does for a carrier's first full file, up to the finished file and
    without validating it: read, map, propose the baseline, write body, write envelope."""
    profile = load_profile(workspace, CARRIER)
    out.mkdir(parents=True, exist_ok=True)
    store = BaselineStore(out / "baseline.sqlite")
    proposal = ProposalWriter(store.path, CARRIER, "bench")
    with read_export(source, out, claims=profile.claims_code) as data:
        members = map_members(MappingContext(profile, AS_OF), data.groups(), MappingReport())
        body = write_body(proposal.tee(members), profile, out / "body.tmp")
    proposal.finish(content_fingerprint(profile, "full", body))
    path = out / "bench.834"
    se01 = write_file(profile, "full", body, Envelope(1, NOW), path)
    (out / "body.tmp").unlink()
    (out / "baseline.sqlite").unlink()
    return path, se01 + 4


def stage_seconds(workspace: Workspace, source: Path, out: Path) -> dict[str, float]:
    """The same path with each stage run to completion on its own (so it holds every member
    in memory: a profile, not a measurement of the real streaming run)."""
    profile = load_profile(workspace, CARRIER)
    seconds: dict[str, float] = {}
    store = BaselineStore(out / "stages.sqlite")
    started = time.perf_counter()
    with read_export(source, out, claims=profile.claims_code) as data:
        seconds["read_and_cross_check"] = time.perf_counter() - started
        seconds["validate_and_group"], groups = timed(lambda: list(data.groups()))
    ctx = MappingContext(profile, AS_OF)
    seconds["map"], members = timed(lambda: list(map_members(ctx, groups, MappingReport())))
    proposal = ProposalWriter(store.path, CARRIER, "stages")
    seconds["propose_baseline"], _ = timed(lambda: list(proposal.tee(members)))
    proposal.discard()
    seconds["write_body"], _ = timed(lambda: write_body(members, profile, out / "stages.body"))
    (out / "stages.body").unlink()
    return {stage: round(value, 3) for stage, value in seconds.items()}


# The command runs under a small fresh interpreter: a child forked from this (large) benchmark
# process would report this process's pages as its own peak until it execs.
_MEASURE_PEAK = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(status, usage.ru_maxrss)
"""


def peak_rss_mb(command: list[str]) -> float:
    """Peak resident memory of one command and the processes it waits for (os.wait4)."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE_PEAK, *command], capture_output=True, text=True, check=True
    ).stdout.split()
    status, max_rss_kb = int(out[0]), int(out[1])
    if status != 0:
        raise RuntimeError(f"{command} failed with status {status}")
    return max_rss_kb / 1024


def measure_size(employees: int, scratch: Path, demo: Workspace) -> dict[str, Any]:
    source = scratch / f"data-{employees}"
    if not source.exists():
        make_data(employees, 7, source)
    workspace = Workspace.open(demo.home)
    gen_s, (path, segments) = timed(
        lambda: generate_without_validation(workspace, source, scratch / f"gen-{employees}")
    )
    stages = stage_seconds(workspace, source, scratch / f"gen-{employees}")
    pyx12_s, findings = timed(lambda: pyx12_findings(path))
    parallel_s, parallel = timed(lambda: parallel_pyx12_findings(path, os.cpu_count() or 2))
    assert not findings and not parallel, "the benchmark file must be valid"
    run_s, outcome = timed(
        lambda: run(Workspace.open(demo.home), CARRIER, now=NOW, as_of=AS_OF, source=source)
    )
    rss = peak_rss_mb(
        [
            sys.executable,
            "-m",
            "edi",
            "--home",
            str(demo.home),
            "generate",
            "-c",
            CARRIER,
            "--source",
            str(source),
            "--out",
            str(scratch / f"rss-{employees}"),
            "--as-of",
            "2026-11-24",
        ]
    )
    return {
        "employees": employees,
        "segments": segments,
        "file_mb": round(path.stat().st_size / 1e6, 2),
        "generate_s": round(gen_s, 2),
        "generate_segments_per_s": round(segments / gen_s),
        "pyx12_s": round(pyx12_s, 2),
        "pyx12_segments_per_s": round(segments / pyx12_s),
        "writer_vs_pyx12_speed": round(pyx12_s / gen_s, 2),
        "generate_stages_s": stages,
        "write_body_alone_vs_pyx12_speed": round(pyx12_s / stages["write_body"], 2),
        "parallel_validation_s": round(parallel_s, 2),
        "run_end_to_end_s": round(run_s, 2),
        "run_vs_pyx12_alone": round(run_s / pyx12_s, 2),
        "run_outcome": outcome.outcome,
        "generate_peak_rss_mb": round(rss, 1),
    }


def best_of(runs: int, action: Any) -> float:
    return min(timed(action)[0] for _ in range(runs))


def measure_encryption(demo: Workspace, scratch: Path, plain: Path) -> dict[str, Any]:
    """Both sides warmed up (key imported, agent running), best of three each."""
    fingerprint, _ = carrier_key(demo.home, CARRIER)
    key_file = demo.home / "carriers" / "keys" / f"{CARRIER}.asc"
    spec = transmit.EncryptionSpec(fingerprint, key_file)
    gnupg = scratch / "bench-gnupg"

    def ours() -> None:
        transmit.encrypt_file(plain, scratch / "ours.pgp", spec, gnupg)

    command = [
        "gpg",
        "--homedir",
        str(gnupg),
        "--batch",
        "--yes",
        "--trust-model",
        "always",
        "--rfc4880",
        "--cipher-algo",
        "AES256",
        "-r",
        fingerprint,
        "-o",
        str(scratch / "gpg.pgp"),
        "-e",
        str(plain),
    ]

    def theirs() -> None:
        subprocess.run(command, check=True, capture_output=True)

    ours()
    ours_s, gpg_s = best_of(3, ours), best_of(3, theirs)
    mb = plain.stat().st_size / 1e6
    return {
        "encrypt_mb": round(mb, 1),
        "encrypt_mb_per_s": round(mb / ours_s, 1),
        "gpg_cli_mb_per_s": round(mb / gpg_s, 1),
        "encrypt_vs_gpg": round(gpg_s / ours_s, 2),
    }


def measure_sftp(scratch: Path, megabytes: int) -> dict[str, Any]:
    payload = scratch / "sftp-payload.bin"
    payload.write_bytes(os.urandom(megabytes * 1024 * 1024))
    with transmit.LoopbackSftpServer(scratch / "sftp-root", scratch / "sftp-state") as server:
        inbox = server.root / "in"
        inbox.mkdir(parents=True, exist_ok=True)
        settings = transmit.SftpSettings(
            server.host,
            server.port,
            server.username,
            server.host_key_fingerprint,
            str(inbox),
            private_key_file=server.client_key,
        )

        def ours() -> None:
            destination = transmit.SftpDestination(settings)
            try:
                destination.put(payload, "ours.bin")
            finally:
                destination.close()

        ours_s, _ = timed(ours)
        batch = scratch / "sftp-batch"
        batch.write_text(f"put {payload} {inbox}/openssh.bin\n")
        command = [
            "sftp",
            "-q",
            "-b",
            str(batch),
            "-i",
            str(server.client_key),
            "-P",
            str(server.port),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            f"{server.username}@{server.host}",
        ]
        openssh_s, _ = timed(lambda: subprocess.run(command, check=True, capture_output=True))
        assert transmit.sha256_file(inbox / "ours.bin") == transmit.sha256_file(payload)
    mb = payload.stat().st_size / 1e6
    return {
        "sftp_mb": round(mb, 1),
        "sftp_mb_per_s": round(mb / ours_s, 1),
        "openssh_sftp_mb_per_s": round(mb / openssh_s, 1),
        "sftp_vs_openssh": round(openssh_s / ours_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--sftp-mb", type=int, default=50)
    parser.add_argument("--scratch", type=Path, default=REPO / "bench" / "out")
    parser.add_argument(
        "--keep-sizes",
        action="store_true",
        help="Reuse the per-size rows of bench/results.json; measure the rest.",
    )
    args = parser.parse_args()
    scratch = args.scratch.resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    demo_home = scratch / "workspace"
    for stale in (demo_home, scratch / "run-root", scratch / "sftp-root", scratch / "bench-gnupg"):
        shutil.rmtree(stale, ignore_errors=True)  # a fresh carrier side and a fresh baseline
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "sizes": []}
    with transmit.LoopbackSftpServer(scratch / "run-root", scratch / "run-sshd") as server:
        demo = prepare(Workspace.open(REPO), demo_home)
        fingerprint, _ = carrier_key(demo_home, CARRIER)
        inbox = server.root / CARRIER
        inbox.mkdir(parents=True, exist_ok=True)
        profile = demo.carriers_dir / f"{CARRIER}.toml"
        profile.write_text(profile.read_text() + demo_tables(CARRIER, fingerprint, server, inbox))
        if args.keep_sizes:
            results["sizes"] = json.loads((REPO / "bench" / "results.json").read_text())["sizes"]
        for size in (int(s) for s in args.sizes.split(",") if s):
            print(f"measuring {size} employees ...", file=sys.stderr, flush=True)
            row = measure_size(size, scratch, demo)
            results["sizes"] = [r for r in results["sizes"] if r["employees"] != size] + [row]
        results["sizes"].sort(key=lambda r: r["employees"])
    largest = scratch / f"gen-{results['sizes'][-1]['employees']}" / "bench.834"
    results["encryption"] = measure_encryption(demo, scratch, largest)
    results["sftp"] = measure_sftp(scratch, args.sftp_mb)
    (REPO / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="edi benchmark (ratios against references measured in the same run)")
    columns = [
        "employees",
        "segments",
        "generate_segments_per_s",
        "pyx12_segments_per_s",
        "writer_vs_pyx12_speed",
        "parallel_validation_s",
        "pyx12_s",
        "run_end_to_end_s",
        "run_vs_pyx12_alone",
        "generate_peak_rss_mb",
    ]
    for column in columns:
        table.add_column(column.replace("_", " "), justify="right")
    for row in results["sizes"]:
        table.add_row(*(str(row[c]) for c in columns))
    console = Console(width=200)
    console.print(table)
    for row in results["sizes"]:
        console.print(
            f"{row['employees']} employees, generate stages (s): {row['generate_stages_s']}; "
            f"834 writer alone vs pyx12: {row['write_body_alone_vs_pyx12_speed']}"
        )
    console.print(f"encryption: {results['encryption']}")
    console.print(f"sftp: {results['sftp']}")


if __name__ == "__main__":
    main()
