"""The gpu-tier zero-shot (PRB-05) and MC-dropout (MCD-03..13, 18) claims end to end on image folders made
here (``mcdo.testing``), with random-weight stand-ins: the plumbing, and every number against a direct
computation written out below (one image at a time, scipy / sklearn, naive formulas). The seeds' own
numbers need real weights and data (gpu tier).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from mcdo.data.folders import imagenet_val
from mcdo.errors import MissingData
from mcdo.testing import random_encoder
from mcdo.verify import engine
from mcdo.verify.records import INCONCLUSIVE, SKIPPED
from mcdo.zeroshot import imagenet_classnames

pytestmark = [pytest.mark.arch, pytest.mark.usefixtures("isolated_cache")]  # data_root: tests/conftest.py


@pytest.fixture(scope="module")
def clip_openai_text():
    """tiny-clip (seed 0) class embeddings for CLIP's 80 templates, one class at a time."""
    from open_clip import zero_shot_metadata as z

    enc, text = random_encoder("tiny-clip"), []
    with torch.no_grad():
        for c in imagenet_classnames():
            t = enc.encode_text(enc.tokenizer([tpl(c) for tpl in z.OPENAI_IMAGENET_TEMPLATES])).double()
            t = (t / t.norm(dim=1, keepdim=True)).mean(0)
            text.append((t / t.norm()).numpy())
    return np.array(text)


def test_prb05_zero_shot_top1_with_stand_ins(data_root, monkeypatch, clip_openai_text):
    """PRB-05's accuracy against a direct 80-template ensemble: per prompt normalise, mean, normalise."""
    monkeypatch.setenv("MCDO_DATA_ROOT", str(data_root))
    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    # one stand-in for all four (same seed, same weights): the class texts are encoded once, from the cache after
    stand_ins = dict.fromkeys(("clip-vit-l-14-336", "siglip-so400m-14-384", "siglip2-so400m-14-378",
                               "siglip2-so400m-16-384"), "tiny-clip")
    ctx = engine.Context(progress=False, pretrained=False, require_gpu=False, batch_size=4, stand_ins=stand_ins)
    recs = {r.model: r for r in engine.evaluate("PRB-05", "gpu", ctx)}
    assert set(recs) == set(stand_ins)
    enc, ids, text = random_encoder("tiny-clip"), imagenet_val(data_root), clip_openai_text
    with torch.no_grad():
        hits = []
        for p, y in zip(ids.paths, ids.labels):
            if p.name == "broken.JPEG":
                continue
            with Image.open(p) as im:
                f = enc.encode_image(enc.preprocess(im.convert("RGB"))[None])[0].double().numpy()
            hits.append(int(np.argmax(text @ f)) == y)
    for r in recs.values():
        assert r.measured == pytest.approx(np.mean(hits)) and r.config["stand_in"] == "tiny-clip"
        assert r.verdict == INCONCLUSIVE and "12 images of 4 classes" in r.reason
        assert "unreadable files skipped: ImageNet-1k val 1 (broken.JPEG)" in r.reason


# ---------------------------------------------------------------- MC-dropout reliability (MCD-03..07)


