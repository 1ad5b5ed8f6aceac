"""Zero-shot calibration with BayesVLM, end to end: Hessian pairs -> factors (cached) -> posteriors -> deterministic
vs Laplace predictions on a labelled set, with every metric's change and interval. Used by ``mcdo bayes`` and
by the BVL claims on the proxy and gpu tiers."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import metrics
from .data import Labelled, Pairs, projection_image_features, projection_text_features
from ..models.heads import ProjectionFeatures
from .model import BayesVLM, Prediction, factors, factors_cached


@dataclass
class Calibration:
    model: str
    bvlm: BayesVLM
    prediction: Prediction
    labels: np.ndarray
    comparison: dict
    config: dict = field(default_factory=dict)


def fit(enc, hessian: Pairs, class_batch: int | None = None, pseudo_count: float | None = None,
        prior_precision: str | float = "marglik", batch_size: int = 256, device: str | None = None,
        progress: bool = False, posterior: str = "bayesvlm", multiplier: float | None = None,
        given: tuple | None = None) -> BayesVLM:
    """BayesVLM for ``enc`` from the Hessian pairs; the factors come from the cache when these weights, pairs
    and settings were seen before. ``given``: ``(name, image factors, text factors)`` estimated elsewhere (the
    authors' published ones), used in place of ``hessian``."""
    device = device or enc.device
    def compute():
        img, txt = hessian_features(enc, hessian, batch_size, device, progress)
        return factors(enc, img, txt, class_batch)

    if given is not None:
        name, img, txt = given
    else:
        name = hessian.name
        img, txt = factors_cached(enc, hessian.key(), compute, class_batch)
    return BayesVLM.from_factors(enc, img, txt, prior_precision, pseudo_count,
                                 dict(hessian=name, class_batch=class_batch, n_pairs=img.n,
                                      pseudo_count=pseudo_count, multiplier=multiplier,
                                      prior_precision=prior_precision), posterior, multiplier)


HESSIAN_CHUNK = 4096  # pairs per cached piece of the Hessian feature pass


def hessian_features(enc, hessian: Pairs, batch_size: int = 256, device: str | None = None, progress: bool = False,
                     chunk: int = HESSIAN_CHUNK) -> tuple[ProjectionFeatures, ProjectionFeatures]:
    """The image and text projection features of the Hessian pairs, computed in pieces of ``chunk`` pairs that are
    cached as they finish (keyed by the weights and the pairs' content), so an interrupted ``mcdo bayes`` resumes
    from the last finished piece instead of starting over."""
    device = device or enc.device
    import hashlib

    import torch
    from tqdm.auto import tqdm

    from .. import env
    from ..data.folders import ImageList
    from ..io import keep_cache, read_cache, torch_save_atomic
    from ..zeroshot import model_cache_id

    key = hashlib.sha256(hessian.key().encode()).hexdigest()[:16]
    folder = env.cache_dir() / "bayes-features" / f"{model_cache_id(enc)}-{key}-{chunk}"
    n = len(hessian.captions)
    img, txt = [], []

    def load(path):
        d = torch.load(path, weights_only=True)
        return tuple(ProjectionFeatures(*d[m]) for m in ("image", "text"))

    for start in tqdm(range(0, n, chunk), desc="Hessian features", unit="piece", disable=not progress):
        path = folder / f"{start:08d}.pt"
        piece = read_cache(path, load, "cached Hessian features")
        if piece is None:
            stop = min(n, start + chunk)
            images = hessian.images
            sub = (ImageList(images.name, images.root, images.paths[start:stop], images.labels[start:stop],
                             images.layout) if isinstance(images, ImageList) else images[start:stop])
            piece = (projection_image_features(enc, sub, batch_size, device).to_cpu(),
                     projection_text_features(enc, hessian.captions[start:stop], batch_size, device).to_cpu())
            keep_cache(torch_save_atomic, path, {m: (f.activations, f.embeddings, f.residual)
                                                 for m, f in zip(("image", "text"), piece)})
        img.append(piece[0])
        txt.append(piece[1])

    def cat(parts):
        return ProjectionFeatures(*(torch.cat([getattr(p, k) for p in parts])
                                    for k in ("activations", "embeddings", "residual")))

    return cat(img), cat(txt)


def calibrate(enc, hessian: Pairs, evaluation: Labelled, prompt: str, class_batch: int | None = None,
              pseudo_count: float | None = None, prior_precision: str | float = "marglik",
              covariance: str | None = None, bins: tuple[int, ...] = metrics.BINS, n_boot: int = 1000, seed: int = 0,
              batch_size: int = 256, device: str | None = None, progress: bool = False, posterior: str = "bayesvlm",
              multiplier: float | None = None, given: tuple | None = None) -> Calibration:
    """Deterministic vs Laplace zero-shot classification of ``evaluation`` with one ``prompt`` per class, the
    posterior in the configuration ``posterior`` (the authors' 'bayesvlm' by default, or 'laplace')."""
    device = device or enc.device
    bvlm = fit(enc, hessian, class_batch, pseudo_count, prior_precision, batch_size, device, progress, posterior,
               multiplier, given)
    feats = projection_image_features(enc, evaluation.images, batch_size, device, progress=progress).to_cpu()
    classes = projection_text_features(enc, [prompt.format(c) for c in evaluation.classnames], batch_size, device).to_cpu()
    covariance = covariance or bvlm.image.config.covariance  # the posterior's own (bayesvlm: diagonal)
    pred = bvlm.predict(feats, classes, covariance)
    comp = metrics.compare(pred.deterministic.numpy(), pred.probs.numpy(), evaluation.labels, bins, n_boot, seed)
    config = dict(bvlm.config, model=enc.spec.name, backend=enc.backend, evaluation=evaluation.name,
                  n_eval=len(evaluation.labels), prompt=prompt, covariance=covariance, bins=list(bins),
                  likelihood=bvlm.likelihood, lambda_image=bvlm.image.prior_precision,
                  lambda_text=bvlm.text.prior_precision, logit_scale=bvlm.scale, logit_bias=bvlm.bias)
    return Calibration(enc.spec.name, bvlm, pred, np.asarray(evaluation.labels), comp, config)


def _inference(enc, evaluation: Labelled, bvlm: BayesVLM, prompt: str, batch_size: int, device: str):
    """Deterministic and uncertainty-aware zero-shot inference over the same images, each encoding them itself,
    the class prompts encoded once outside both: what BVL-04 compares."""
    import torch

    classes = projection_text_features(enc, [prompt.format(c) for c in evaluation.classnames], batch_size,
                                       device).to_cpu()
    cls_n = torch.nn.functional.normalize(classes.embeddings.double(), dim=-1)

    def deterministic():
        f = projection_image_features(enc, evaluation.images, batch_size, device).embeddings.double()
        return torch.softmax(bvlm.scale * torch.nn.functional.normalize(f, dim=-1) @ cls_n.T, dim=-1)

    def laplace():
        feats = projection_image_features(enc, evaluation.images, batch_size, device).to_cpu()
        return bvlm.predict(feats, classes).probs

    return {"deterministic": deterministic, "laplace": laplace}


def overhead_flops(enc, evaluation: Labelled, bvlm: BayesVLM, prompt: str, batch_size: int = 256,
                   device: str | None = None) -> dict[str, int]:
    """Floating-point operations (matrix products and attention, ``mcdo.flops.count_flops``) of deterministic and
    of uncertainty-aware zero-shot inference over the same images, encoding included: a measure of the extra work
    that does not depend on the machine or its load."""
    device = device or enc.device
    from ..flops import count_flops

    return {name: count_flops(fn)[0] for name, fn in _inference(enc, evaluation, bvlm, prompt, batch_size,
                                                                 device).items()}


def overhead(enc, evaluation: Labelled, bvlm: BayesVLM, prompt: str, repeats: int = 7, batch_size: int = 256,
             device: str | None = None) -> dict:
    """Wall time of deterministic and of uncertainty-aware zero-shot inference over the same images (encoding
    included, class prompts encoded once outside both), alternated ``repeats`` times after a warm-up (the
    benchmark's figure; the claim counts operations)."""
    device = device or enc.device
    import torch

    fns = _inference(enc, evaluation, bvlm, prompt, batch_size, device)

    def sync():
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()

    times = {"deterministic": [], "laplace": []}
    fns["deterministic"](), fns["laplace"]()  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {k: np.asarray(v) for k, v in times.items()}
