"""``mcdo bayes``: deterministic vs BayesVLM zero-shot calibration for one model, Hessian set and evaluation set."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..argtypes import marglik_or_positive, positive_int

WORLD = {"world": "the proxies' training world (seed 1000, 20000 pairs)",
         "world-other": "another world (seed 2000, blurred, captions naming every attribute)",
         "world-test": "1000 held-out world images labelled by colour"}


def add_parser(sub) -> None:
    b = sub.add_parser("bayes", help="BayesVLM: Laplace over the projections vs the deterministic model "
                                     "(accuracy, NLL, ECE, Brier) with a reliability diagram",
                       description="Fits a Kronecker-factored Laplace over the image and text projections from "
                                   "image-caption pairs (--hessian-data), fits the prior precision by marginal "
                                   "likelihood and compares zero-shot predictions on --eval-data. Data: 'world', "
                                   "'world-other', 'world-test' (embedded, no download), or a folder: class "
                                   "sub-folders (Food-101 as extracted), or images with captions.tsv for pairs.")
    b.add_argument("--model", default="proxy-softmax",
                   help="a registered model or your own (mcdo models lists the forms: ARCH:TAG, ARCH:/path/ckpt.pt, "
                        "hf-hub:ORG/NAME, a folder) (default: proxy-softmax, trained here)")
    b.add_argument("--hessian-data", default="world", help="'world', 'world-other' or a folder (default: world)")
    b.add_argument("--eval-data", default="world-test", help="'world-test' or a labelled folder (default: world-test)")
    b.add_argument("--prompt", default=None, help="class prompt with {} (default: 'a photo of a {} shape' for the "
                                                  "world, 'a photo of a {}.' for folders)")
    b.add_argument("--posterior", choices=("bayesvlm", "laplace"), default="bayesvlm",
                   help="bayesvlm: the authors' notebook (N = 10 x pairs, sqrt(lambda) I on each Kronecker factor, "
                        "their evidence by 300 Adam steps on log lambda; default); laplace: mcdo's exact-prior "
                        "Laplace (N = pairs, N A kron B + lambda I, the Laplace evidence)")
    b.add_argument("--class-batch", type=int, default=32768,
                   help="pairs per class batch of the Hessian (default: BayesVLM's 32768; a smaller set is one batch)")
    b.add_argument("--pseudo-count", type=float, default=None,
                   help="the authors' pseudo-data count: N = this x the Hessian pairs (default: the posterior's, "
                        "bayesvlm 10, laplace 1)")
    b.add_argument("--pseudo-pairs", type=float, default=None,
                   help="N as a number of pairs instead (overrides --pseudo-count)")
    b.add_argument("--prior-precision", default="marglik", type=marglik_or_positive,
                   help="'marglik' (default: the posterior's evidence and optimiser) or a number")
    b.add_argument("--factors", default=None,
                   help="a folder of BayesVLM's published factors (e.g. $MCDO_RECORDED_DIR/bayesvlm/"
                        "clip-vit-b-32-laion2b): print both posteriors' prior precisions and per-direction "
                        "variances from them and exit (no weights or data needed)")
    b.add_argument("--covariance", choices=("full", "diagonal"), default=None,
                   help="ProbCosine with whole embedding covariances or their diagonal (default: the posterior's: "
                        "bayesvlm diagonal, as the authors; laplace full)")
    b.add_argument("--bins", type=int, action="append", help="ECE bins, repeatable (default: 20 and 15)")
    b.add_argument("--seed", type=int, default=0, help="proxy seed and bootstrap seed")
    b.add_argument("--device", help="default: MCDO_DEVICE, else cuda when available, else cpu")
    b.add_argument("--bs", type=int, default=256)
    b.add_argument("--random-weights", action="store_true", help="the architecture with random weights (plumbing)")
    b.add_argument("--out", default="reports/bayes", help="output folder (default: reports/bayes)")
    b.add_argument("--limit", type=positive_int, metavar="N",
                   help="a smoke run: at most N Hessian pairs and N evaluation images (classes kept spread), to check "
                        "the whole chain in minutes; its files say so and its figures describe nothing")
    b.add_argument("--quiet", action="store_true", help="no progress bars: results and errors only")
    b.set_defaults(func=run)


def _data(value: str, kind: str):
    from .data import labelled_folder, pairs_folder, world_labelled, world_pairs

    if value == "world":
        return world_pairs(20000, 1000) if kind == "pairs" else None
    if value == "world-other":
        return world_pairs(20000, 2000, full_captions=True, blur=1.4) if kind == "pairs" else None
    if value == "world-test":
        return world_labelled(1000, 7) if kind == "labelled" else None
    return (pairs_folder if kind == "pairs" else labelled_folder)(value)


def check_options(args: argparse.Namespace) -> None:
    """Refuse, in one line naming the option, the settings that would report a meaningless calibration (a zeroed
    Hessian reads as uniform probabilities, ECE 0; so does a one-class set)."""
    if args.class_batch < 1:
        raise ValueError(f"--class-batch {args.class_batch}: the Hessian's class batch needs at least 1 pair "
                         "(BayesVLM uses 32768)")
    for name in ("pseudo_count", "pseudo_pairs"):
        value = getattr(args, name, None)
        if value is not None and not value > 0:
            raise ValueError(f"--{name.replace('_', '-')} {value:g}: a pseudo-data count must be positive (it scales "
                             "the Hessian; 0 would leave the prior alone)")
    if args.bins is not None and any(b < 1 for b in args.bins):
        raise ValueError(f"--bins {args.bins}: an ECE needs at least 1 bin")
    if args.prompt is not None and "{}" not in args.prompt:
        raise ValueError(f"--prompt {args.prompt!r} has no {{}}: every class would get the same text")
    if args.bs < 1:
        raise ValueError(f"--bs {args.bs}: at least 1 image per batch")


def check_evaluation(evaluation) -> None:
    """An evaluation set with fewer than two classes, or a class with no image, cannot measure calibration."""
    import numpy as np

    present = np.bincount(np.asarray(evaluation.labels), minlength=len(evaluation.classnames))
    if len(evaluation.classnames) < 2:
        raise ValueError(f"--eval-data {evaluation.name}: {len(evaluation.classnames)} class; zero-shot calibration "
                         "needs at least 2")
    empty = [c for c, n in zip(evaluation.classnames, present) if n == 0]
    if empty:
        raise ValueError(f"--eval-data {evaluation.name}: class folder(s) with no image: {', '.join(empty[:5])} "
                         "(they would be extra zero-shot classes): remove them or add images")


def run(args: argparse.Namespace) -> int:
    from .. import env
    from ..errors import MissingResource
    from ..models import get_spec, load
    from ..io import config_stem, jsonable, tool_config, write_text_atomic
    from . import metrics, pipeline
    from .figures import reliability_diagram

    if args.factors:
        return published_summary(args)
    try:
        check_options(args)
        device = env.check_device(args.device, "--device") if args.device else env.device()
        prior = args.prior_precision  # 'marglik' or a finite positive number (argtypes.marglik_or_positive)
        spec = get_spec(args.model)
        evaluation = _data(args.eval_data, "labelled")
        if evaluation is not None:
            check_evaluation(evaluation)
        hessian = _data(args.hessian_data, "pairs")
        if hessian is None or evaluation is None:
            raise ValueError(f"--hessian-data takes pairs ('world', 'world-other', a folder) and --eval-data a "
                             f"labelled set ('world-test', a folder); the embedded sets are: {WORLD}")
        if args.limit:  # a smoke run: a few pairs for the Hessian, a few labelled images, classes kept spread
            from ..data.limit import shrink

            evaluation, hessian = shrink(evaluation, args.limit, args.seed), shrink(hessian, args.limit, args.seed)
        if spec.family == "proxy" and not args.eval_data.startswith("world"):
            raise ValueError("proxy models read the embedded world only (32-px arrays), not image folders")
        if args.random_weights:
            import torch

            torch.manual_seed(args.seed)
        enc = load(spec.name, pretrained=not args.random_weights, device=device, seed=args.seed,
                   progress=not args.quiet)
        prompt = args.prompt or ("a photo of a {} shape" if args.eval_data == "world-test" else "a photo of a {}.")
        cal = pipeline.calibrate(enc, hessian, evaluation, prompt, args.class_batch, args.pseudo_pairs, prior,
                                 args.covariance, tuple(args.bins or metrics.BINS), seed=args.seed,
                                 batch_size=args.bs, device=device, progress=not args.quiet,
                                 posterior=args.posterior, multiplier=args.pseudo_count)
    except (MissingResource, KeyError, ValueError) as e:
        print(f"mcdo bayes: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    text = metrics.table({f"{cal.model} on {cal.config['evaluation']}": cal.comparison})
    if args.limit:
        from ..data.limit import smoke_note

        text = f"{smoke_note(args.limit, 'data set (the Hessian pairs and the evaluation set)')}\n\n{text}"
        cal.config["limit"] = args.limit
    print(text)
    c = cal.config
    print(f"posterior {c['posterior']}: prior precision image {c['lambda_image']:.4g}, text {c['lambda_text']:.4g} "
          f"({'its evidence' if args.prior_precision == 'marglik' else 'set'}), N = {c['N_image']:.6g} pseudo-pairs; "
          f"Hessian: {c['hessian']}, {c['n_pairs']} pairs; prompt {c['prompt']!r}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = config_stem(cal.model + ("-random" if args.random_weights else ""), tool_config(args))
    figure = reliability_diagram(cal.prediction.deterministic.numpy(), cal.prediction.probs.numpy(), cal.labels,
                                 out / f"{stem}-reliability.png", title=f"{cal.model}: deterministic vs Laplace")
    record = dict(model=cal.model, comparison=cal.comparison, config=cal.config, commit=env.git_commit(),
                  provenance=env.provenance(device, "fp32"))
    write_text_atomic(out / f"{stem}.json", json.dumps(jsonable(record), indent=1) + "\n")
    write_text_atomic(out / f"{stem}.md", f"# mcdo bayes: {stem}\n\n{text}\n\n![reliability]({figure.name})\n")
    print(f"wrote {out / (stem + '.md')}, {out / (stem + '.json')} and {figure}")
    return 0


def published_summary(args: argparse.Namespace) -> int:
    """``mcdo bayes --factors DIR``: both posteriors from BayesVLM's published factors, printed and written."""
    from ..errors import MissingResource
    from ..io import jsonable, write_text_atomic
    from . import published

    try:
        if args.pseudo_count is not None and not args.pseudo_count > 0:
            raise ValueError(f"--pseudo-count {args.pseudo_count:g}: a pseudo-data count must be positive")
        pub = published.load(args.factors)
        summary = published.summary(pub, args.pseudo_count or 10.0)
    except (MissingResource, ValueError) as e:
        print(f"mcdo bayes: {e}", file=sys.stderr)
        return 2
    text = published.table(summary)
    print(f"BayesVLM's published factors for {pub.name} ({pub.factors['img'].n} pairs): the stored prior "
          f"precisions (pseudo-count {pub.stored['n_img']:g}) imply the projections' squared norms; with them the "
          f"authors' Adam gives lambda at pseudo-count {args.pseudo_count or 10:g} (BVL-03's recorded tier in "
          "mcdo claims judges it against the notebook's) and mcdo's laplace posterior its own lambda at N = n. "
          "Variances: the embedding's, along each eigen-direction of B, for an input like the Hessian data's.\n")
    print(text)
    out = Path(args.out)
    stem = f"published-{pub.name}-x{args.pseudo_count or 10:g}"
    write_text_atomic(out / f"{stem}.json", json.dumps(jsonable(dict(model=pub.name, summary=summary)), indent=1) + "\n")
    write_text_atomic(out / f"{stem}.md", f"# mcdo bayes --factors {pub.name}\n\n{text}\n")
    print(f"\nwrote {out / (stem + '.md')} and {out / (stem + '.json')}")
    return 0
