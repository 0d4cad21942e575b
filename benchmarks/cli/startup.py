"""Start-up time of the command line: `lorevit --help` and `lorevit train --help`, side by side with another
checkout of lorevit (e.g. the release before the restructure), as medians and ratios; writes JSON.

    python benchmarks/cli/startup.py --output benchmarks/cli/startup.json [--baseline /path/to/old/checkout]

Each command runs in a fresh interpreter (what a user waits for), the variants interleaved run by run so that a
drift of the machine's speed hits both alike; the first round is a warm-up (file-system caches).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {"--help": ["--help"], "train --help": ["train", "--help"]}
HERE = Path(__file__).resolve().parents[2]


def run_once(checkout: Path, argv: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lorevit", *argv], env=env, cwd=checkout, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="another lorevit checkout to compare with")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--output", type=Path, default=HERE / "benchmarks" / "cli" / "startup.json")
    args = parser.parse_args()
    variants = {"current": HERE, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    times = {v: {c: [] for c in COMMANDS} for v in variants}
    for round_ in range(args.runs + 1):
        for command, argv in COMMANDS.items():
            for variant, checkout in variants.items():
                seconds = run_once(checkout, argv)
                if round_:  # round 0: warm-up
                    times[variant][command].append(seconds)
    result = {"python": platform.python_version(), "cpu_count": os.cpu_count(), "runs": args.runs,
              "median_s": {v: {c: round(statistics.median(t), 4) for c, t in cs.items()} for v, cs in times.items()}}
    if "baseline" in variants:
        result["speedup_baseline_over_current"] = {
            c: round(statistics.median(b / a for a, b in zip(times["current"][c], times["baseline"][c])), 3)
            for c in COMMANDS}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