def test_mcd_gpu_evaluators_with_stand_ins(data_root, monkeypatch, clip_openai_text):
    from PIL import ImageFilter
    from scipy.special import softmax
    from scipy.stats import spearmanr

    from mcdo import scores
    from mcdo.sampling import mc_sample
    from mcdo.verify.mcd.gpu import GPU, MODELS

    monkeypatch.setenv("MCDO_DATA_ROOT", str(data_root))
    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    monkeypatch.delenv("MCDO_RECORDED_DIR", raising=False)  # no recorded image list: a seeded draw from what is there
    ctx = engine.Context(n_boot=50, progress=False, pretrained=False, require_gpu=False,
                         stand_ins={"clip-vit-b-32": "tiny-clip", "siglip2-vit-b-16": "tiny-siglip"})
    recs = {c: engine.evaluate(c, "gpu", ctx) for c in ("MCD-03", "MCD-04", "MCD-05", "MCD-06", "MCD-07")}
    for key, snr_id, rho_id in (("clip_b32", "MCD-03", "MCD-04"), ("siglip2_b16", "MCD-05", "MCD-06")):
        m = ctx.memo[f"mcd-gpu/{key}"]
        x = m["trials"]
        assert x.shape == (10, 12) and m["config"]["unreadable"] == 1 and np.all(x > 0)
        assert m["config"]["images"] == "13 images from 4 synsets (up to 5 each, drawn with seed 0)"
        assert len({tuple(row) for row in x}) == 10  # independent trials
        snr = x.mean(0).var(ddof=1) / x.var(0, ddof=1).mean()  # SNR as the recorded repository defines it
        rhos = [spearmanr(x[i], x[j]).statistic for i in range(10) for j in range(i + 1, 10)]
        assert recs[snr_id][0].measured == pytest.approx(snr)
        assert recs[rho_id][0].measured == pytest.approx(np.median(rhos))
        assert recs[snr_id][0].model == MODELS[key] and recs[snr_id][0].config["T"] == 64  # the registry's name
    gate = {key: r for key in MODELS for r in recs["MCD-07"] if r.model == MODELS[key]}
    assert set(gate) == {"clip_b32", "siglip2_b16"} and all(r.verdict != SKIPPED for r in gate.values())

    # MCD-11..13 from the same pass, MCD-08 and MCD-18 in the recorded investigation's configuration, against
    # direct computations on the CLIP stand-in
    more = {c: engine.evaluate(c, "gpu", ctx) for c in ("MCD-08", "MCD-09", "MCD-10", "MCD-11", "MCD-12", "MCD-13",
                                                         "MCD-18")}
    assert all(r.verdict != SKIPPED for rs in more.values() for r in rs)
    # the gpu tier runs the source's configuration: its only departures are the stand-in model and the images
    # present, both declared (issue 19)
    for r in [r for rs in (*recs.values(), *more.values()) for r in rs]:
        assert all(d["reason"] != "UNDECLARED" for d in r.departures.values()), (r.id, r.departures)
        assert set(r.departures) <= {"model", "n_images", "trials", "data", "dropout_sites"}, (r.id, r.departures)
    for r in recs["MCD-03"]:
        assert r.config["backend"] == "open_clip" and r.config["dropout_sites"]["firing"] > 0
    enc, x = random_encoder("tiny-clip"), ctx.memo["mcd-gpu/clip_b32"]["trials"]
    ids = imagenet_val(data_root)
    good = [(p, y) for p, y in zip(ids.paths, ids.labels) if p.name != "broken.JPEG"]
    photo = _single_prompt_text(enc)

    def direct(paths):
        """Unit features and PIL-blurred inputs, one image at a time."""
        feats, blurred = [], []
        with torch.no_grad():
            for p in paths:
                with Image.open(p) as im:
                    im = im.convert("RGB")
                    feats.append(enc.encode_image(enc.preprocess(im)[None])[0].double().numpy())
                    blurred.append(enc.preprocess(im.filter(ImageFilter.GaussianBlur(5))))
        f = np.array(feats)
        return f / np.linalg.norm(f, axis=1, keepdims=True), torch.stack(blurred)

    kw = {k: GPU[k] for k in ("T", "p", "mode", "batch_size", "max_rows", "dtype")}
    f, blurred = direct([p for p, _ in good])
    light = scores.trace_pre(mc_sample(enc.vision_tower, blurred, seed=0, progress=False, **kw))
    assert more["MCD-11"][0].measured == pytest.approx(np.mean(light > x[0]))
    # MCD-18: the 500 reliability images (here all 12), one prompt, the first trial's trace
    probs = softmax(enc.logit_scale * f @ photo.T, axis=1)
    errors = np.array([int(np.argmax(row) != y) for row, (_, y) in zip(probs, good)])
    r18 = more["MCD-18"][0]
    assert r18.config["prompt"] == "a photo of a {}" and r18.config["trials"] == 1
    if 2 <= errors.sum() <= errors.size - 2:
        assert r18.measured == pytest.approx(roc_auc_score(errors, x[0]))
    else:
        assert r18.verdict == INCONCLUSIVE and f"{errors.sum()} errors of 12" in r18.reason
    # MCD-08: 2 images per synset drawn with the run's seed, one MC trial of T = 64, one prompt
    r08 = more["MCD-08"][0]
    drawn = ctx.memo["mcd-gpu-seed/MCD-08"]
    assert r08.config["images"] == "8 images from 4 synsets (up to 2 each, drawn with seed 0)"
    rng = np.random.default_rng(0)
    pick = []
    for c in np.unique(ids.labels):
        members = np.flatnonzero(ids.labels == c)
        pick += sorted(rng.choice(members, size=2, replace=False).tolist())
    paths = [ids.paths[i] for i in pick if ids.paths[i].name != "broken.JPEG"]  # the corrupt file is dropped
    assert r08.config["configuration"].startswith("the recorded investigation")
    assert r08.config["n_images"] == len(paths) and r08.config["unreadable"] == 8 - len(paths)
    f8, _ = direct(paths)
    x8 = torch.stack([enc.preprocess(Image.open(p).convert("RGB")) for p in paths])
    u8 = scores.trace_pre(mc_sample(enc.vision_tower, x8, seed=0, progress=False, **kw))
    p8 = softmax(enc.logit_scale * f8 @ photo.T, axis=1)
    assert r08.measured == pytest.approx(spearmanr(u8, -(p8 * np.log(p8)).sum(1)).statistic, abs=1e-9)
    np.testing.assert_allclose(drawn.uncertainty, u8)
    # ... and the harness's own configuration beside it: the reliability images, CLIP's 80 templates
    probs80 = softmax(enc.logit_scale * f @ clip_openai_text.T, axis=1)
    h = r08.details["harness_configuration"]
    assert h["rho"] == pytest.approx(spearmanr(x[0], -(probs80 * np.log(probs80)).sum(1)).statistic, abs=1e-9)
    # MCD-09 / MCD-10 (SigLIP2 stand-in): 1 image per synset, centroid distance of unit features
    r10 = more["MCD-10"][0]
    assert r10.config["n_images"] + r10.config["unreadable"] == 4 and "up to 1 each" in r10.config["images"]

    # MCD-07: the gate's three figures of each model against naive formulas
    for key, r in gate.items():
        t = ctx.memo[f"mcd-gpu/{key}"]["trials"]
        k = t.shape[0]
        msb = k * t.mean(0).var(ddof=1)  # one-way ANOVA: images are the groups, trials the repeats
        msw = ((t - t.mean(0)) ** 2).sum() / (t.shape[1] * (k - 1))
        rhos = [spearmanr(t[i], t[j]).statistic for i in range(k) for j in range(i + 1, k)]
        fig = r.details["figures"]
        assert fig["icc"] == pytest.approx((msb - msw) / (msb + (k - 1) * msw))
        assert fig["spearman"] == pytest.approx(np.median(rhos))
        assert fig["snr"] == pytest.approx(t.mean(0).var(ddof=1) / t.var(0, ddof=1).mean())

    # MCD-09, MCD-10, MCD-12 on the SigLIP2 stand-in (tiny-siglip), MCD-13 across both, all computed directly
    sig = random_encoder("tiny-siglip")
    rng = np.random.default_rng(0)
    pick = []
    for c in np.unique(ids.labels):
        members = np.flatnonzero(ids.labels == c)
        pick += sorted(rng.choice(members, size=1, replace=False).tolist())
    paths1 = [ids.paths[i] for i in pick if ids.paths[i].name != "broken.JPEG"]
    with torch.no_grad():
        xs = torch.stack([sig.preprocess(Image.open(p).convert("RGB")) for p in paths1])
        fs = sig.encode_image(xs).double().numpy()
        text = sig.encode_text(sig.tokenizer([f"a photo of a {c}" for c in imagenet_classnames()])).double().numpy()
    fs /= np.linalg.norm(fs, axis=1, keepdims=True)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    us = scores.trace_pre(mc_sample(sig.vision_tower, xs, seed=0, progress=False, **kw))
    ps = softmax(sig.logit_scale * fs @ text.T + sig.logit_bias, axis=1)
    assert more["MCD-09"][0].measured == pytest.approx(spearmanr(us, -(ps * np.log(ps)).sum(1)).statistic, abs=1e-6)
    centre = fs.mean(0) / np.linalg.norm(fs.mean(0))
    assert more["MCD-10"][0].measured == pytest.approx(spearmanr(us, 1 - fs @ centre).statistic, abs=1e-6)
    good_paths = [p for p, _ in good]
    with torch.no_grad():
        xh = torch.stack([sig.preprocess(Image.open(p).convert("RGB").filter(ImageFilter.GaussianBlur(15)))
                          for p in good_paths])
        x0 = torch.stack([sig.preprocess(Image.open(p).convert("RGB")) for p in good_paths])
    heavy = scores.trace_pre(mc_sample(sig.vision_tower, xh, seed=0, progress=False, **kw))
    sig_trials = ctx.memo["mcd-gpu/siglip2_b16"]["trials"]
    assert more["MCD-12"][0].measured == pytest.approx(np.mean(heavy < sig_trials[0]))
    ranks = {}
    for name, e, xx in (("clip", enc, torch.stack([enc.preprocess(Image.open(p).convert("RGB")) for p in good_paths])),
                        ("siglip", sig, x0)):
        r = mc_sample(e.vision_tower, xx, seed=0, keep_samples=True, progress=False, **kw)
        ranks[name] = scores.effective_rank(r).mean()
    (erank,) = more["MCD-13"]
    assert erank.measured == pytest.approx(ranks["clip"] - ranks["siglip"])
    assert erank.ci[0] <= erank.measured <= erank.ci[1]


