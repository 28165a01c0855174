"""Change detection at scale: diff of two snapshots (5 % of employees changed) against the time
to write and validate the full file, measured in the same run.

    python bench/bench_diff.py [--employees 100000]

Writes bench/results_diff.json. Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.make_data import write as make_data  # noqa: E402
from edi.changes import DiffContext, StreamingDiff, changes_config  # noqa: E402
from edi.mapping import MappingContext, map_members  # noqa: E402
from edi.members import MappingReport  # noqa: E402
from edi.pipeline import baselines, generate  # noqa: E402
from edi.plansource.export import read_export  # noqa: E402
from edi.profiles import load_profile  # noqa: E402
from edi.workspace import Workspace  # noqa: E402

CARRIER = "colonial"
AS_OF = date(2026, 11, 24)
NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def change_five_percent(source: Path, target: Path) -> int:
    """Every 20th employee moves house: a demographic change the diff must find."""
    shutil.copytree(source, target, dirs_exist_ok=True)
    pages = json.loads((source / "subscribers.json").read_text())
    changed = 0
    for page in pages:
        for record in page["data"]:
            if record["id"] % 20 == 0:
                record["address_1"] = f"{record['id']} Moved Street"
                changed += 1
    (target / "subscribers.json").write_text(json.dumps(pages))
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, default=100_000)
    parser.add_argument("--scratch", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args()
    scratch = args.scratch.resolve()
    before = scratch / f"data-{args.employees}"
    if not before.exists():
        make_data(args.employees, 7, before)
    after = scratch / f"data-{args.employees}-changed"
    changed = change_five_percent(before, after)
    home = scratch / "diff-workspace"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(REPO / "carriers", home / "carriers")
    profile_file = home / "carriers" / f"{CARRIER}.toml"
    profile_file.write_text(profile_file.read_text() + '\n[changes]\nfile_type = "changes"\n')
    workspace = Workspace.open(home)

    started = time.perf_counter()
    first = generate(workspace, CARRIER, now=NOW, as_of=AS_OF, source=before, out_dir=home / "out")
    full_s = time.perf_counter() - started
    baselines(workspace).commit(CARRIER, first.fingerprint, NOW)

    profile = load_profile(workspace, CARRIER)
    store = baselines(workspace)
    reader = store.lookup(CARRIER)
    ctx = DiffContext(profile, changes_config(profile, profile_file), AS_OF)
    with read_export(after, workspace.ensure_state(), claims=profile.claims_code) as data:
        mapped = list(map_members(MappingContext(profile, AS_OF), data.groups(), MappingReport()))
    started = time.perf_counter()
    differ = StreamingDiff(ctx, reader.get, reader.others, reader.active_subscribers(), True)
    found = sum(1 for _ in differ.members(mapped))
    diff_s = time.perf_counter() - started
    reader.close()
    results: dict[str, Any] = {
        "employees": args.employees,
        "employees_changed": changed,
        "members_in_change_file": found,
        "full_file_write_and_validate_s": round(full_s, 1),
        "diff_s": round(diff_s, 1),
        "diff_vs_full": round(diff_s / full_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "note": "diff_s covers the diff over already-mapped members with keyed baseline lookups",
    }
    (REPO / "bench" / "results_diff.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
