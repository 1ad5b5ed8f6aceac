"""Run-to-run noise of the benchmarks on one machine, and the comparison gate it supports.

Run the same commit's benchmarks twice or more (``pytest benchmarks --benchmark-json=run1.json``, then run2.json)
and pass the files here:

    python scripts/bench_noise.py run1.json run2.json [run3.json ...]

Per benchmark it prints the spread of the best round (``min``, the statistic least moved by a busy machine) across
the runs, ``max / min - 1``, and the tolerance for ``--benchmark-compare-fail=min:X%``: twice the largest spread
seen, rounded up to a whole percent, so that the same commit run again does not fail while a slowdown of that size
does (``benchmarks/RECORD.md`` keeps the figures of the benchmark machine).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def minima(path: Path) -> dict[str, float]:
    """Each benchmark's best round (seconds) in one pytest-benchmark JSON file, by its full name."""
    data = json.loads(Path(path).read_text())
    return {b["fullname"]: float(b["stats"]["min"]) for b in data["benchmarks"]}


def spreads(runs: list[dict[str, float]]) -> dict[str, float]:
    """For the benchmarks in every run: how far apart their best rounds are, ``max / min - 1``."""
    common = set.intersection(*(set(r) for r in runs)) if runs else set()
    return {name: max(r[name] for r in runs) / min(r[name] for r in runs) - 1.0 for name in sorted(common)}


def tolerance(spread: dict[str, float], factor: float = 2.0) -> int:
    """The gate, in whole percent: ``factor`` times the largest spread, rounded up (at least 1%)."""
    return max(1, math.ceil(100 * factor * max(spread.values(), default=0.0)))


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    spread = spreads([minima(Path(p)) for p in argv])
    if not spread:
        print("no benchmark is in every file", file=sys.stderr)
        return 1
    width = max(len(n) for n in spread)
    for name, s in sorted(spread.items(), key=lambda kv: -kv[1]):
        print(f"{name:{width}s}  {100 * s:6.2f}%")
    print(f"largest spread of the best round over {len(argv)} runs: {100 * max(spread.values()):.2f}%; "
          f"gate: --benchmark-compare-fail=min:{tolerance(spread)}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