def _single_prompt_text(enc) -> np.ndarray:
    """Class embeddings for the single prompt "a photo of a {}" (no period), one class at a time."""
    text = []
    with torch.no_grad():
        for c in imagenet_classnames():
            t = enc.encode_text(enc.tokenizer([f"a photo of a {c}"]))[0].double().numpy()
            text.append(t / np.linalg.norm(t))
    return np.array(text)


def _record_three(data_root, tmp_path, monkeypatch):
    """A recorded CLIP trial file listing 3 of the generated images (as paths of another machine)."""
    ids = imagenet_val(data_root)
    pick = [ids.paths[i] for i in (5, 0, 9)]
    rec = tmp_path / "recorded/exp0_nested_mc/clip_b32"
    rec.mkdir(parents=True)
    paths = np.array([f"/elsewhere/imagenet_val/{p.parent.name}/{p.name}" for p in pick])
    np.savez(rec / "exp0_trials_T64.npz", trial_pre=np.ones((10, 3)), trial_post=np.ones((10, 3)), paths=paths)
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(tmp_path / "recorded"))
    return ids, pick, rec, paths


def test_mcd_gpu_images_are_the_recorded_runs_when_available(data_root, tmp_path, monkeypatch):
    from mcdo.verify.mcd.gpu import select_images

    ids, pick, rec, paths = _record_three(data_root, tmp_path, monkeypatch)
    got, labels, source = select_images(engine.Context(), ids)
    assert got == pick and source == "the recorded run's 3 images"
    np.testing.assert_array_equal(labels, [ids.labels[i] for i in (5, 0, 9)])
    paths[1] = "/elsewhere/imagenet_val/n01440764/ILSVRC2012_val_09999999.JPEG"
    np.savez(rec / "exp0_trials_T64.npz", trial_pre=np.ones((10, 3)), trial_post=np.ones((10, 3)), paths=paths)
    with pytest.raises(MissingData, match="1 of the recorded run's 3"):
        select_images(engine.Context(), ids)


def test_mcd_gpu_finds_the_recorded_images_in_the_flat_layout(data_root, tmp_path, monkeypatch):
    """The README's flat ILSVRC2012_val_* + devkit layout: recorded paths name synset folders that it lacks."""
    from mcdo.testing import flatten_imagenet
    from mcdo.verify.mcd.gpu import select_images

    ids, pick, _, _ = _record_three(data_root, tmp_path, monkeypatch)
    flat = imagenet_val(flatten_imagenet(data_root, tmp_path / "flat"))
    assert flat.layout == "flat + devkit"
    got, labels, _ = select_images(engine.Context(), flat)
    assert [p.name for p in got] == [p.name for p in pick] and all(p.parent == flat.root for p in got)
    np.testing.assert_array_equal(labels, [ids.labels[i] for i in (5, 0, 9)])
