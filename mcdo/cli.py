"""``mcdo`` command line: ``mcdo claims`` evaluates the claim registry and writes reports/;
``mcdo ood`` runs the MCM OOD benchmark (ImageNet-1k in, the MOS sets out) for one model;
``mcdo doctor`` says what a machine still lacks for the gpu tier."""
from __future__ import annotations

import argparse
import datetime
import errno
import json
import os
import sys
import time
from pathlib import Path

from .argtypes import positive_int
from .io import WriteFailed
from .verify import catalog


def _claims(args: argparse.Namespace) -> int:
    if args.list:  # each claim's whole entry, the one that judges (figures, margins, source, departures, findings)
        from .io import jsonable
        from .verify.entries import entry

        print(json.dumps([jsonable(entry(c.id)) for c in catalog.CLAIMS], indent=1))
        return 0
    from . import report
    from .verify import engine
    from .verify.records import Record

    from . import env

    try:  # settings that would fail every claim: say so once, before any work
        env.cache_dir()
        env.device()
    except env.SettingError as e:
        print(f"mcdo claims: {e}", file=sys.stderr)
        return 2
    tiers = tuple(args.tier) if args.tier else catalog.TIERS
    pairs = catalog.pairs(tiers)
    if args.id:
        wanted = set(args.id)
        unknown = wanted - set(catalog.BY_ID)
        if unknown:  # a usage error: exit 2, as argparse's own
            print(f"mcdo claims: unknown claim id(s) {', '.join(sorted(unknown))}; `mcdo claims --list` prints the "
                  "registry", file=sys.stderr)
            return 2
        pairs = [p for p in pairs if p[0] in wanted]
    if not pairs:
        print(f"mcdo claims: nothing selected: {', '.join(sorted(args.id or []))} on tier(s) {', '.join(tiers)} "
              "(`mcdo claims --list` shows each claim's tiers)", file=sys.stderr)
        return 2
    if args.estimate:
        return _estimate([c for c, t in pairs if t == "gpu"])
    ctx = engine.Context(seed=args.seed, progress=not args.quiet, recorded_own_T=args.recorded_own_T,
                         limit=args.limit)
    out = Path(args.out)
    if args.limit and args.out == "reports":  # a smoke run never merges into the real report
        out = out / "smoke"
    run_id, key = datetime.datetime.now().isoformat(sep=" ", timespec="milliseconds"), claims_run_key(args)
    from . import journal as claims_journal

    journal = claims_journal.Journal(out / "claims.jsonl", key, resume=args.resume)
    if journal.damaged or journal.incomplete:  # said, and those pairs evaluated again
        print(f"mcdo claims --resume: {out / 'claims.jsonl'}: "
              + (f"line(s) {', '.join(map(str, journal.damaged[:10]))} damaged or cut short; " if journal.damaged
                 else "")
              + (f"{len(journal.incomplete)} pair(s) without all their records "
                 f"({', '.join(f'{c}/{t}' for c, t in journal.incomplete[:10])}): evaluated again"
                 if journal.incomplete else "no pair lost a record"), file=sys.stderr)
    old, old_figures = report.read(out)
    weights = claims_journal.work(pairs, old)
    records, t0, failed = [], time.perf_counter(), []
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(weights.values()), desc="claims", unit="work", disable=args.quiet, file=sys.stderr,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} [{elapsed}<{remaining}] {postfix}")
    cost = {}  # where the run's time and memory went, per pair (claims.json's runs)
    for claim_id, tier in pairs:
        bar.set_postfix_str(f"{claim_id}/{tier}")
        got = journal.done.get((claim_id, tier))
        before = claims_journal.usage()
        if got is None:
            try:
                got = engine.evaluate(claim_id, tier, ctx)
            except Exception as e:  # a bug in one evaluator must not lose the others' records
                import traceback

                traceback.print_exc()
                failed.append(f"{claim_id}/{tier}")
                got = [Record(claim_id, tier, "-", "skipped", reason=f"evaluator error: {type(e).__name__}: {e}")]
            for r in got:
                r.run = run_id
            journal.append(got)
        for r in got:  # each verdict as it is decided
            if r.verdict != "skipped" and not args.quiet:
                bar.write(verdict_line(r))
        records.extend(got)
        cost[f"{claim_id}/{tier}"] = claims_journal.usage_since(before)
        bar.update(weights[(claim_id, tier)])
    bar.close()
    wall = time.perf_counter() - t0
    figures, notes = [], []
    if not args.no_figures:
        from .verify.report_figures import make_figures

        figures, notes = make_figures(records, ctx, out)
    partial = len(pairs) < len(catalog.pairs())
    written = records
    runs = {run_id: dict(commit=env.git_commit(), wall_s=round(wall, 1), key=key,
                         command=" ".join(["mcdo", *sys.argv[1:]]) if sys.argv[1:2] == ["claims"]
                         else "mcdo claims (called from Python)",
                         resumed=len(journal.done), usage=cost)}
    if partial and not args.replace:  # a partial run updates its part of the existing report
        written = report.merge(old, records)
        fresh = {path for _, path in figures}
        figures += [f for f in old_figures if f[1] not in fresh and (out / f[1]).is_file()]
        runs = {**report.runs(out), **runs}
    paths = report.write(written, out, figures, wall, notes, runs)
    cov = report.coverage(records)
    print("coverage: " + ", ".join(f"{t} {a}/{b}" for t, (a, b) in cov.items() if t in tiers))
    if args.quiet:
        for r in records:
            if r.verdict != "skipped":
                print(verdict_line(r))
    for n in notes:
        print(f"  figure: {n}")
    merged = f"; merged into the existing report, {len(written)} records in all" if written is not records else ""
    reused = f"; {sum(len(v) for v in journal.done.values())} records resumed from claims.jsonl" if journal.done else ""
    print(f"wrote {paths['md']} and {paths['json']} ({len(records)} records{merged}{reused}, {wall:.0f} s)")
    if failed:
        print(f"evaluator errors (tracebacks above): {', '.join(failed)}", file=sys.stderr)
        return 1
    from .verify.acceptance import accept_all

    strict = frozenset({"gpu"} if os.environ.get("MCDO_STRICT") == "1" else ())
    broken = [j for j in accept_all(records, strict) if j.failed]
    if broken:  # the rules pytest claims applies (verify/acceptance.py): the same run fails both front doors
        print(f"mcdo claims: {len(broken)} (claim, tier) pair(s) fail the harness's rules:", file=sys.stderr)
        for j in broken:
            print(f"  {j.claim}/{j.tier}: {j.outcome}: {j.message[:400]}", file=sys.stderr)
        return 1
    if args.limit:  # a smoke run passes when every selected gpu claim's chain completed
        incomplete = sorted({f"{r.id} ({r.reason[:160]})" for r in records if r.tier == "gpu" and r.verdict == "skipped"
                             and r.reason != "not implemented"})
        if incomplete:
            print(f"smoke run: {len(incomplete)} gpu claim(s) did not complete: " + "; ".join(incomplete),
                  file=sys.stderr)
            return 1
        print(f"smoke run (--limit {args.limit}): every selected gpu claim's chain completed; no claim was judged")
    return 0


