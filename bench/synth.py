"""How long the master and a silo program take to evaluate under mocks, and how big they are.

    python bench/synth.py [--runs 5] [--json]

Each program is evaluated `--runs` times in this process; the table shows the median, min and max
seconds and the number of resources (custom resources, components and providers) registered.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from offline.stacks import run_master, run_silo  # noqa: E402


def measure(run, runs: int) -> dict:
    seconds, counts = [], set()
    for _ in range(runs):
        start = time.perf_counter()
        recording = run()
        seconds.append(time.perf_counter() - start)
        counts.add(len(recording.resources))
    return {
        "median_s": round(statistics.median(seconds), 4),
        "min_s": round(min(seconds), 4),
        "max_s": round(max(seconds), 4),
        "resources": max(counts),
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="Evaluate both programs under mocks and time them.")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results = {"master": measure(run_master, args.runs), "silo": measure(run_silo, args.runs)}
    if args.json:
        print(json.dumps(results, sort_keys=True))
        return 0
    print(f"{'program':<8} {'runs':>4} {'median s':>9} {'min s':>7} {'max s':>7} {'resources':>9}")
    for name, r in results.items():
        print(f"{name:<8} {r['runs']:>4} {r['median_s']:>9.3f} {r['min_s']:>7.3f} {r['max_s']:>7.3f} {r['resources']:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
