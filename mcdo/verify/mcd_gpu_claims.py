"""MC-dropout reliability claims on the gpu tier (MCD-03..07): the recorded experiment, rerun.

Same design as the recorded run: open_clip CLIP ViT-B-32 (openai) and SigLIP2 ViT-B-16 (webli),
p = 0.01 on every nn.Linear of the vision tower (``as_published``), K = 10 trials of T = 64 passes,
trace_pre per image. The images are the recorded run's 500 (read from its trial files, found under
``MCDO_DATA_ROOT``'s ImageNet val) when ``MCDO_RECORDED_DIR`` is set, else 5 images from each of 100
synsets drawn with the run's seed. Stand-ins with random weights run the same code in the tests.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import env, scores
from .. import stats as S
from ..data import recorded as R
from ..data.folders import ImageFiles, ImageList, imagenet_val
from ..errors import MissingData, MissingResource
from ..models.encoder import load
from ..sampling import mc_sample
from ..zeroshot import fingerprint, image_transform
from .engine import Context, evaluates
from .ood_gpu_claims import require
from .recorded_claims import _spearman_median, figure_record, gate_record
from .records import Record

TIER = "gpu"
GPU = dict(trials=10, T=64, p=0.01, mode="as_published", dtype="float32", n_synsets=100, per_synset=5,
           batch_size=8, max_rows=512)
MODELS = {"clip_b32": "clip-vit-b-32", "siglip2_b16": "siglip2-vit-b-16"}


def select_images(ctx: Context, val: ImageList) -> tuple[list[Path], np.ndarray, str]:
    """The recorded run's images when its trial files are available, else a seeded synset-balanced draw."""
    try:
        recorded = R.nested_trials("clip_b32", 64).paths
    except MissingResource:
        recorded = None
    if recorded is not None:
        local = {(p.parent.name, p.name): (p, y) for p, y in zip(val.paths, val.labels)}
        keys = [(Path(str(q)).parent.name, Path(str(q)).name) for q in recorded]
        missing = [f"{a}/{b}" for a, b in keys if (a, b) not in local]
        if missing:
            raise MissingData(f"{len(missing)} of the recorded run's {len(keys)} ImageNet val images under {val.root} "
                              f"(e.g. {missing[0]})", "use the full ImageNet-1k validation set, or unset "
                              "MCDO_RECORDED_DIR to draw images from what is there")
        chosen = [local[k] for k in keys]
        return [p for p, _ in chosen], np.array([y for _, y in chosen]), "the recorded run's 500 images"
    rng = np.random.default_rng(ctx.seed)
    classes = np.unique(val.labels)
    classes = np.sort(rng.choice(classes, size=min(GPU["n_synsets"], classes.size), replace=False))
    idx = [i for c in classes for i in np.flatnonzero(val.labels == c)[: GPU["per_synset"]]]
    return ([val.paths[i] for i in idx], val.labels[idx],
            f"{len(idx)} images from {classes.size} synsets (up to {GPU['per_synset']} each, drawn with seed {ctx.seed})")


def measure(ctx: Context, key: str) -> dict:
    """trace_pre [K, N] of one model, once per run (MC batches cached on disk, so a rerun resumes)."""
    def make():
        model = MODELS[key]
        require(ctx, [model], ood_sets=())
        device = env.device()
        if not ctx.pretrained:
            torch.manual_seed(ctx.seed)
        enc = load(ctx.stand_ins.get(model, model), pretrained=ctx.pretrained, device=device, progress=ctx.progress)
        val = imagenet_val()
        paths, labels, source = select_images(ctx, val)
        subset = ImageList(val.name, val.root, tuple(paths), labels, val.layout)
        data = ImageFiles(subset, image_transform(enc))
        loaded = [data[i] for i in range(len(data))]
        failed = [str(paths[i]) for x, i in loaded if x is None]
        x = torch.stack([x for x, _ in loaded if x is not None])
        g = GPU
        trials = [scores.trace_pre(mc_sample(
            enc.vision_tower, x, T=g["T"], p=g["p"], mode=g["mode"], seed=k, batch_size=g["batch_size"],
            max_rows=g["max_rows"], dtype=g["dtype"], progress=ctx.progress, model_name=fingerprint(enc),
            cache_dir=env.cache_dir() / "samples")) for k in range(g["trials"])]
        stand_in = ctx.stand_ins.get(model)
        config = dict(model=model, **{k: v for k, v in g.items() if k not in ("n_synsets", "per_synset")},
                      images=source, n_images=int(x.shape[0]), unreadable=len(failed), score="trace_pre",
                      **({"stand_in": stand_in, "pretrained": ctx.pretrained} if stand_in else {}))
        return dict(trials=np.stack(trials), config=config, failed=failed)

    return ctx.cached(f"mcd-gpu/{key}", make)


def _figure(claim_id: str, key: str, name: str, fn, expected: float, half: float):
    def evaluator(ctx: Context) -> list[Record]:
        m = measure(ctx, key)
        return [figure_record(claim_id, TIER, key, m["trials"], name, fn, expected, half, ctx, m["config"])]

    evaluator.__doc__ = f"{claim_id} on the gpu tier: {name} of trace_pre over trials, {MODELS[key]}."
    return evaluates(claim_id, TIER)(evaluator)


mcd03 = _figure("MCD-03", "clip_b32", "SNR", S.snr, 1.0, 0.05)
mcd04 = _figure("MCD-04", "clip_b32", "pairwise Spearman (median)", _spearman_median, 0.49, 0.005)
mcd05 = _figure("MCD-05", "siglip2_b16", "SNR", S.snr, 15.0, 0.05)
mcd06 = _figure("MCD-06", "siglip2_b16", "pairwise Spearman (median)", _spearman_median, 0.93, 0.005)


@evaluates("MCD-07", TIER)
def mcd07(ctx: Context) -> list[Record]:
    """The reliability gate: CLIP B-32 fails, SigLIP2 B-16 passes."""
    require(ctx, list(MODELS.values()), ood_sets=())
    out = []
    for key in MODELS:
        m = measure(ctx, key)
        out.append(gate_record("MCD-07", TIER, key, m["trials"], key == "siglip2_b16", ctx, m["config"]))
    return out

