"""MC-dropout claims on the gpu tier (MCD-03..13, 18): the recorded experiment, rerun in its own configuration.

The reliability run (MCD-03..07, 11..13): open_clip CLIP ViT-B-32 (openai) and SigLIP2 ViT-B-16 (webli), p = 0.01
on every nn.Linear of the vision tower (``as_published``), K = 10 trials of T = 64 passes, trace_pre per image, on
the recorded run's 500 images (read from its trial files, found under ``MCDO_DATA_ROOT``'s ImageNet val in either
layout) when ``MCDO_RECORDED_DIR`` is set, else 5 images from each of 100 synsets drawn with the run's seed. One
trial on copies blurred with PIL's Gaussian blur of radius 5 and 15 px (the recorded ablation's blur_r5 /
blur_r15); the first trial keeps its samples (covariance rank, MCD-13). None of this needs a tokenizer.

The correlation claims in the configuration the recorded investigation (``prelim_investigation.json``) used:
MCD-08 on 2000 images (2 per synset), MCD-09 and MCD-10 on 1000 (1 per synset), MCD-18 on the 500 reliability
images; one trial of T = 64; zero-shot with the single prompt "a photo of a {}" (its CLIP accuracy, 0.584 on
500 images, is a single-prompt figure). The harness's own configuration (the 500 reliability images, CLIP's 80
templates) is computed beside it and stated in the record's details. The recorded draws of 1000 and 2000
images were not published, so the harness draws its own with the run's seed.

Every prerequisite is checked before any MC pass, MC work is cached on disk (``mc_sample``'s cache) and the
zero-shot text side runs last, so a missing tokenizer loses nothing. Stand-ins with random weights run the same
code in the tests.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import ImageFilter
from scipy.special import softmax

from ... import env, scores
from ... import stats as S
from ...data import recorded as R
from ...data.folders import ImageFiles, ImageList, imagenet_val
from ...dropout import firing_sites
from ...errors import MissingData, MissingResource
from ...model_specs import ALIASES, loss_family
from ...reliability import degraded_traces, draw_images, run_trials
from ...sampling import mc_sample
from ...zeroshot import classifier, model_cache_id, image_transform, imagenet_classnames
from ..builders import (FIGURE_CLAIMS, blur_record, erank_record, error_auroc_record, figure_record, gate_record, rho,
                        rho_record)
from ..engine import Context, evaluates
from ..prerequisites import SMOKE_PASSES, SMOKE_TRIALS, load_model, require, stand_in_config
from ..proxy_measure import ProxyMeasure
from ..records import Record
from ..sources import SOURCE

TIER = "gpu"
_RUN = SOURCE["MCD-03"]
GPU = dict(trials=_RUN["trials"], T=_RUN["T"], p=_RUN["p"], mode=_RUN["mode"], dtype="float32",
           **SOURCE["MCD-reliability-run"], batch_size=8, max_rows=512)
MODELS = {key: ALIASES[key] for key in ("clip_b32", "siglip2_b16")}  # the recorded run's folder names
FAMILY = {key: loss_family(name) for key, name in MODELS.items()}  # the loss each was trained with (MCD-07's families)
USER = "user"  # the key of a user's model (Context.user_model), run in the seed's configuration


def model_name(ctx: Context, key: str) -> str:
    """The model a key stands for: the seed's (``MODELS``), or the user's for ``USER``."""
    return ctx.user_model if key == USER else MODELS[key]


def _memo(ctx: Context, key: str) -> str:
    """The run-memo name of a key's model: the key for the seed's, ``user/<spec>`` for a user's model."""
    return f"user/{ctx.user_model}" if key == USER else key


# claim -> (model, images, prompt set) as the recorded investigation ran it
SEED_RUNS = {"MCD-08": ("clip_b32", 2, "photo"), "MCD-09": ("siglip2_b16", 1, "photo"),
             "MCD-10": ("siglip2_b16", 1, None), "MCD-18": ("clip_b32", "reliability", "photo")}


RECORDED_IMAGES = "the recorded run's ImageNet val images"


