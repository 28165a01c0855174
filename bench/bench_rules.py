"""The rules stage at scale: mapping with the business edits against mapping alone, and both
against `edi generate` (which includes them), on one seeded export, per carrier.

    python bench/bench_rules.py [--employees 10000] [--repeat 3]

Writes bench/results_rules.json. Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import shutil
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
from edi.pipeline import generate  # noqa: E402
from edi.plansource.export import read_export  # noqa: E402
from edi.profiles import load_profile  # noqa: E402
from edi.rules import RulesReport, screen  # noqa: E402
from edi.workspace import Workspace  # noqa: E402

AS_OF = date(2026, 11, 24)
NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def best(repeat: int, run: Any) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(ws: Workspace, carrier: str, source: Path, out: Path, repeat: int) -> dict[str, Any]:
    profile = load_profile(ws, carrier)
    ctx = MappingContext(profile, AS_OF)
    findings: dict[str, Any] = {}
    with read_export(source, out, claims=profile.claims_code) as data:

        def mapping_only() -> None:
            for _ in map_members(ctx, data.groups(), MappingReport()):
                pass

        def mapping_and_rules() -> None:
            rules = RulesReport()
            for _ in screen(ctx, data.groups(), MappingReport(), rules):
                pass
            findings.update(errors=rules.error_count, warnings=dict(rules.warnings.counts))

        mapped = best(repeat, mapping_only)
        screened = best(repeat, mapping_and_rules)

    def full_generate() -> None:
        shutil.rmtree(out, ignore_errors=True)
        generate(ws, carrier, now=NOW, as_of=AS_OF, source=source, out_dir=out)

    generated = best(repeat, full_generate)
    rules_stage = max(0.0, screened - mapped)
    return {
        "mapping_s": round(mapped, 3),
        "mapping_and_rules_s": round(screened, 3),
        "rules_stage_s": round(rules_stage, 3),
        "generate_s": round(generated, 3),
        "rules_share_of_generate_pct": round(100 * rules_stage / generated, 1),
        "findings": findings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scratch", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args()
    scratch = args.scratch.resolve()
    source = scratch / f"data-{args.employees}"
    if not source.exists():
        make_data(args.employees, 7, source)
    home = scratch / "rules-home"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(REPO / "carriers", home / "carriers")
    ws = Workspace.open(home)
    results = {
        "employees": args.employees,
        "carriers": {
            carrier: measure(ws, carrier, source, home / "out" / carrier, args.repeat)
            for carrier in ("colonial", "unum", "allstate")
        },
    }
    print(json.dumps(results, indent=2))
    (REPO / "bench" / "results_rules.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
