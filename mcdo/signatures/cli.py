"""``mcdo signatures``: activation kurtosis, outlier features and the privileged-direction pruning curve of a model."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..argtypes import positive_float, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("signatures", help="robustness signatures (Crabbe et al. 2023): activation kurtosis, outlier "
                                          "dimensions, privileged directions and the pruning curve",
                       description="Reads a model's unit-norm image representations on --data and prints the "
                                   "activation kurtosis (per image across dimensions, and per dimension), the "
                                   "outlier-feature profile and, with a zero-shot head (or a classifier's own), the "
                                   "accuracy after keeping the top k% of the head's SVD directions by importance.")
    p.add_argument("--model", default="proxy-softmax",
                   help="a registered model, or timm:<name> for a timm classifier (e.g. "
                        "timm:vit_base_patch16_clip_224.openai_ft_in1k); default proxy-softmax")
    p.add_argument("--data", default="world", help="'world' (the embedded world, 96 classes colour x shape x size; "
                                                   "proxies), 'imagenet' (MCDO_DATA_ROOT), or a labelled folder")
    p.add_argument("--finetuned", action="store_true", help="a proxy: its fine-tuned counterpart (models.finetune)")
    p.add_argument("--threshold", type=positive_float, default=10.0, help="outlier dimensions: mean |activation| above this "
                                                                 "multiple of the median (default 10)")
    p.add_argument("--n-images", type=int, default=5000,
                   help="world images (default 5000, the claims' ICL configuration, so the figures match the report)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="default: MCDO_DEVICE, else cuda when available, else cpu")
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--random-weights", action="store_true", help="the architecture with random weights (plumbing)")
    p.add_argument("--out", default="reports/signatures", help="output folder (default: reports/signatures)")
    p.add_argument("--limit", type=positive_int, metavar="N",
                   help="a smoke run: at most N images (classes kept spread), to check the whole chain in minutes; "
                        "its files say so and its figures describe nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars: results and errors only")
    p.set_defaults(func=run)


def _model(args, device: str):
    """The model, its name for the report, and a function giving its head on a task (None: no head)."""
    import torch

    from ..models import get_spec, load

    if args.random_weights:
        torch.manual_seed(args.seed)
    if args.model.startswith("timm:"):
        from ..models.classifier import head, load_classifier

        enc = load_classifier(args.model[5:], pretrained=not args.random_weights, device=device)
        return enc, args.model[5:], lambda task: head(enc) if task.name.startswith("ImageNet") else None
    spec = get_spec(args.model)
    if args.finetuned:
        if spec.family != "proxy":
            raise ValueError("--finetuned applies to the proxies (fine-tuned here); for a fine-tuned CLIP give "
                             "--model timm:<name>")
        from ..models.finetune import FinetuneConfig, load_or_finetune

        ft = load_or_finetune(FinetuneConfig(loss=spec.loss, seed=args.seed), progress=not args.quiet)
        return ft, f"{spec.name} seed {args.seed} fine-tuned", lambda task: None
    enc = load(spec.name, pretrained=not args.random_weights, device=device, seed=args.seed, progress=not args.quiet)
    name = spec.name + (f" seed {args.seed}" if spec.family == "proxy" else "")

    def zero_shot_head(task):
        from ..zeroshot import class_embeddings
        from .collect import text_head

        if spec.family == "proxy":
            return text_head(enc, task.prompts)
        return class_embeddings(enc, task.classnames, "openai" if args.data == "imagenet" else "mcm",
                                device).astype(float)

    return enc, name, zero_shot_head


def _task(args):
    from . import collect

    if args.data == "world":  # the claims' configuration (ICL-01/03 on the proxies), so the figures are the report's
        return collect.world_composite(args.n_images)
    if args.data == "imagenet":
        from .. import env
        from ..data.folders import imagenet_val
        from ..zeroshot import imagenet_classnames

        val = imagenet_val(root=env.data_root())
        names = imagenet_classnames()
        return collect.Task("ImageNet-1k val", val, val.labels, [f"a photo of a {c}." for c in names], names)
    return collect.folder_task(args.data)


def run(args: argparse.Namespace) -> int:
    from .. import env
    from ..errors import MissingResource
    from ..io import config_stem, jsonable, tool_config, write_text_atomic
    from . import collect

    try:
        device = env.check_device(args.device, "--device") if args.device else env.device()
        from ..models import get_spec

        world = args.data == "world"
        if world != (not args.model.startswith("timm:") and get_spec(args.model).family == "proxy"):
            raise ValueError("the proxies read the embedded world only (--data world); other models read folders")
        task = _task(args)
        if args.limit:
            from ..data.limit import shrink

            task = shrink(task, args.limit, args.seed)
        model, name, head_of = _model(args, device)
        acts, labels = collect.representations(model, task.images, batch_size=args.bs, progress=not args.quiet,
                                                **({} if world else dict(device=device)))
        labels = task.labels if labels is None else labels
        head = head_of(task)  # a classifier's (weight, bias); a zero-shot head's weight
        head, bias = head if isinstance(head, tuple) else (head, None)
        prof = collect.profile(name, task, acts, head, labels, threshold=args.threshold, bias=bias)
    except (MissingResource, KeyError, ValueError) as e:
        print(f"mcdo signatures: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    if args.limit:
        from ..data.limit import smoke_note

        print(smoke_note(args.limit))
    print("\n".join(prof.lines()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = config_stem(name + ("-random" if args.random_weights else ""), tool_config(args))
    record = dict(model=name, data=task.name, commit=env.git_commit(), provenance=env.provenance(env.device()), kurtosis_mean=float(prof.kurtosis.mean()),
                  kurtosis_dimension=prof.kurtosis_dimension, max_median=prof.outliers.ratio,
                  outlier_dimensions=prof.outliers.outliers.tolist(), threshold=args.threshold,
                  importance=prof.importance.tolist() or None, pruning_curve={str(k): v for k, v in prof.accuracy.items()},
                  n_images=int(len(labels)), limit=args.limit, config=tool_config(args),
                  data_path=(str(Path(args.data).resolve()) if args.data not in ("world", "imagenet")
                             else args.data))
    write_text_atomic(out / f"{stem}.json", json.dumps(jsonable(record), indent=1) + "\n")
    written = [out / f"{stem}.json"]
    if prof.accuracy:
        from .figures import pruning_curves

        written.append(pruning_curves({name: prof.accuracy}, out / f"{stem}-pruning.png", title=task.name))
    print("wrote " + ", ".join(map(str, written)))
    return 0