def recorded_images(val: ImageList) -> tuple[list[Path], np.ndarray, str] | None:
    """The recorded run's images in ``val`` with their labels, None without a recorded run (MCDO_RECORDED_DIR);
    ``MissingData`` naming how many are not there. A validation image is identified by its file name
    (ILSVRC2012_val_%08d.JPEG), the same in the synset and the flat + devkit layouts."""
    try:
        recorded = R.nested_trials("clip_b32", 64).paths
    except MissingResource:
        return None
    local = {p.name: (p, y) for p, y in zip(val.paths, val.labels)}
    keys = [Path(str(q)).name for q in recorded]
    missing = [k for k in keys if k not in local]
    if missing:
        raise MissingData(f"{len(missing)} of the recorded run's {len(keys)} ImageNet val images under {val.root} "
                          f"(e.g. {missing[0]})", "use the full ImageNet-1k validation set, or unset "
                          "MCDO_RECORDED_DIR to draw images from what is there")
    chosen = [local[k] for k in keys]
    return [p for p, _ in chosen], np.array([y for _, y in chosen]), f"the recorded run's {len(keys)} images"


def _recorded_images_check(root: Path) -> str:
    """The prerequisite check of the recorded run's images (``recorded_images``), before any model is loaded;
    a missing ImageNet val is named by its own check."""
    try:
        val = imagenet_val(root=root)
    except MissingResource:
        return "not checked: ImageNet-1k val is missing"
    chosen = recorded_images(val)
    return ("not checked: no recorded run (MCDO_RECORDED_DIR): the claims draw their own images" if chosen is None
            else f"all {len(chosen[0])} under {val.root}")


def _require(ctx: Context, models: list[str], text: bool = False):
    """``require`` of ImageNet val (no OOD set) for ``models``, with the recorded run's images checked too."""
    extra = {} if ctx.limit else {RECORDED_IMAGES: _recorded_images_check}  # a smoke run draws from what it keeps
    return require(ctx, models, ood_sets=(), text=text, extra=extra)


def select_images(ctx: Context, val: ImageList) -> tuple[list[Path], np.ndarray, str]:
    """The recorded run's images when its trial files are available, else a seeded synset-balanced draw."""
    chosen = None if ctx.limit else recorded_images(val)
    if chosen is not None:
        return chosen
    return draw_images(val.paths, val.labels, GPU["per_synset"], GPU["n_synsets"], ctx.seed)


def _load(images: ImageList, transform) -> tuple[torch.Tensor, list[str]]:
    """All readable images as one tensor, and the paths of the unreadable ones."""
    data = ImageFiles(images, transform)
    loaded = [data[i] for i in range(len(data))]
    return (torch.stack([x for x, _ in loaded if x is not None]),
            [str(images.paths[i]) for x, i in loaded if x is None])


def _model(ctx: Context, key: str):
    """The model (or stand-in) of ``key``, once per run, with the dropout sites that fire on its backend."""
    def make():
        enc, kw = load_model(ctx, model_name(ctx, key))
        size = enc.spec.image_size
        example = torch.zeros(1, 3, size, size, device=kw["device"])
        sites = firing_sites(enc.vision_tower, GPU["p"], GPU["mode"], example)
        return enc, kw, dict(backend=enc.backend, dropout_sites=sites)

    return ctx.cached(f"mcd-gpu-model/{_memo(ctx, key)}", make)


def _sample_kw(ctx: Context, enc) -> dict:
    g = GPU
    return dict(T=SMOKE_PASSES if ctx.limit else g["T"], p=g["p"], mode=g["mode"], batch_size=g["batch_size"], max_rows=g["max_rows"],
                dtype=g["dtype"], progress=ctx.progress, model_name=model_cache_id(enc),
                cache_dir=env.cache_dir() / "samples")


def reliability(ctx: Context, key: str) -> dict:
    """The reliability run of one model, once per run: trace_pre [K, N], the first trial's samples' effective
    rank and unit features, blurred traces. No text: MCD-03..07 and 11..13 never depend on a tokenizer."""
    name = model_name(ctx, key)

    def make():
        val, _ = _require(ctx, [name])
        enc, _, backend = _model(ctx, key)
        paths, labels, source = select_images(ctx, val)
        subset = ImageList(val.name, val.root, tuple(paths), labels, val.layout)
        transform = image_transform(enc)
        x, failed = _load(subset, transform)
        kw = _sample_kw(ctx, enc)
        n_trials = SMOKE_TRIALS if ctx.limit else GPU["trials"]
        run = run_trials(enc.vision_tower, x, range(n_trials), keep_first=True, **kw)
        trials = run.traces
        degraded = {level: _load(subset, lambda im, r=radius: transform(im.filter(ImageFilter.GaussianBlur(r))))[0]
                    for level, radius in GPU["blur_radius"].items()}
        blurred = degraded_traces(enc.vision_tower, degraded, seed=0, **kw)
        bad = set(failed)
        config = dict(model=name, **{k: v for k, v in GPU.items() if k not in ("n_synsets", "per_synset", "trials", "T")},
                      trials=n_trials, T=SMOKE_PASSES if ctx.limit else GPU["T"],
                      images=source, n_images=int(x.shape[0]), unreadable=len(failed), unreadable_files=failed[:20],
                      score="trace_pre", **backend, **stand_in_config(ctx, name))
        return dict(trials=trials, x=x, labels=np.array([y for p, y in zip(paths, labels) if str(p) not in bad]),
                    erank=scores.effective_rank(run.first), blurred=blurred, config=config, failed=failed)

    return ctx.cached(f"mcd-gpu/{_memo(ctx, key)}", make)