def verdict_line(r) -> str:
    from . import report

    return (f"  {r.id:7s} {r.tier:9s} {r.model:28.28s} {r.verdict:15s} {report.fmt(r.measured):>8s}"
            + (f" [{report.fmt(r.ci[0])}, {report.fmt(r.ci[1])}]" if r.ci else ""))


def claims_run_key(args: argparse.Namespace) -> dict:
    """What makes two runs' records interchangeable for ``--resume``: the commit (with its dirty flag) and every
    setting that changes a record."""
    from . import env

    return dict(commit=env.git_commit(), seed=args.seed, recorded_own_T=args.recorded_own_T,
                **({"limit": args.limit} if getattr(args, "limit", None) else {}),
                **{v: os.environ.get(v, "") for v in ("MCDO_RECORDED_DIR", "MCDO_DATA_ROOT", "MCDO_DEVICE",
                                                      "MCDO_ALLOW_CPU")})


def _models(args: argparse.Namespace) -> int:
    from .model_specs import registry_table

    print(registry_table())
    return 0


def _doctor(args: argparse.Namespace) -> int:
    """The doctor's report; with ``--require``, exit 1 when a claim asked for is not ready (2 for an unknown id)."""
    from . import doctor
    from .verify import engine

    if args.model and not args.fetch:
        print("mcdo doctor: --model is for --fetch (your own model's files)", file=sys.stderr)
        return 2
    if args.fetch:
        doctor.fetch(args.model or [])
    if args.id and not args.require:
        print("mcdo doctor: --id needs --require TIER", file=sys.stderr)
        return 2
    ctx = engine.Context(progress=False)
    status = doctor.claim_status(ctx)
    print(doctor.report(status, ctx))
    if not args.require:
        return 0
    try:
        bad = doctor.unready(status, args.id) if args.require == "gpu" else doctor.recorded_unready()
    except KeyError as e:
        print(f"mcdo doctor: {e.args[0]}", file=sys.stderr)
        return 2
    if bad:
        print(f"\nmcdo doctor --require {args.require}: {len(bad)} not ready ({', '.join(bad)}); what each lacks "
              "is listed above", file=sys.stderr)
        return 1
    print(f"\nmcdo doctor --require {args.require}: every claim asked for is ready")
    return 0


