"""How fast the CLI answers before any work: `edi --help`, `edi run -h` and `edi --version`,
against the interpreter alone and the interpreter importing typer and rich (the floor any
typer CLI pays), all measured in the same run.

    python bench/bench_cli.py [--repeat 15]

Writes bench/results_cli.json. Not a test: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import typer, rich.console'": [sys.executable, "-c", "import typer, rich.console"],
    "edi --version": [sys.executable, "-m", "edi", "--version"],
    "edi --help": [sys.executable, "-m", "edi", "--help"],
    "edi run -h": [sys.executable, "-m", "edi", "run", "-h"],
}


def median_seconds(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, cwd=REPO)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    median_seconds(COMMANDS["edi --help"], 2)  # warm the file cache and the .pyc files
    seconds = {name: median_seconds(command, args.repeat) for name, command in COMMANDS.items()}
    floor = seconds["python -c 'import typer, rich.console'"]
    results: dict[str, Any] = {
        "repeat": args.repeat,
        "median_seconds": {name: round(value, 4) for name, value in seconds.items()},
        "help_over_typer_floor": round(seconds["edi --help"] / floor, 2),
        "help_under_0_3_s": seconds["edi --help"] < 0.3,
    }
    (REPO / "bench" / "results_cli.json").write_text(json.dumps(results, indent=2) + "\n")
    for name, value in seconds.items():
        print(f"{name:<42} {value * 1000:7.1f} ms")
    print(f"edi --help ÷ (python + typer + rich): {results['help_over_typer_floor']}")


if __name__ == "__main__":
    main()