def _features(enc, x: torch.Tensor, device: str) -> np.ndarray:
    """Unit image features (deterministic, no dropout), float64."""
    with torch.no_grad():
        f = torch.cat([enc.encode_image(b.to(device)).float().cpu() for b in x.split(64)]).double().numpy()
    return f / np.linalg.norm(f, axis=1, keepdims=True)


def _zero_shot(ctx: Context, key: str, f: np.ndarray, template_set: str) -> np.ndarray:
    """ImageNet class probabilities: softmax of the model's logits over the heads of ``template_set``."""
    enc, kw, _ = _model(ctx, key)
    head = classifier(enc, imagenet_classnames(), template_set, kw["device"])
    return softmax(head.logits(f), axis=1)


def _entropy(probs: np.ndarray) -> np.ndarray:
    return -np.sum(probs * np.log(np.clip(probs, 1e-300, None)), axis=1)


def seed_run(ctx: Context, claim_id: str) -> ProxyMeasure:
    """One claim's figures in the recorded investigation's configuration (``SEED_RUNS``): one MC trial of T = 64,
    unit features and, where the claim needs text, zero-shot probabilities with its prompt."""
    key, images, prompts = SEED_RUNS[claim_id]

    def make():
        rel = reliability(ctx, key) if images == "reliability" else None
        val, _ = _require(ctx, [MODELS[key]])
        enc, kw, backend = _model(ctx, key)
        if rel is not None:
            x, labels, u, source, failed = rel["x"], rel["labels"], rel["trials"][0], rel["config"]["images"], rel["failed"]
        else:
            paths, labels, source = draw_images(val.paths, val.labels, images, None, ctx.seed)
            subset = ImageList(val.name, val.root, tuple(paths), labels, val.layout)
            x, failed = _load(subset, image_transform(enc))
            bad = set(failed)
            labels = np.array([y for p, y in zip(paths, labels) if str(p) not in bad])
            u = scores.trace_pre(mc_sample(enc.vision_tower, x, seed=0, **_sample_kw(ctx, enc)))
        f = _features(enc, x, kw["device"])
        centroid = f.mean(0) / np.linalg.norm(f.mean(0))
        T = SMOKE_PASSES if ctx.limit else GPU["T"]
        config = dict(model=MODELS[key], T=T, p=GPU["p"], mode=GPU["mode"], trials=1, images=source,
                      n_images=int(x.shape[0]), unreadable=len(failed), score="trace_pre", trial="the first",
                      configuration="the recorded investigation's (prelim_investigation.json)",
                      prompt=None if prompts is None else "a photo of a {}", **backend,
                      **stand_in_config(ctx, MODELS[key]))
        entropy = error = np.full(u.shape, np.nan)
        accuracy = float("nan")
        if prompts is not None:  # the text side last: a tokenizer failure here loses no MC work
            probs = _zero_shot(ctx, key, f, prompts)
            entropy, pred = _entropy(probs), probs.argmax(1)
            error, accuracy = (pred != labels).astype(int), float((pred == labels).mean())
            config["zero_shot_accuracy"] = accuracy
        return ProxyMeasure(enc.spec.loss, ctx.seed, accuracy, {T: u[None]}, u, entropy, error,
                            1.0 - f @ centroid, np.array([]), {}, config)

    return ctx.cached(f"mcd-gpu-seed/{claim_id}", make)


def openai_template_count() -> int:
    """How many prompt templates the harness configuration's 'openai' set holds (80 in open_clip's list)."""
    from ...zeroshot import templates

    return len(templates("openai"))