def _estimate(claims: list[str]) -> int:
    """``mcdo claims --estimate``: the FLOP accounting's floor on each gpu claim's duration on this device."""
    import torch

    from . import env
    from .flops import matmul_rate
    from .verify import workload

    if not claims:
        print("mcdo claims --estimate: no gpu claim selected", file=sys.stderr)
        return 2
    device = env.device()
    env.full_fp32()
    rate = matmul_rate(torch.float32, device)
    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"this machine's CPU ({device})"
    rows, total = workload.estimate(claims, rate)
    print(workload.table(rows, total, rate, where + ", its fp32 matrix-product rate measured now"))
    return 0


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``mcdo`` parser and its commands' parsers, every option's default in its help."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="mcdo", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mcdo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("claims", help="evaluate claims and write reports/claims.{md,json}")
    p.add_argument("--tier", action="append", choices=catalog.TIERS, help="repeatable; default: every tier")
    p.add_argument("--id", action="append", help="only this claim id (repeatable)")
    p.add_argument("--list", action="store_true", help="print the claim registry as JSON and exit")
    p.add_argument("--out", default="reports", help="output folder (default: reports)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-figures", action="store_true",
                   help="write the records and the report without drawing its figures")
    p.add_argument("--recorded-own-T", action="store_true",
                   help="recorded tier: judge a run that lacks the source's T (64; MCD-15: 16 -> 64) at its own "
                        "largest T, stated as a departure in its row (default: such a run is skipped)")
    p.add_argument("--replace", action="store_true",
                   help="with --tier/--id: write only this run's records (default: merge them into the existing "
                        "report, replacing the same claims and tiers)")
    p.add_argument("--resume", action="store_true",
                   help="reuse the records that claims.jsonl already holds for the same commit and settings (a "
                        "killed run's journal) and evaluate only the rest (default: start afresh)")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="a smoke run of the gpu tier: at most N images per data set and the fewest MC trials; "
                        "records say 'smoke run' (never a verdict on the claim), written under OUT/smoke; exits 1 "
                        "unless every selected gpu claim's chain completed (default: the full run)")
    p.add_argument("--estimate", action="store_true",
                   help="print each selected gpu claim's estimated duration on this machine's device (FLOPs of its "
                        "passes over the device's measured fp32 rate: a floor) and exit; runs nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars: results and errors only")
    p.set_defaults(func=_claims)
    from .ood_cli import add_parser as add_ood

    add_ood(sub)
    from .bayes.cli import add_parser as add_bayes
    from .probe.cli import add_parser as add_probe
    from .signatures.cli import add_parser as add_signatures
    from .sweep_cli import add_parser as add_sweep

    add_bayes(sub)
    add_probe(sub)
    add_signatures(sub)
    add_sweep(sub)
    m = sub.add_parser("models", help="the model registry, and the forms --model takes for your own model")
    m.set_defaults(func=_models)
    d = sub.add_parser("doctor", help="what this machine has and lacks for the gpu tier (GPU, weights, "
                                      "tokenizers, data sets), per model and per claim; loads no model (each "
                                      "tokenizer is loaded, offline, to check it)")
    d.add_argument("--require", choices=("gpu", "recorded"),
                   help="a gate: exit 1 when a claim of this tier asked for is not ready, 0 when all are "
                        "(default: report only, exit 0)")
    d.add_argument("--id", action="append", help="with --require gpu: only these claims (repeatable; default: "
                                                 "every implemented gpu-tier claim)")
    d.add_argument("--fetch", action="store_true",
                   help="on a machine with network: first download every weight and tokenizer file the registry's "
                        "models (and --model) need and the Hugging Face cache lacks, in the hub's layout, so that "
                        "the offline loads find them (default: look only)")
    d.add_argument("--model", action="append", metavar="SPEC",
                   help="with --fetch: your own model's files too (a --model spec; repeatable; default: none)")
    d.set_defaults(func=_doctor)
    for command in sub.choices.values():
        say_defaults(command)
    return parser, dict(sub.choices)


