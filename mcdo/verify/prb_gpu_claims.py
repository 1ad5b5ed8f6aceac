"""PRB claims on the gpu tier: ImageNet-1k zero-shot top-1 of the seed's four models (PRB-05).

Same machinery as the OOD gpu claims: prerequisites named at once, features cached per model, and
stand-ins with random weights for the pipeline test.
"""
from __future__ import annotations

import os

from .. import env
from .. import stats as S
from ..features import image_features
from ..models.encoder import load
from ..oodbench import imagenet_accuracy
from .engine import Context, evaluates
from .ood_gpu_claims import require
from .records import INCONCLUSIVE, Record, value_verdict

# model -> (expected top-1, half-width of the precision the seed states it with)
PRB05 = {"clip-vit-l-14-336": (0.755, 0.0005), "siglip-so400m-14-384": (0.831, 0.0005),
         "siglip2-so400m-14-378": (0.84, 0.005), "siglip2-so400m-16-384": (0.841, 0.0005)}


@evaluates("PRB-05", "gpu")
def prb05(ctx: Context) -> list[Record]:
    """Zero-shot top-1 with CLIP's 80-template ensemble, Clopper-Pearson CI, against the seed's table."""
    val, _ = require(ctx, list(PRB05), ood_sets=())
    out = []
    for model, (expected, half) in PRB05.items():
        def make(model=model):
            device = env.device()
            if not ctx.pretrained:  # a random-weight stand-in, reproducible from the run's seed
                import torch

                torch.manual_seed(ctx.seed)
            enc = load(ctx.stand_ins.get(model, model), pretrained=ctx.pretrained, device=device,
                       progress=ctx.progress)
            feats = image_features(enc, val, batch_size=ctx.batch_size, device=device,
                                   workers=min(8, os.cpu_count() or 1),
                                   precision="amp" if device.startswith("cuda") else "fp32", progress=ctx.progress)
            return feats, imagenet_accuracy(enc, feats, ("openai",), device, ctx.progress)["openai"]

        feats, acc = ctx.cached(f"zs-gpu/{model}", make)
        n, classes = int(feats.labels.size), int(len(set(feats.labels.tolist())))
        ci = S.binomial_ci(round(acc * n), n)
        verdict = value_verdict(ci, expected, half) if classes == 1000 else INCONCLUSIVE
        stand_in = ctx.stand_ins.get(model)
        out.append(Record("PRB-05", "gpu", model, verdict, acc, ci, expected=f"~{100 * expected:g}%",
                          reason=f"top-1 {100 * acc:.2f}% [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}] (Clopper-Pearson) with "
                                 f"CLIP's 80-template ensemble on {n} images of {classes} classes"
                                 + ("" if classes == 1000 else "; not the whole validation set, so the value is not "
                                    "comparable") + (f"; unreadable files skipped: {len(feats.failed)}" if feats.failed
                                                     else ""),
                          config=dict(model=model, templates="openai", n_images=n,
                                      **({"stand_in": stand_in, "pretrained": ctx.pretrained} if stand_in else {}))))
    return out
