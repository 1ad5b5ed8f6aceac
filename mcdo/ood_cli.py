"""``mcdo ood``: the MCM OOD benchmark for one model. By default ImageNet-1k val in and the four MOS sets out (the
seed's benchmark); any labelled folder in (``--id-data``, class names from its folders or ``--classnames``) and
any folders out (``--ood-data``, or OpenOOD's ``--near-ood`` / ``--far-ood`` groups, each averaged apart)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .argtypes import positive_int
from .data.folders import MOS_SETS


def add_parser(sub) -> None:
    o = sub.add_parser("ood", help="MCM OOD benchmark for one model: ImageNet-1k val in, the MOS sets out (or "
                                   "your own folders)",
                       description="Zero-shot accuracy and OOD scores (softmax MCM, sigmoid MCM, energy, max-logit) "
                                   "with AUROC / FPR95 / AUPR per OOD set. Data under MCDO_DATA_ROOT (or --data-root): "
                                   "imagenet/val/<synset>/, iNaturalist/images/, SUN/images/, Places/images/, "
                                   "dtd/images/; or your own: --id-data DIR (one folder per class) with --ood-data / "
                                   "--near-ood / --far-ood folders. Features are cached, so re-scoring takes seconds.")
    o.add_argument("--model", "--model_type", required=True,
                   help="a registered model (mcdo models lists them; clip / siglip / siglip2 are the seed's names for "
                        "the B-16 models), or your own: ARCH:TAG or ARCH:/path/ckpt.pt (open_clip), hf-hub:ORG/NAME, "
                        "ORG/NAME or a folder (transformers)")
    o.add_argument("--ood-dataset", "--ood_dataset", action="append", choices=("all", *MOS_SETS),
                   help="repeatable; default: all four")
    o.add_argument("--id-data", help="in-distribution images: a folder with one sub-folder per class (default: "
                                     "ImageNet-1k val under the data root)")
    o.add_argument("--classnames", help="a file with one class name per line, in the sorted order of --id-data's "
                                        "class folders (default: the folder names, underscores as spaces)")
    for flag, group in (("--ood-data", "ood"), ("--near-ood", "near"), ("--far-ood", "far")):
        o.add_argument(flag, action="append", type=_ood_folder(group), metavar="[NAME=]DIR",
                       help=f"an OOD folder{'' if group == 'ood' else f' of OpenOOD group {group!r}'} (repeatable; "
                            "NAME defaults to the folder's name)" + ("; --near-ood / --far-ood sets are also averaged "
                                                                    "per group" if group == "ood" else ""))
    o.add_argument("--bs", type=int, default=256, help="batch size for image encoding (default 256)")
    o.add_argument("--score", choices=("all", "softmax", "sigmoid", "energy", "max_logit"), default="all")
    o.add_argument("--use_sigmoid", "--use-sigmoid", action="store_true",
                   help="the seed's flag: sigmoid MCM (same as --score sigmoid)")
    o.add_argument("--convention", choices=("seed", "mcm", "openood"), default="seed",
                   help="seed: open_clip's preprocessing, 'a photo of a {}.', ID positive, FPR at >= 95%% TPR "
                        "(default); mcm: the MCM paper's code ('a photo of a {}', bilinear resize, FPR at the TPR "
                        "closest to 95%%); openood: OOD positive (FPR95 = ID flagged at 95%% of OOD caught, AUPR-Out)")
    o.add_argument("--temperature", default="1", help="softmax MCM temperature: a number (MCM: 1) or 'model' "
                                                       "(1 / the model's logit scale)")
    o.add_argument("--data-root", help="default: MCDO_DATA_ROOT")
    o.add_argument("--device", help="default: MCDO_DEVICE, else cuda when available, else cpu")
    o.add_argument("--precision", choices=("fp32", "bf16", "amp"), help="default: amp (bf16) on cuda, fp32 on cpu")
    o.add_argument("--workers", type=int, default=None,
                   help="image decoding processes (default: up to 4, no more than the cores available)")
    o.add_argument("--backend", choices=("open_clip", "hf"),
                   help="which library builds a SigLIP / SigLIP2 (default: open_clip; for SigLIP2 "
                        "MCDO_SIGLIP2_BACKEND)")
    o.add_argument("--random-weights", action="store_true",
                   help="the architecture with random weights (plumbing checks)")
    o.add_argument("--seed", type=int, default=0, help="seed of --random-weights")
    o.add_argument("--out", default="reports/ood", help="output folder (default: reports/ood)")
    o.add_argument("--n-boot", type=int, default=200,
                   help="bootstrap resamples for the 95%% CIs printed beside every AUROC and FPR95 (images resampled "
                        "within each set; 0: no CIs; default: 200)")
    o.add_argument("--save-scores", action="store_true",
                   help="also write every image's scores (<report>-scores.csv: set, file, is_id, one column per "
                        "score), to recompute any metric (OpenOOD's --save-score)")
    o.add_argument("--limit", type=positive_int, metavar="N",
                   help="a smoke run: at most N images of the ID set and of each OOD set (classes kept spread), to "
                        "check the whole chain in minutes; its files say so and its figures describe nothing")
    o.add_argument("--quiet", action="store_true", help="no progress bars: results and errors only")
    o.set_defaults(func=run)


def _ood_folder(group: str):
    """--ood-data / --near-ood / --far-ood: [NAME=]DIR -> (group, name, folder), the folder checked at once."""
    def parse(value: str) -> tuple[str, str, str]:
        whole = Path(value).expanduser().is_dir()  # a folder whose own path holds "=" is a folder, not NAME=DIR
        name, _, path = ("", "", value) if whole or "=" not in value else value.partition("=")
        path = path or value
        return group, name or Path(path).expanduser().resolve().name, path  # checked in run: one line, no usage

    return parse


def _temperature(value: str) -> float | str:
    """--temperature: 'model' or a finite number > 0."""
    if value == "model":
        return value
    try:
        t = float(value)
    except ValueError:
        raise ValueError(f"--temperature must be a number > 0 or 'model', got {value!r}") from None
    if not (t > 0 and t != float("inf")):
        raise ValueError(f"--temperature must be a finite number > 0 (MCM uses 1), got {value}")
    return t


def _sigmoid_needs_bias(args: argparse.Namespace, spec) -> None:
    if args.score == "sigmoid" and spec.loss == "softmax":
        raise SystemExit(f"{spec.name} has no logit_bias (a softmax-trained model): sigmoid MCM needs one; "
                         "use --score softmax, energy, max_logit or all")


def run(args: argparse.Namespace) -> int:
    from . import env, oodbench
    from .errors import MissingResource
    from .models import get_spec, load
    from .ood import OOD_SCORES
    from .io import config_stem, jsonable, tool_config, write_text_atomic

    sets = MOS_SETS if not args.ood_dataset or "all" in args.ood_dataset else tuple(dict.fromkeys(args.ood_dataset))
    folders = (args.ood_data or []) + (args.near_ood or []) + (args.far_ood or [])
    own = bool(folders or args.id_data or args.classnames)  # a user's benchmark instead of the MOS sets
    flags = {"ood": "--ood-data", "near": "--near-ood", "far": "--far-ood"}
    missing = [f"{flags.get(g, '--ood-data')} {p}" for g, _, p in folders if not Path(p).expanduser().is_dir()]
    missing += [f"--id-data {args.id_data}"] if args.id_data and not Path(args.id_data).expanduser().is_dir() else []
    if missing:
        print(f"mcdo ood: {'; '.join(missing)}: no such folder", file=sys.stderr)
        return 2
    if own and args.ood_dataset:
        print("mcdo ood: --ood-dataset names the MOS sets; with your own folders give them as --ood-data",
              file=sys.stderr)
        return 2
    if args.use_sigmoid:  # the seed's flag: sigmoid MCM
        if args.score not in ("all", "sigmoid"):
            print(f"mcdo ood: --use_sigmoid asks for sigmoid MCM, but --score {args.score} was given", file=sys.stderr)
            return 2
        args.score = "sigmoid"
    scores = OOD_SCORES if args.score == "all" else (args.score,)
    try:
        device = env.check_device(args.device, "--device") if args.device else env.device()
        env.cache_dir()
        temperature = _temperature(args.temperature)
        for name, value, least in (("--bs", args.bs, 1), ("--workers", 0 if args.workers is None else args.workers, 0),
                                   ("--n-boot", args.n_boot, 0)):
            if value < least:
                raise ValueError(f"{name} must be >= {least}, got {value}")
    except ValueError as e:
        print(f"mcdo ood: {e}", file=sys.stderr)
        return 2
    precision = args.precision or ("amp" if device.startswith("cuda") else "fp32")
    try:
        spec = get_spec(args.model)
        _sigmoid_needs_bias(args, spec)
        if own:  # every folder read before the model loads: a missing or empty one fails at once
            mine = oodbench.user_data(args.id_data, folders, args.classnames, args.data_root)
            data, extra = (mine.id_images, mine.ood), dict(classnames=mine.classnames, groups=mine.groups)
        else:
            data, extra = oodbench.find_data(sets, args.data_root), {}
        if args.limit:
            from .data.limit import shrink

            data = (shrink(data[0], args.limit, args.seed),
                    {n: shrink(v, args.limit, args.seed) for n, v in data[1].items()})
        if args.random_weights:
            import torch

            torch.manual_seed(args.seed)
        enc = load(spec.name, pretrained=not args.random_weights, backend=args.backend, device=device,
                   progress=not args.quiet)
        _sigmoid_needs_bias(args, enc.spec)  # a user's model: its loss is known once it is loaded
        workers = env.default_workers() if args.workers is None else args.workers
        res = oodbench.run(enc, sets, scores, batch_size=args.bs, device=device, workers=workers,
                           precision=precision, temperature=temperature, progress=not args.quiet, data=data,
                           convention=args.convention, **extra)
    except (MissingResource, KeyError, ValueError) as e:
        print(f"mcdo ood: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    cis = res.intervals(n_boot=args.n_boot, seed=args.seed) if args.n_boot > 0 else None
    text = oodbench.format_table(res, cis, args.n_boot)
    if args.limit:
        from .data.limit import smoke_note

        text = f"{smoke_note(args.limit)}\n\n{text}"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = config_stem(f"{enc.spec.name}-{res.convention}" + ("-random" if args.random_weights else ""),
                       tool_config(args))
    prov = env.provenance(device, precision)
    rows = [dict(model=enc.spec.name, pretrained=not args.random_weights, backend=enc.backend, score=sc, ood_set=name,
                 convention=res.convention, **metrics,
                 **{f"{m}_ci": v for m, v in ((cis or {}).get(sc, {}).get(name, {})).items()},
                 n_boot=args.n_boot,
                 id_accuracy=res.accuracy, n_id=res.n_id, scale=res.scale, bias=res.bias,
                 temperature=res.temperature, commit=env.git_commit(), config=res.config, limit=args.limit,
                 provenance=prov)
            for sc, per in res.table().items() for name, metrics in per.items()]
    write_text_atomic(out / f"{stem}.jsonl", "".join(json.dumps(jsonable(r)) + "\n" for r in rows))
    write_text_atomic(out / f"{stem}.md", f"# mcdo ood: {stem}\n\n{text}\n")
    print(f"wrote {out / (stem + '.md')} and {out / (stem + '.jsonl')} ({len(rows)} records)")
    if args.save_scores:
        path = out / f"{stem}-scores.csv"
        write_text_atomic(path, oodbench.scores_csv(res, data))
        print(f"wrote {path} (one row per image: set, file, in-distribution or not, each score)")
    return 0


