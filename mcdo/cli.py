"""``mcdo`` command line: ``mcdo claims`` evaluates the claim registry and writes reports/."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .verify import catalog


def _claims(args: argparse.Namespace) -> int:
    if args.list:
        print(json.dumps([c.as_dict() for c in catalog.CLAIMS], indent=1))
        return 0
    from . import report
    from .verify import engine
    from .verify.records import Record

    tiers = tuple(args.tier) if args.tier else catalog.TIERS
    pairs = catalog.pairs(tiers)
    if args.id:
        wanted = set(args.id)
        unknown = wanted - set(catalog.BY_ID)
        if unknown:
            raise SystemExit(f"unknown claim id(s) {sorted(unknown)}; `mcdo claims --list` prints the registry")
        pairs = [p for p in pairs if p[0] in wanted]
    ctx = engine.Context(seed=args.seed, progress=not args.quiet)
    records, t0 = [], time.perf_counter()
    from tqdm.auto import tqdm

    failed = []
    for claim_id, tier in tqdm(pairs, desc="claims", unit="claim", disable=args.quiet, file=sys.stderr):
        try:
            records.extend(engine.evaluate(claim_id, tier, ctx))
        except Exception as e:  # a bug in one evaluator must not lose the others' records
            import traceback

            traceback.print_exc()
            failed.append(f"{claim_id}/{tier}")
            records.append(Record(claim_id, tier, "-", "skipped", reason=f"evaluator error: {type(e).__name__}: {e}"))
    wall = time.perf_counter() - t0
    figures = []
    if not args.no_figures:
        from .figures import make_figures

        figures = make_figures(records, ctx, Path(args.out))
    paths = report.write(records, Path(args.out), figures, wall)
    cov = report.coverage(records)
    print("coverage: " + ", ".join(f"{t} {a}/{b}" for t, (a, b) in cov.items() if t in tiers))
    for r in records:
        if r.verdict != "skipped":
            print(f"  {r.id:7s} {r.tier:9s} {r.model:28.28s} {r.verdict:15s} {report._fmt(r.measured):>8s}"
                  + (f" [{report._fmt(r.ci[0])}, {report._fmt(r.ci[1])}]" if r.ci else ""))
    print(f"wrote {paths['md']} and {paths['json']} ({len(records)} records, {wall:.0f} s)")
    if failed:
        print(f"evaluator errors (tracebacks above): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mcdo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("claims", help="evaluate claims and write reports/claims.{md,json}")
    p.add_argument("--tier", action="append", choices=catalog.TIERS, help="repeatable; default: every tier")
    p.add_argument("--id", action="append", help="only this claim id (repeatable)")
    p.add_argument("--list", action="store_true", help="print the claim registry as JSON and exit")
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_claims)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
