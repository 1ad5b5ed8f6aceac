"""``mcdo sweep``: a grid of MC-dropout reliability runs, sharded, resumable, aggregated (``mcdo.sweep``)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


from .argtypes import comma_list as _list
from .argtypes import positive_int, probability


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="a grid (models x p x T x dropout mode x data set) of MC-dropout reliability "
                                     "runs, one result file per cell, sharded across GPUs / machines, then a report",
                       description="Each cell runs --trials trials of T passes on the same images and writes "
                                   "OUT/cells/<cell>.json (per-image trace_pre per trial, SNR, ICC, Spearman, gate). "
                                   "Shard with --shard i/n, torchrun (RANK / WORLD_SIZE) or a Slurm array; "
                                   "--skip-existing (default) reruns only missing cells; every shard can aggregate "
                                   "what is finished (--aggregate-only). Data: 'world' (32-px models: proxies, "
                                   "tiny-*) or a labelled image folder.")
    p.add_argument("--models", type=_list(str), default=["proxy-softmax", "proxy-sigmoid"],
                   help="comma-separated registered models, or your own (mcdo models lists the forms: ARCH:TAG, "
                        "ARCH:/path/ckpt.pt, hf-hub:ORG/NAME, a folder, timm:NAME) "
                        "(default: proxy-softmax,proxy-sigmoid)")
    p.add_argument("--p", type=_list(probability), default=[0.01], help="dropout rates, comma-separated")
    p.add_argument("--T", type=_list(positive_int), default=[16, 64], help="passes per image, comma-separated")
    p.add_argument("--modes", type=_list(str), default=["as_published"], help="as_published, faithful")
    p.add_argument("--data", type=_list(str), default=["world"], help="'world' or image folders, comma-separated")
    p.add_argument("--trials", type=int, default=5, help="trials per cell")
    p.add_argument("--n-images", type=int, default=200, help="images per cell")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard", help="i/n, 0-based (default: torchrun's or Slurm's variables, else one shard)")
    p.add_argument("--skip-existing", action=argparse.BooleanOptionalAction, default=True,
                   help="leave cells with a result file alone (default; --no-skip-existing reruns them)")
    p.add_argument("--aggregate-only", action="store_true", help="write the report of what is finished, run nothing")
    p.add_argument("--random-weights", action="store_true", help="the architectures with random weights (plumbing)")
    p.add_argument("--out", default="reports/sweep")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="a smoke run: at most N images and 2 trials per cell (cells keyed by these settings, apart "
                        "from a full run's), to check the grid's chain in minutes; its figures describe nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars: results and errors only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from . import sweep
    from .errors import MissingResource
    from .models import get_spec

    out = Path(args.out)
    try:
        for m in args.models:
            get_spec(m)
        cells = sweep.grid(args.models, args.p, args.T, args.modes, args.data)
        trials, n_images = (min(args.trials, 2), min(args.n_images, args.limit)) if args.limit else (args.trials,
                                                                                                   args.n_images)
        if args.limit:
            from .data.limit import smoke_note

            print(smoke_note(args.limit, "cell") + f" ({trials} trials per cell)")
        settings = sweep.Settings(trials, n_images, args.seed, args.random_weights)
        i, n, source = sweep.shard_of(args.shard)
        failed = {}
        if not args.aggregate_only:
            mine = sweep.mine(cells, i, n)
            if not args.quiet:
                print(f"shard {i}/{n} ({source}): {len(mine)} of {len(cells)} cells")
            ran, failed = sweep.run(mine, out, settings, args.skip_existing, progress=not args.quiet)
            if not args.quiet:
                print(f"ran {len(ran)} cells, {len(failed)} failed, {len(mine) - len(ran) - len(failed)} already done")
    except (MissingResource, KeyError, ValueError) as e:
        print(f"mcdo sweep: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    print(sweep.aggregate(out, cells, settings))
    print(f"wrote {out / 'sweep.md'}")
    return 1 if failed else 0
