"""The nightly benchmark step, safe on its first night: compare with a saved baseline only when one exists.

    python scripts/nightly_bench.py [--storage .benchmarks] [-- PYTEST-ARGS...]

First night (no saved run in ``--storage``): the benchmarks run three times (``noise/run{1,2,3}.json``), the last
is saved as the baseline (``--benchmark-autosave``), and the gate is derived from the three with
``scripts/bench_noise.py`` (twice the largest spread of a best round, in ``gate.txt``). Every later night saves its
run and compares it with the last saved one, failing when a best round slowed by more than the gate
(``--benchmark-compare-fail=min:<gate>%``). ``BENCH_GATE`` (e.g. ``25%``) overrides the measured gate. pytest-benchmark
itself stops with exit 4 ("requires valid --benchmark-compare") when asked to compare with nothing, which is why the
plain recipe fails on its first night. Extra arguments go to every pytest call (e.g. ``-k tiny-clip``).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOISE_RUNS = 3


def saved_runs(storage: Path) -> list[Path]:
    """The runs pytest-benchmark saved under ``storage`` (``<machine>/<NNNN>_*.json``)."""
    return sorted(p for p in storage.glob("*/*.json") if p.name[:4].isdigit())


def gate(storage: Path) -> str | None:
    """The comparison gate: ``BENCH_GATE``, else the one measured on the first night, else None."""
    if os.environ.get("BENCH_GATE"):
        return os.environ["BENCH_GATE"].rstrip("%") + "%"
    f = storage / "gate.txt"
    return f.read_text().strip() if f.is_file() else None


def plan(storage: Path, extra: list[str]) -> list[list[str]]:
    """The pytest commands of tonight's step, in order."""
    base = [sys.executable, "-m", "pytest", "benchmarks", f"--benchmark-storage={storage}", *extra]
    if not saved_runs(storage):
        runs = [base + [f"--benchmark-json={storage / 'noise' / f'run{k}.json'}"] for k in range(1, NOISE_RUNS + 1)]
        runs[-1] = runs[-1] + ["--benchmark-autosave"]
        return runs
    g = gate(storage)
    if g is None:
        raise SystemExit(f"{storage} holds a saved run but no gate.txt: set BENCH_GATE, or run "
                         "scripts/bench_noise.py over three runs of one commit and write its tolerance there")
    return [base + ["--benchmark-autosave", "--benchmark-compare", f"--benchmark-compare-fail=min:{g}"]]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--storage", type=Path, default=Path(".benchmarks"), help="default: .benchmarks")
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    first = not saved_runs(args.storage)
    (args.storage / "noise").mkdir(parents=True, exist_ok=True)
    for cmd in plan(args.storage, extra):
        print("+", " ".join(cmd), flush=True)
        rc = subprocess.call(cmd)
        if rc != 0:
            return rc
    if first:
        sys.path.insert(0, str(HERE))
        from bench_noise import minima, spreads, tolerance

        runs = [minima(args.storage / "noise" / f"run{k}.json") for k in range(1, NOISE_RUNS + 1)]
        tol = tolerance(spreads(runs))
        (args.storage / "gate.txt").write_text(f"{tol}%\n")
        print(f"first night: baseline saved; gate min:{tol}% from {NOISE_RUNS} runs of this commit "
              f"({args.storage / 'gate.txt'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
