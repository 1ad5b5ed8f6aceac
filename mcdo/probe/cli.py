"""``mcdo probe``: models as frozen feature extractors on one labelled folder (seed 004's comparison)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..argtypes import positive_int

SEED_MODELS = "clip-vit-l-14-336,siglip-so400m-14-384,siglip2-so400m-14-378"


def add_parser(sub) -> None:
    p = sub.add_parser("probe", help="frozen-feature probes (Ridge alpha=6, SVC) under stratified k-fold CV, with "
                                     "paired and Nadeau-Bengio corrected t-tests between models",
                       description="Encodes every image of --data once per model (cached), cross-validates Ridge "
                                   "(alpha 6) and an SVC on the frozen features with the same folds for every model, "
                                   "and tests each pair of models. Integer class folder names (ages) make the labels "
                                   "ordinal: accuracy, +-1 accuracy and RMSE of rounded predictions; otherwise "
                                   "accuracy and macro-F1. --data world-size is the embedded ordinal task (proxies).")
    p.add_argument("--models", default=SEED_MODELS,
                   help="comma-separated models, the baseline first: registered ones or your own "
                        "(mcdo models lists the forms: ARCH:TAG, ARCH:/path/ckpt.pt, hf-hub:ORG/NAME, a folder) "
                        f"(default: the seed's {SEED_MODELS})")
    p.add_argument("--data", required=True, help="a folder DIR/<label>/*.jpg, or 'world-size' (the embedded world's "
                                                 "radius in pixels, for the proxies)")
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--alpha", type=float, default=6.0, help="Ridge penalty (default 6.0, the seed's)")
    p.add_argument("--probes", default="ridge,ridgecv,svc",
                   help="ridge (the seed's alpha), ridgecv (alpha chosen by nested CV inside each training fold over "
                        "1e-3..1e3), svc (default: all three)")
    p.add_argument("--seed", type=int, default=0, help="fold shuffling seed (and the proxies' seed)")
    p.add_argument("--device", help="default: MCDO_DEVICE, else cuda when available, else cpu")
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--random-weights", action="store_true", help="the architectures with random weights (plumbing)")
    p.add_argument("--out", default="reports/probe", help="output folder (default: reports/probe)")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="a smoke run: at most N images (but --folds of each label, as the stratified CV needs), to "
                        "check the whole chain in minutes; its files say so and its figures describe nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars: results and errors only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import env
    from ..errors import MissingResource
    from ..models import get_spec, load
    from ..io import config_stem, jsonable, tool_config, write_text_atomic
    from . import cv, pipeline

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    probes = tuple(p.strip() for p in args.probes.split(",") if p.strip())
    try:
        if len(models) < 1 or len(set(models)) != len(models):
            raise ValueError(f"--models needs distinct model names, got {args.models!r}")
        if set(probes) - set(cv.ALL_PROBES) or not probes:
            raise ValueError(f"--probes takes {','.join(cv.ALL_PROBES)}, got {args.probes!r}")
        specs = [get_spec(m) for m in models]
        world = args.data == pipeline.WORLD_SIZE
        if world != all(s.family == "proxy" for s in specs):
            raise ValueError("the proxies read the embedded world only (--data world-size), and registered models "
                             "read image folders")
        device = env.check_device(args.device, "--device") if args.device else env.device()
        data = pipeline.world_size() if world else pipeline.folder(args.data)
        if args.limit:  # at most N images, but --folds of each label: a stratified CV needs them
            import dataclasses

            from ..data.limit import subset

            keep = subset(data.labels, args.limit, args.seed, min_per_class=args.folds)
            images = (data.images[keep] if isinstance(data.images, np.ndarray) else
                      dataclasses.replace(data.images, paths=tuple(data.images.paths[i] for i in keep),
                                          labels=data.images.labels[keep]))
            data = dataclasses.replace(data, labels=data.labels[keep], images=images)
        feats, readable = {}, None
        for spec in specs:
            if args.random_weights:
                import torch

                torch.manual_seed(args.seed)
            enc = load(spec.name, pretrained=not args.random_weights, device=device, seed=args.seed,
                       progress=not args.quiet)
            feats[spec.name], ok = pipeline.features(enc, data, progress=not args.quiet, batch_size=args.bs,
                                                     device=device)
            if readable is not None and not (len(ok) == len(readable) and (ok == readable).all()):
                raise ValueError(f"{spec.name} could read other images than {specs[0].name}; the folds would differ")
            readable = ok
        n_bad = len(data.labels) - len(readable)
        comp = pipeline.run(feats, data, readable, args.folds, args.seed, probes, args.alpha, n_bad)
    except (MissingResource, KeyError, ValueError) as e:
        print(f"mcdo probe: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    text = pipeline.table(comp)
    if args.limit:
        from ..data.limit import smoke_note

        text = f"{smoke_note(args.limit)} (and --folds of each label)\n\n{text}"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = config_stem(Path(args.data).resolve().name + ("-random" if args.random_weights else ""), tool_config(args))
    chart = out / f"{stem}-accuracy.png"
    pipeline.bar_chart(comp, chart)
    record = dict(models=models, data_argument=args.data, commit=env.git_commit(), provenance=env.provenance(env.device()), **pipeline.as_dict(comp),
                  config=dict(folds=args.folds, alpha=args.alpha, probes=list(probes), seed=args.seed,
                              random_weights=args.random_weights, features="unit-norm image embeddings",
                              limit=args.limit))
    write_text_atomic(out / f"{stem}.json", json.dumps(jsonable(record), indent=1) + "\n")
    write_text_atomic(out / f"{stem}.md",
                      f"# mcdo probe: {args.data}\n\n{text}\n\n![accuracy per fold]({chart.name})\n")
    print(f"wrote {out / (stem + '.md')}, {out / (stem + '.json')} and {chart}")
    return 0
