"""The SQLite path (a workspace without [store]) of this tree against a reference commit.

    python bench/bench_sqlite_path.py [--ref 775e3ed] [--sizes 1000,10000] [--repeat 3]
                                      [--out bench/results_sqlite_path.json]

Issue 16 asks that the scale-out work (the store interface, edi/pipeline/, PostgreSQL) leave
the SQLite path unchanged or faster. The reference (default 775e3ed, the last commit before that
work) is checked out as a detached git worktree in a temporary folder (removed at the end). For
each size, one seeded export (bench/make_data.py) feeds two fresh workspaces, one per tree, set
up as bench/run.py sets up its `edi run` (edi.demo's profiles, a demo carrier key, one loopback
OpenSSH sshd). `edi generate --type full` and `edi run --type full` (generate, validate,
encrypt, deliver, log) run as subprocesses with that tree first on PYTHONPATH, reference and
current alternating, each repetition from fresh state (state/, out/ and the carrier's inbox
emptied). Reported: the median wall seconds (and CPU seconds of the command and what it waited
for) of each, and current / reference per size and command. Writes the JSON and prints a
table. Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import transmit  # noqa: E402
from bench.make_data import write as make_data  # noqa: E402
from bench.run import AS_OF, CARRIER, NOW  # noqa: E402
from edi.demo import carrier_key, demo_tables, prepare  # noqa: E402
from edi.workspace import Workspace  # noqa: E402

DEFAULT_REF = "775e3ed"
COMMANDS = ("generate", "run")
TREES = ("reference", "current")
NOISE = "±10 % is noise on this shared 2-core machine"


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@contextlib.contextmanager
def reference_tree(ref: str, folder: Path) -> Iterator[Path]:
    """The reference commit checked out as a detached worktree, removed afterwards."""
    path = folder / "ref-tree"
    git("worktree", "add", "--detach", str(path), ref)
    try:
        yield path
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            git("worktree", "remove", "--force", str(path))
        shutil.rmtree(path, ignore_errors=True)


def tree_env(tree: Path) -> dict[str, str]:
    """That tree's edi and transmit first; no EDI_* setting of the caller leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDI_")}
    env["PYTHONPATH"] = str(tree)
    return env


def check_imports(tree: Path) -> None:
    """`python -m edi` with this env imports the tree's own packages (not the editable install)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import edi, transmit; print(edi.__file__); print(transmit.__file__)",
        ],
        env=tree_env(tree),
        cwd=tree,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for module in out:
        if not Path(module).resolve().is_relative_to(tree.resolve()):
            raise RuntimeError(f"{tree} on PYTHONPATH still imports {module}")


def build_workspace(
    tree: Path, home: Path, server: transmit.LoopbackServer, inbox: Path
) -> Workspace:
    """A demo workspace with that tree's carrier profiles, delivering to INBOX (no [store])."""
    shutil.rmtree(home, ignore_errors=True)
    workspace = prepare(Workspace.open(tree), home)
    fingerprint, _ = carrier_key(home, CARRIER)
    profile = workspace.carriers_dir / f"{CARRIER}.toml"
    profile.write_text(profile.read_text() + demo_tables(CARRIER, fingerprint, server, inbox))
    inbox.mkdir(parents=True, exist_ok=True)
    return workspace


def reset(home: Path, inbox: Path) -> None:
    transmit.stop_gpg_agent(home / "state" / "gnupg")
    for stale in ("state", "out", "gen-out"):
        shutil.rmtree(home / stale, ignore_errors=True)
    shutil.rmtree(inbox, ignore_errors=True)
    inbox.mkdir(parents=True)


def command_line(command: str, home: Path, source: Path) -> list[str]:
    edi = [sys.executable, "-m", "edi", "--home", str(home), "--now", NOW.isoformat()]
    common = ["-c", CARRIER, "--source", str(source), "--as-of", AS_OF.isoformat()]
    if command == "generate":
        return [*edi, "generate", *common, "--type", "full", "--out", str(home / "gen-out")]
    return [*edi, "run", *common, "--type", "full"]