def harness_run(ctx: Context, key: str) -> dict:
    """The harness's own configuration: the reliability images, first trial, CLIP's 80-template heads."""
    def make():
        rel = reliability(ctx, key)
        enc, kw, _ = _model(ctx, key)
        f = _features(enc, rel["x"], kw["device"])
        probs = _zero_shot(ctx, key, f, "openai")
        centroid = f.mean(0) / np.linalg.norm(f.mean(0))
        pred = probs.argmax(1)
        return dict(uncertainty=rel["trials"][0], entropy=_entropy(probs), centroid_distance=1.0 - f @ centroid,
                    error=(pred != rel["labels"]).astype(int), accuracy=float((pred == rel["labels"]).mean()))

    return ctx.cached(f"mcd-gpu-harness/{key}", make)


def _figure(ctx: Context, claim_id: str) -> list[Record]:
    """One reliability figure of one model's trace_pre over trials (``builders.FIGURE_CLAIMS``)."""
    key, figure, name, fn = FIGURE_CLAIMS[claim_id]
    m = reliability(ctx, key)
    return [figure_record(claim_id, TIER, MODELS[key], m["trials"], figure, name, fn, ctx, m["config"])]


@evaluates("MCD-03", TIER)
def mcd03(ctx: Context) -> list[Record]:
    """MCD-03 on the gpu tier: the SNR of CLIP B-32's trace_pre over trials."""
    return _figure(ctx, "MCD-03")


@evaluates("MCD-04", TIER)
def mcd04(ctx: Context) -> list[Record]:
    """MCD-04 on the gpu tier: the median pairwise Spearman of CLIP B-32's trace_pre over trials."""
    return _figure(ctx, "MCD-04")


@evaluates("MCD-05", TIER)
def mcd05(ctx: Context) -> list[Record]:
    """MCD-05 on the gpu tier: the SNR of SigLIP2 B-16's trace_pre over trials."""
    return _figure(ctx, "MCD-05")


@evaluates("MCD-06", TIER)
def mcd06(ctx: Context) -> list[Record]:
    """MCD-06 on the gpu tier: the median pairwise Spearman of SigLIP2 B-16's trace_pre over trials."""
    return _figure(ctx, "MCD-06")


@evaluates("MCD-07", TIER)
def mcd07(ctx: Context) -> list[Record]:
    """The reliability gate: CLIP B-32 fails, SigLIP2 B-16 passes; a user's model (``ctx.user_model``) is run alone
    in the same configuration and judged by its loss: a sigmoid-loss model should pass, a softmax one fail, any
    other gets its figures and no verdict."""
    if ctx.user_model:
        _require(ctx, [ctx.user_model])
        m = reliability(ctx, USER)
        spec = _model(ctx, USER)[0].spec
        config = dict(m["config"], user_model=True, inferred=dict(family=spec.family, loss=spec.loss,
                                                                  image_size=spec.image_size,
                                                                  embed_dim=spec.embed_dim))
        loss = spec.loss if spec.loss in ("softmax", "sigmoid") else None
        return [gate_record("MCD-07", TIER, ctx.user_model, m["trials"], loss, ctx, config)]
    _require(ctx, list(MODELS.values()))
    out = []
    for key in MODELS:
        m = reliability(ctx, key)
        out.append(gate_record("MCD-07", TIER, MODELS[key], m["trials"], FAMILY[key], ctx, m["config"]))
    return out


def _rho_claim(ctx: Context, claim_id: str, what: str, harness_key: str) -> list[Record]:
    key = SEED_RUNS[claim_id][0]
    _require(ctx, [MODELS[key]], text=SEED_RUNS[claim_id][2] is not None)
    m = seed_run(ctx, claim_id)
    other = m.entropy if what == "zero-shot entropy" else m.centroid_distance
    rec = rho_record(ctx, claim_id, m, other, what, TIER, MODELS[key])
    try:
        h = harness_run(ctx, key)
    except MissingResource as e:
        rec.details["harness_configuration"] = f"not computed: {e}"
        return [rec]
    rho_h = rho(h["uncertainty"], h[harness_key])
    ci_h = S.bootstrap_ci(rho, h["uncertainty"], h[harness_key], n_boot=ctx.n_boot, seed=ctx.seed)
    rec.details["harness_configuration"] = dict(
        images=reliability(ctx, key)["config"]["images"], templates=f"openai ({openai_template_count()})", rho=rho_h, ci=ci_h)
    rec.reason += (f"; harness configuration ({rec.details['harness_configuration']['images']}, CLIP's {openai_template_count()} "
                   "templates): "
                   f"{rho_h:.3f} [{ci_h[0]:.3f}, {ci_h[1]:.3f}]")
    return [rec]