def main(argv: list[str] | None = None) -> int:
    parser, _ = build_parser()
    args = parser.parse_args(argv)
    problem = check_common(args)
    if problem:
        print(f"mcdo {args.command}: {problem}", file=sys.stderr)
        return 2
    from .env import offline

    try:
        with offline():  # a command is mcdo's own: no Hugging Face call in it goes to the network
            return args.func(args)
    except OSError as e:  # a full disk or a folder that went read-only mid-run: one line, the file named
        if not (isinstance(e, WriteFailed) or e.errno in _DISK_ERRORS):
            raise
        print(f"mcdo {args.command}: {e}; free space there or choose another --out / MCDO_CACHE_DIR (finished "
              "cache files are kept, a rerun resumes from them)", file=sys.stderr)
        return 1


_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG}


# integer options shared by the commands, and the least value each can take (a library error would otherwise
# answer for them)
_AT_LEAST = {"bs": 1, "folds": 2, "trials": 2, "n_images": 2, "workers": 0}
# folder options: a path that does not exist is answered at once, before torch and the models are imported
_FOLDER_OPTIONS = ("data", "eval_data", "hessian_data", "data_root", "factors")


def say_defaults(parser: argparse.ArgumentParser) -> None:
    """Every option's default in its help (``--help`` answers what a run without it does), unless the help says it."""
    for action in parser._actions:
        default = action.default
        if action.help == argparse.SUPPRESS or any(default is v for v in (None, False, argparse.SUPPRESS)) \
                or action.nargs == 0:
            continue
        if action.help is None:
            action.help = "default: %(default)s"
        elif "default" not in action.help:
            action.help += " (default: %(default)s)"


def check_common(args: argparse.Namespace) -> str | None:
    """One line naming the option, for the mistakes every command shares, before any heavy import: an ``--out``
    that is a file or cannot be written, an integer option below what it can take, a folder option whose path
    does not exist, and a model name the registry does not hold."""
    for name, least in _AT_LEAST.items():
        value = getattr(args, name, None)
        if isinstance(value, int) and value < least:
            return f"--{name.replace('_', '-')} {value}: it must be at least {least}"
    for name in _FOLDER_OPTIONS:
        values = getattr(args, name, None)
        for value in (values if isinstance(values, list) else [values]):
            if isinstance(value, str) and ("/" in value or value.startswith(("~", "."))) \
                    and not Path(value).expanduser().exists():
                return f"--{name.replace('_', '-')} {value}: no such folder"
    for name in ("model", "models"):
        values = getattr(args, name, None)
        values = values.split(",") if isinstance(values, str) and name == "models" else values
        for value in (values if isinstance(values, list) else [values]):
            if isinstance(value, str) and value.strip():
                from .model_specs import unknown_model

                problem = unknown_model(value.strip())
                if problem:
                    return f"--{name} {value}: {problem}"
                from .model_specs import weights_conflict

                conflict = weights_conflict(value.strip(), bool(getattr(args, "random_weights", False)))
                if conflict and args.command != "doctor":  # every model of the run, before any work
                    return f"--{name} {value}: {conflict}"
    out = getattr(args, "out", None)
    if out and args.command != "doctor":
        from .env import SettingError, ensure_writable

        try:
            ensure_writable(Path(out), "--out")
        except SettingError as e:
            return str(e)
    return None


if __name__ == "__main__":
    sys.exit(main())
