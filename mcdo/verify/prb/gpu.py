"""PRB claims on the gpu tier: ImageNet-1k zero-shot top-1 of the seed's four models (PRB-05).

Same machinery as the OOD gpu claims: prerequisites named at once, features cached per model, and
stand-ins with random weights for the pipeline test.
"""
from __future__ import annotations

from ... import stats as S
from ...features import image_features
from ...oodbench import imagenet_accuracy
from ..engine import Context, evaluates
from ..ood.gpu import per_model
from ..prerequisites import load_model, require, stand_in_config
from ..records import INCONCLUSIVE, Record, judge

# model -> the seed's top-1 (judged with PRB-05's equivalence margin)
PRB05 = {"clip-vit-l-14-336": 0.755, "siglip-so400m-14-384": 0.831, "siglip2-so400m-14-378": 0.84,
         "siglip2-so400m-16-384": 0.841}


@evaluates("PRB-05", "gpu")
def prb05(ctx: Context) -> list[Record]:
    """Zero-shot top-1 with CLIP's 80-template ensemble, Clopper-Pearson CI, against the seed's table; a model
    whose weights are missing skips its own record, the others run."""
    def one(model: str) -> Record:
        expected = PRB05[model]
        val, _ = require(ctx, [model], ood_sets=(), text=True)

        def make():
            enc, kw = load_model(ctx, model)
            feats = image_features(enc, val, **kw)
            return feats, imagenet_accuracy(enc, feats, ("openai",), kw["device"], ctx.progress)["openai"], enc.backend

        feats, acc, backend = ctx.cached(f"zs-gpu/{model}", make)
        n, classes = int(feats.labels.size), int(len(set(feats.labels.tolist())))
        ci = S.binomial_ci(round(acc * n), n)
        verdict, note = judge("PRB-05", ci, expected, n=n)
        verdict = verdict if classes == 1000 else INCONCLUSIVE
        return Record("PRB-05", "gpu", model, verdict, acc, ci, expected=f"~{100 * expected:g}%",
                      reason=f"top-1 {100 * acc:.2f}% [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}] (Clopper-Pearson) with "
                             f"CLIP's 80-template ensemble on {n} images of {classes} classes"
                             + ("" if classes == 1000 else "; not the whole validation set, so the value is not "
                                "comparable") + f"; {note}" + (f"; unreadable files skipped: {len(feats.failed)} ("
                                                 + ", ".join(p.rsplit("/", 1)[-1] for p in feats.failed[:3]) + ")"
                                                 if feats.failed
                                                 else ""),
                      config=dict(model=model, backend=backend, templates="openai", n_images=n,
                                  **stand_in_config(ctx, model)),
                      details={"unreadable_files": feats.failed[:50]})

    return per_model("PRB-05", tuple(PRB05), one)