@evaluates("MCD-08", TIER)
def mcd08(ctx: Context) -> list[Record]:
    """CLIP B-32: Spearman(trace_pre, zero-shot entropy) against the registry's 0.25 (N = 2000, one prompt, as recorded)."""
    return _rho_claim(ctx, "MCD-08", "zero-shot entropy", "entropy")


@evaluates("MCD-09", TIER)
def mcd09(ctx: Context) -> list[Record]:
    """SigLIP2 B-16: Spearman(trace_pre, zero-shot entropy) ~ 0 (N = 1000, one prompt, as recorded)."""
    return _rho_claim(ctx, "MCD-09", "zero-shot entropy", "entropy")


@evaluates("MCD-10", TIER)
def mcd10(ctx: Context) -> list[Record]:
    """SigLIP2 B-16: Spearman(trace_pre, 1 - cos(f, mean f)) against 0.24 (N = 1000, as recorded)."""
    return _rho_claim(ctx, "MCD-10", "centroid distance", "centroid_distance")


def _blurred(ctx: Context, key: str) -> ProxyMeasure:
    m = reliability(ctx, key)
    u = m["trials"][0]
    nan = np.full(u.shape, np.nan)
    return ProxyMeasure("", ctx.seed, float("nan"), {}, u, nan, nan, nan, m["erank"], m["blurred"], m["config"])


@evaluates("MCD-11", TIER)
def mcd11(ctx: Context) -> list[Record]:
    """CLIP B-32, blur radius 5: fraction of images whose uncertainty rose, against 80%."""
    return [blur_record("MCD-11", _blurred(ctx, "clip_b32"), "light", "increased", TIER, MODELS["clip_b32"],
                        how="PIL Gaussian blur radius 5 px before preprocessing")]


@evaluates("MCD-12", TIER)
def mcd12(ctx: Context) -> list[Record]:
    """SigLIP2 B-16, blur radius 15: fraction of images whose uncertainty fell, against 75.6%."""
    return [blur_record("MCD-12", _blurred(ctx, "siglip2_b16"), "heavy", "decreased", TIER, MODELS["siglip2_b16"],
                        how="PIL Gaussian blur radius 15 px before preprocessing")]


@evaluates("MCD-13", TIER)
def mcd13(ctx: Context) -> list[Record]:
    """Effective rank of the per-image dropout covariance: CLIP B-32 above SigLIP2 B-16 (same images)."""
    _require(ctx, list(MODELS.values()))
    return [erank_record(ctx, _blurred(ctx, "clip_b32"), _blurred(ctx, "siglip2_b16"), TIER,
                         f"{MODELS['clip_b32']} vs {MODELS['siglip2_b16']}", "CLIP", "SigLIP2")]


@evaluates("MCD-18", TIER)
def mcd18(ctx: Context) -> list[Record]:
    """CLIP B-32: AUROC of trace_pre for its own zero-shot errors (one prompt, the 500 images) above 0.5."""
    _require(ctx, [MODELS["clip_b32"]], text=True)
    rec = error_auroc_record(ctx, seed_run(ctx, "MCD-18"), TIER, MODELS["clip_b32"])
    try:
        h = harness_run(ctx, "clip_b32")
    except MissingResource as e:
        rec.details["harness_configuration"] = f"not computed: {e}"
        return [rec]
    if 0 < h["error"].sum() < h["error"].size:
        auc = S.auroc(h["uncertainty"], h["error"])
        rec.details["harness_configuration"] = dict(templates=f"openai ({openai_template_count()})", auroc=auc,
                                                    accuracy=h["accuracy"])
        rec.reason += (f"; harness configuration (CLIP's {openai_template_count()} templates, accuracy {h['accuracy']:.3f}): "
                       f"AUROC {auc:.3f}")
    return [rec]


@evaluates("MCD-16", TIER)
def mcd16(ctx: Context) -> list[Record]:
    """SigLIP2 B-16's published weights through open_clip and transformers agree (``mcd/backends.py``)."""
    from .backends import backend_record

    return [backend_record(ctx)]
