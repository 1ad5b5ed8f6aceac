"""MC-dropout claims on the gpu tier (MCD-03..13, 18): the recorded experiment, rerun.

Same design as the recorded run: open_clip CLIP ViT-B-32 (openai) and SigLIP2 ViT-B-16 (webli),
p = 0.01 on every nn.Linear of the vision tower (``as_published``), K = 10 trials of T = 64 passes,
trace_pre per image. The images are the recorded run's 500 (read from its trial files, found under
``MCDO_DATA_ROOT``'s ImageNet val) when ``MCDO_RECORDED_DIR`` is set, else 5 images from each of 100
synsets drawn with the run's seed. The first trial keeps its samples (covariance rank, MCD-13) and is the
per-image uncertainty of MCD-08..12 and 18, beside zero-shot entropy and errors (CLIP's 80 templates),
the distance to the feature centroid, and one trial on copies blurred with PIL's Gaussian blur of
radius 5 and 15 px (the recorded ablation's blur_r5 / blur_r15). Stand-ins with random weights run the
same code in the tests.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import ImageFilter
from scipy.special import softmax

from .. import env, scores
from .. import stats as S
from ..data import recorded as R
from ..data.folders import ImageFiles, ImageList
from ..errors import MissingData, MissingResource
from ..sampling import mc_sample
from ..zeroshot import classifier, fingerprint, image_transform, imagenet_classnames
from .engine import Context, evaluates
from .ood_gpu_claims import load_model, require, stand_in_config
from .proxy_claims import _blur_record, _rho_record, erank_record, error_auroc_record
from .proxy_measure import ProxyMeasure
from .recorded_claims import _spearman_median, figure_record, gate_record
from .records import Record

TIER = "gpu"
GPU = dict(trials=10, T=64, p=0.01, mode="as_published", dtype="float32", n_synsets=100, per_synset=5,
           batch_size=8, max_rows=512, blur_radius={"light": 5, "heavy": 15})
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


def _load(images: ImageList, transform) -> tuple[torch.Tensor, list[str]]:
    """All readable images as one tensor, and the paths of the unreadable ones."""
    data = ImageFiles(images, transform)
    loaded = [data[i] for i in range(len(data))]
    return (torch.stack([x for x, _ in loaded if x is not None]),
            [str(images.paths[i]) for x, i in loaded if x is None])


def _zero_shot(enc, x: torch.Tensor, device: str) -> tuple[np.ndarray, np.ndarray]:
    """ImageNet class probabilities (softmax of the model's logits, 80-template heads) and unit features."""
    head = classifier(enc, imagenet_classnames(), "openai", device)
    with torch.no_grad():
        f = torch.cat([enc.encode_image(b.to(device)).float().cpu() for b in x.split(64)]).double().numpy()
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    return softmax(head.logits(f), axis=1), f


def measure(ctx: Context, key: str) -> dict:
    """Everything the gpu MCD claims need from one model, once per run: trace_pre [K, N], the first trial's
    samples' effective rank, blurred traces, zero-shot entropy and errors, centroid distance (MC batches
    are cached on disk, so an interrupted run resumes)."""
    def make():
        model = MODELS[key]
        val, _ = require(ctx, [model], ood_sets=())
        enc, kw_features = load_model(ctx, model)
        device = kw_features["device"]
        paths, labels, source = select_images(ctx, val)
        subset = ImageList(val.name, val.root, tuple(paths), labels, val.layout)
        transform = image_transform(enc)
        x, failed = _load(subset, transform)
        g = GPU
        kw = dict(T=g["T"], p=g["p"], mode=g["mode"], batch_size=g["batch_size"], max_rows=g["max_rows"],
                  dtype=g["dtype"], progress=ctx.progress, model_name=fingerprint(enc),
                  cache_dir=env.cache_dir() / "samples")
        runs = [mc_sample(enc.vision_tower, x, seed=k, keep_samples=k == 0, **kw) for k in range(g["trials"])]
        trials = np.stack([scores.trace_pre(r) for r in runs])
        blurred = {}
        for level, radius in g["blur_radius"].items():
            xb, _ = _load(subset, lambda im, r=radius: transform(im.filter(ImageFilter.GaussianBlur(r))))
            blurred[level] = scores.trace_pre(mc_sample(enc.vision_tower, xb, seed=0, **kw))
        probs, feats = _zero_shot(enc, x, device)
        unreadable = set(failed)
        labels = np.array([y for (p, y) in zip(paths, labels) if str(p) not in unreadable])
        pred = probs.argmax(1)
        centroid = feats.mean(0) / np.linalg.norm(feats.mean(0))
        config = dict(model=model, **{k: v for k, v in g.items() if k not in ("n_synsets", "per_synset")},
                      images=source, n_images=int(x.shape[0]), unreadable=len(failed), score="trace_pre",
                      zero_shot_accuracy=float((pred == labels).mean()), templates="openai",
                      **stand_in_config(ctx, model))
        m = ProxyMeasure(enc.spec.loss, ctx.seed, float((pred == labels).mean()), {g["T"]: trials}, trials[0],
                         -np.sum(probs * np.log(np.clip(probs, 1e-300, None)), axis=1), (pred != labels).astype(int),
                         1.0 - feats @ centroid, scores.effective_rank(runs[0]), blurred, config)
        return dict(trials=trials, config=config, failed=failed, measure=m)

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



def _m(ctx: Context, key: str) -> ProxyMeasure:
    return measure(ctx, key)["measure"]


@evaluates("MCD-08", TIER)
def mcd08(ctx: Context) -> list[Record]:
    """CLIP B-32: Spearman(trace_pre, zero-shot entropy) against 0.25 (the seed's N=2000; here the reliability images)."""
    return [_rho_record(ctx, "MCD-08", _m(ctx, "clip_b32"), _m(ctx, "clip_b32").entropy, "zero-shot entropy", 0.25,
                        TIER, "clip_b32")]


@evaluates("MCD-09", TIER)
def mcd09(ctx: Context) -> list[Record]:
    """SigLIP2 B-16: Spearman(trace_pre, zero-shot entropy) ~ 0."""
    return [_rho_record(ctx, "MCD-09", _m(ctx, "siglip2_b16"), _m(ctx, "siglip2_b16").entropy, "zero-shot entropy",
                        "zero", TIER, "siglip2_b16")]


@evaluates("MCD-10", TIER)
def mcd10(ctx: Context) -> list[Record]:
    """SigLIP2 B-16: Spearman(trace_pre, 1 - cos(f, mean f)) against 0.24."""
    m = _m(ctx, "siglip2_b16")
    return [_rho_record(ctx, "MCD-10", m, m.centroid_distance, "centroid distance", 0.24, TIER, "siglip2_b16")]


@evaluates("MCD-11", TIER)
def mcd11(ctx: Context) -> list[Record]:
    """CLIP B-32, blur radius 5: fraction of images whose uncertainty rose, against 80%."""
    return [_blur_record("MCD-11", _m(ctx, "clip_b32"), "light", "increased", TIER, "clip_b32", 0.80, 0.005,
                         how="PIL Gaussian blur radius 5 px before preprocessing")]


@evaluates("MCD-12", TIER)
def mcd12(ctx: Context) -> list[Record]:
    """SigLIP2 B-16, blur radius 15: fraction of images whose uncertainty fell, against 75.6%."""
    return [_blur_record("MCD-12", _m(ctx, "siglip2_b16"), "heavy", "decreased", TIER, "siglip2_b16", 0.756, 0.0005,
                         how="PIL Gaussian blur radius 15 px before preprocessing")]


@evaluates("MCD-13", TIER)
def mcd13(ctx: Context) -> list[Record]:
    """Effective rank of the per-image dropout covariance: CLIP B-32 above SigLIP2 B-16 (same images)."""
    require(ctx, list(MODELS.values()), ood_sets=())
    return [erank_record(ctx, _m(ctx, "clip_b32"), _m(ctx, "siglip2_b16"), TIER, "clip_b32 vs siglip2_b16", "CLIP",
                         "SigLIP2")]


@evaluates("MCD-18", TIER)
def mcd18(ctx: Context) -> list[Record]:
    """CLIP B-32: AUROC of trace_pre for its own zero-shot errors above 0.5."""
    return [error_auroc_record(ctx, _m(ctx, "clip_b32"), TIER, "clip_b32")]