def time_command(argv: list[str], tree: Path, log: Path) -> tuple[float, float]:
    """Wall seconds, and CPU seconds of the process and the children it waited for (gpg, ssh)."""
    with log.open("w") as err:
        started = time.perf_counter()
        child = subprocess.Popen(
            argv, env=tree_env(tree), cwd=tree, stdout=subprocess.DEVNULL, stderr=err
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {child.returncode}:\n{log.read_text()}")
    return wall, usage.ru_utime + usage.ru_stime


def check_output(command: str, home: Path, inbox: Path) -> None:
    """The command did its work (a full file written, or one encrypted upload delivered) and
    kept its state in the workspace's SQLite files."""
    if command == "generate":
        found = list((home / "gen-out").glob("*.834"))
    else:
        found = [p for p in inbox.iterdir() if not p.name.startswith(".")]
    if len(found) != 1:
        raise RuntimeError(f"edi {command} in {home} left {found}, not one file")
    if not list((home / "state").glob("*.sqlite")):
        raise RuntimeError(f"edi {command} in {home} wrote no state/*.sqlite")


def measure_size(
    employees: int,
    scratch: Path,
    trees: dict[str, Path],
    server: transmit.LoopbackServer,
    repeat: int,
) -> dict[str, Any]:
    source = scratch / "data" / str(employees)
    if not source.exists():
        make_data(employees, 7, source)
    homes = {name: scratch / f"{name[:3]}-{employees}" for name in TREES}
    inboxes = {name: server.root / f"{name[:3]}-{employees}" for name in TREES}
    for name in TREES:
        build_workspace(trees[name], homes[name], server, inboxes[name])
    row: dict[str, Any] = {"employees": employees}
    for command in COMMANDS:
        wall: dict[str, list[float]] = {name: [] for name in TREES}
        cpu: dict[str, list[float]] = {name: [] for name in TREES}
        for rep in range(repeat):
            order = TREES if rep % 2 == 0 else TREES[::-1]  # ref, cur / cur, ref / ...
            for name in order:
                print(f"  {employees} {command} {name} #{rep + 1}", file=sys.stderr, flush=True)
                reset(homes[name], inboxes[name])
                argv = command_line(command, homes[name], source)
                log = scratch / f"{name}-{employees}-{command}.log"
                wall_s, cpu_s = time_command(argv, trees[name], log)
                check_output(command, homes[name], inboxes[name])
                wall[name].append(round(wall_s, 3))
                cpu[name].append(round(cpu_s, 3))
        medians = {name: statistics.median(wall[name]) for name in TREES}
        cpu_medians = {name: statistics.median(cpu[name]) for name in TREES}
        row[command] = {
            "reference_s": round(medians["reference"], 3),
            "current_s": round(medians["current"], 3),
            "ratio": round(medians["current"] / medians["reference"], 3),
            "reference_cpu_s": round(cpu_medians["reference"], 3),
            "current_cpu_s": round(cpu_medians["current"], 3),
            "cpu_ratio": round(cpu_medians["current"] / cpu_medians["reference"], 3),
            "wall_s": wall,
            "cpu_s": cpu,
        }
    for name in TREES:
        reset(homes[name], inboxes[name])
        transmit.stop_gpg_agent(homes[name] / "carrier-side" / CARRIER / "gnupg")
    return row


def run_bench(*, ref: str, sizes: list[int], repeat: int, scratch: Path) -> dict[str, Any]:
    scratch.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    results: dict[str, Any] = {
        "reference_commit": git("rev-parse", f"{ref}^{{commit}}"),
        "current_commit": git("rev-parse", "HEAD"),
        "current_tree_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine": {"cpus": os.cpu_count()},
        "repeat": repeat,
        "sizes": sizes,
        "note": "ratio = current / reference median wall seconds (cpu_ratio: CPU seconds); "
        f"<= 1.0 means unchanged or faster; {NOISE}",
        "rows": [],
    }
    with (
        reference_tree(results["reference_commit"], scratch) as ref_tree,
        transmit.LoopbackSftpServer(scratch / "sftp-root", scratch / "sshd") as server,
    ):
        trees = {"reference": ref_tree, "current": REPO}
        for tree in trees.values():
            check_imports(tree)
        for size in sizes:
            print(f"measuring {size} employees ...", file=sys.stderr, flush=True)
            results["rows"].append(measure_size(size, scratch, trees, server, repeat))
    results["load_avg_1m"] = {"start": round(load_start[0], 2), "end": round(os.getloadavg()[0], 2)}
    return results


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"SQLite path: current {results['current_commit'][:7]} vs reference "
        f"{results['reference_commit'][:7]} (median of {results['repeat']})"
    )
    for column in ("employees", "command", "reference s", "current s", "ratio", "CPU ratio"):
        table.add_column(column, justify="right")
    for row in results["rows"]:
        for command in COMMANDS:
            m = row[command]
            table.add_row(
                str(row["employees"]),
                f"edi {command}",
                str(m["reference_s"]),
                str(m["current_s"]),
                str(m["ratio"]),
                str(m["cpu_ratio"]),
            )
    console = Console()
    console.print(table)
    load = results["load_avg_1m"]
    console.print(
        f"ratio = current / reference: <= 1.0 means unchanged or faster; {NOISE}. "
        f"Load average (1 min) {load['start']} at start, {load['end']} at end."
    )


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default=DEFAULT_REF, help="the reference commit")
    parser.add_argument("--sizes", default="1000,10000", help="employees, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command per tree")
    parser.add_argument(
        "--scratch", type=Path, default=None, help="default: a new folder under the system temp"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results_sqlite_path.json")
    args = parser.parse_args(argv)
    owned = args.scratch is None
    # Short: gpg-agent's socket path must fit in a unix socket address.
    scratch = Path(tempfile.mkdtemp(prefix="bsq-")) if owned else args.scratch.resolve()
    try:
        results = run_bench(
            ref=args.ref,
            sizes=[int(s) for s in args.sizes.split(",") if s],
            repeat=args.repeat,
            scratch=scratch,
        )
    finally:
        if owned:
            shutil.rmtree(scratch, ignore_errors=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    return results


if __name__ == "__main__":
    main()
