"""The gpu-tier pipelines end to end on image folders made here, with random-weight toy encoders.

The OOD benchmark (layouts, corrupt files, caches, resume, OOD-03..08, ``mcdo ood``), PRB-05's zero-shot
top-1 and the MC-dropout reliability claims MCD-03..07: the plumbing, and every number against a direct
computation written out below (one image at a time, sklearn / scipy, naive formulas). The seeds' own
numbers need real weights and data (gpu tier).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from mcdo import cli, oodbench
from mcdo.data.folders import MOS_SETS, imagenet_synsets, imagenet_val, ood_set
from mcdo.errors import MissingData
from mcdo.features import image_features
from mcdo.models import load
from mcdo.verify import engine
from mcdo.verify.records import INCONCLUSIVE, SKIPPED
from mcdo.zeroshot import fingerprint, imagenet_classnames

pytestmark = pytest.mark.arch

CLASSES = (0, 1, 207, 980)  # positions in the sorted synset list
OOD_COUNTS = {"iNaturalist/images": 5, "SUN/images": 4, "Places/images": 4}


def _image(path, rng, fmt="JPEG"):
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = rng.integers(30, 64, size=2)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, fmt)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """ImageNet-like synset folders (with one corrupt file) and the four MOS layouts, a few images each."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    wnids = imagenet_synsets()
    for c in CLASSES:
        for j in range(3):
            _image(root / "imagenet/val" / wnids[c] / f"ILSVRC2012_val_{3 * CLASSES.index(c) + j + 1:08d}.JPEG", rng)
    (root / "imagenet/val" / wnids[0] / "broken.JPEG").write_bytes(b"this is not a JPEG")
    for rel, n in OOD_COUNTS.items():
        for j in range(n):
            _image(root / rel / f"{j}.{'png' if 'Places' in rel else 'jpg'}", rng, "PNG" if "Places" in rel else "JPEG")
    for j in range(3):
        _image(root / "dtd/images" / ("banded" if j < 2 else "zigzagged") / f"t{j}.jpg", rng)
    return root


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MCDO_CACHE_DIR", str(tmp_path / "cache"))


def _encoder(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return load(name, pretrained=False, progress=False)


# ---------------------------------------------------------------- layouts


def test_synset_layout_labels(data_root):
    ids = imagenet_val(data_root)
    wnids = imagenet_synsets()
    assert ids.layout == "synset folders" and len(ids) == 13 and ids.n_classes == 4
    for p, y in zip(ids.paths, ids.labels):
        assert wnids[y] == p.parent.name
    assert [len(ood_set(n, data_root)) for n in MOS_SETS] == [5, 4, 4, 3]


def test_flat_layout_with_devkit_matches_synset_folders(data_root, tmp_path):
    """A flat val folder labelled through meta.mat (ILSVRC ids in a shuffled order) and the ground truth."""
    from scipy.io import savemat

    wnids = imagenet_synsets()
    order = np.random.default_rng(1).permutation(1000)  # ILSVRC2012_ID k+1 <-> wnids[order[k]]
    ilsvrc_of = {wnids[order[k]]: k + 1 for k in range(1000)}
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height",
              "num_train_images"]
    rows = [(k + 1, wnids[order[k]], "w", "g", 0, np.zeros(0), 0, 1300) for k in range(1000)]
    rows.append((1001, "n00001740", "entity", "g", 3, np.array([1, 2, 3]), 18, 0))  # an inner node: not a class
    synsets = np.array(rows, dtype=[(f, "O") for f in fields])
    devkit = tmp_path / "imagenet/ILSVRC2012_devkit_t12/data"
    devkit.mkdir(parents=True)
    savemat(devkit / "meta.mat", {"synsets": synsets})
    ref = imagenet_val(data_root)
    flat = tmp_path / "imagenet/val"
    flat.mkdir(parents=True)
    truth = np.zeros(len(ref), dtype=int)
    for i, (p, y) in enumerate(zip(ref.paths, ref.labels)):
        (flat / f"ILSVRC2012_val_{i + 1:08d}.JPEG").write_bytes(p.read_bytes())
        truth[i] = ilsvrc_of[wnids[y]]
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("\n".join(map(str, truth)) + "\n")
    got = imagenet_val(tmp_path)
    assert got.layout == "flat + devkit"
    assert [p.read_bytes() for p in got.paths] == [p.read_bytes() for p in ref.paths]
    np.testing.assert_array_equal(got.labels, ref.labels)


def test_missing_and_malformed_sets_name_the_expected_path(data_root, tmp_path):
    with pytest.raises(MissingData, match=str(tmp_path / "imagenet/val")):
        imagenet_val(tmp_path)
    with pytest.raises(MissingData, match=str(tmp_path / "SUN/images")):
        ood_set("SUN", tmp_path)
    (tmp_path / "imagenet/val/not_a_synset").mkdir(parents=True)
    with pytest.raises(MissingData, match="not_a_synset"):
        imagenet_val(tmp_path)
    (tmp_path / "imagenet/val/not_a_synset").rmdir()
    _image(tmp_path / "imagenet/val/ILSVRC2012_val_00000001.JPEG", np.random.default_rng(0))
    with pytest.raises(MissingData, match="meta.mat"):
        imagenet_val(tmp_path)
    with pytest.raises(ValueError, match="iNaturalist"):
        ood_set("ImageNet-O", data_root)


# ---------------------------------------------------------------- against a direct computation


def _direct(enc, data_root):
    """Features one image at a time, text one class at a time, scores and metrics by hand / sklearn."""
    def feats(paths):
        out, bad = [], []
        for p in paths:
            try:
                with Image.open(p) as im:
                    x = enc.preprocess(im.convert("RGB"))[None]
            except Exception:
                bad.append(p)
                continue
            with torch.no_grad():
                f = enc.encode_image(x)[0].double().numpy()
            out.append(f / np.linalg.norm(f))
        return np.array(out), bad

    ids = imagenet_val(data_root)
    f_id, bad = feats(ids.paths)
    labels = np.array([y for p, y in zip(ids.paths, ids.labels) if p not in bad])
    with torch.no_grad():
        text = []
        for c in imagenet_classnames():
            t = enc.encode_text(enc.tokenizer([f"a photo of a {c}."]))[0].double().numpy()
            text.append(t / np.linalg.norm(t))
    text = np.array(text)
    s, b = enc.logit_scale, enc.logit_bias

    def scores(cos):
        z = cos - cos.max(1, keepdims=True)
        out = {"softmax": 1.0 / np.exp(z).sum(1),  # max softmax = exp(0) / sum
               "energy": np.log(np.exp(s * cos + (b or 0)).sum(1)),
               "max_logit": (s * cos + (b or 0)).max(1)}
        if b is not None:
            out["sigmoid"] = (1.0 / (1.0 + np.exp(-(s * cos + b)))).max(1)
        return out

    cos_id = f_id @ text.T
    sc_id = scores(cos_id)
    table = {k: {} for k in sc_id}
    for name in MOS_SETS:
        f_ood, _ = feats(ood_set(name, data_root).paths)
        sc_ood = scores(f_ood @ text.T)
        for k in sc_id:
            x, y = np.r_[sc_id[k], sc_ood[k]], np.r_[np.ones(len(sc_id[k])), np.zeros(len(sc_ood[k]))]
            fpr, tpr, _ = roc_curve(y, x)
            table[k][name] = dict(auroc=roc_auc_score(y, x), fpr95=fpr[np.argmax(tpr >= 0.95)],
                                  aupr=average_precision_score(y, x))
    return dict(acc=np.mean(cos_id.argmax(1) == labels), table=table, bad=bad, n_id=len(labels))


@pytest.mark.parametrize("name", ["tiny-clip", "tiny-siglip"])
def test_pipeline_matches_direct_computation(name, data_root):
    enc = _encoder(name)
    res = oodbench.run(enc, data_root=data_root, batch_size=4, progress=False, accuracy_templates=("mcm",))
    ref = _direct(enc, data_root)
    assert res.n_id == ref["n_id"] == 12
    assert res.failed["ImageNet-1k val"] == [str(p) for p in ref["bad"]] and len(ref["bad"]) == 1
    assert res.accuracy["mcm"] == pytest.approx(ref["acc"])
    table = res.table()
    assert set(table) == set(ref["table"]) == ({"softmax", "energy", "max_logit"} | ({"sigmoid"} if "siglip" in name
                                                                                      else set()))
    for sc, per in ref["table"].items():
        for set_name, metrics in per.items():
            for m, v in metrics.items():
                assert table[sc][set_name][m] == pytest.approx(v, abs=1e-9), (sc, set_name, m)
        for m in ("auroc", "fpr95", "aupr"):
            assert table[sc]["mean"][m] == pytest.approx(np.mean([per[s][m] for s in MOS_SETS]), abs=1e-9)


def test_rescoring_reads_the_cache_and_an_interrupted_pass_resumes(data_root, tmp_path, monkeypatch):
    enc = _encoder("tiny-clip")
    ids = imagenet_val(data_root)
    full = image_features(enc, ids, batch_size=2, shard=4, progress=False)
    calls = []
    real = enc._encode_image
    monkeypatch.setattr(enc, "_encode_image", lambda x: calls.append(len(x)) or real(x))
    again = image_features(enc, ids, batch_size=2, shard=4, progress=False)
    assert calls == [] and np.array_equal(again.features, full.features)

    # a fresh cache, and a pass that dies in its third shard: the two finished shards are kept
    monkeypatch.setenv("MCDO_CACHE_DIR", str(tmp_path / "cache-resume"))

    def dying(x):
        if sum(calls) >= 8:
            raise KeyboardInterrupt
        calls.append(len(x))
        return real(x)

    monkeypatch.setattr(enc, "_encode_image", dying)
    with pytest.raises(KeyboardInterrupt):
        image_features(enc, ids, batch_size=2, shard=4, progress=False)
    calls.clear()
    monkeypatch.setattr(enc, "_encode_image", lambda x: calls.append(len(x)) or real(x))
    resumed = image_features(enc, ids, batch_size=2, shard=4, progress=False)
    # shards of 4 files: the first two (7 readable images, the corrupt file among them) were on disk;
    # only the 5 images of the last two are encoded again
    assert sum(calls) == 5
    np.testing.assert_allclose(resumed.features, full.features, atol=1e-6)
    np.testing.assert_array_equal(resumed.labels, full.labels)
    assert resumed.failed == full.failed


def test_cache_is_keyed_by_weights():
    a, b, a2 = _encoder("tiny-clip", 0), _encoder("tiny-clip", 1), _encoder("tiny-clip", 0)
    assert fingerprint(a) == fingerprint(a2) != fingerprint(b)


# ---------------------------------------------------------------- gpu-tier evaluators and the command


def test_gpu_evaluators_run_the_pipeline_with_stand_ins(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MCDO_DATA_ROOT", str(data_root))
    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    ctx = engine.Context(seed=0, n_boot=50, progress=False, pretrained=False, require_gpu=False, batch_size=4,
                         stand_ins={"clip-vit-b-16": "tiny-clip", "siglip-vit-b-16": "tiny-siglip"})
    recs = {c: engine.evaluate(c, "gpu", ctx) for c in ("OOD-03", "OOD-04", "OOD-05", "OOD-06", "OOD-07", "OOD-08")}
    clip, siglip = _encoder("tiny-clip"), _encoder("tiny-siglip")  # the stand-ins, seeded as the context seeds them
    ref_clip, ref_sig = _direct(clip, data_root), _direct(siglip, data_root)
    mean = {k: np.mean([v["auroc"] for v in per.values()]) for k, per in ref_sig["table"].items()}
    assert recs["OOD-03"][0].verdict == INCONCLUSIVE and "only 4 of 1000 classes" in recs["OOD-03"][0].reason
    assert recs["OOD-03"][0].details["accuracy"]["mcm"] == pytest.approx(ref_clip["acc"])
    assert recs["OOD-04"][0].measured == pytest.approx(np.mean([v["auroc"] for v in ref_clip["table"]["softmax"].values()]))
    assert recs["OOD-06"][0].measured == pytest.approx(mean["softmax"])
    assert recs["OOD-04"][0].config["stand_in"] == "tiny-clip" and recs["OOD-04"][0].config["pretrained"] is False
    assert recs["OOD-07"][0].measured == pytest.approx(mean["sigmoid"] - mean["softmax"])
    assert recs["OOD-07"][0].details["sigmoid_mean_auroc"] == pytest.approx(mean["sigmoid"])
    for rs in recs.values():
        for r in rs:
            assert r.verdict != SKIPPED and r.ci[0] <= r.measured <= r.ci[1], (r.id, r.model, r.ci, r.measured)
    t08 = {r.model: r.details["table"] for r in recs["OOD-08"]}
    for sc, per in ref_sig["table"].items():
        for s, m in per.items():
            assert t08["siglip-vit-b-16"][sc][s]["fpr95"] == pytest.approx(m["fpr95"])
    # the report renders the OOD-08 tables and the score-distribution figure from the same run
    from mcdo import report
    from mcdo.figures import make_figures

    figures = make_figures([], ctx, tmp_path)
    assert ("OOD score distributions, softmax vs sigmoid MCM", "figures/ood_scores.png") in figures
    md = report.markdown(recs["OOD-08"])
    assert "## OOD tables (OOD-08)" in md and md.count("| mean |") == 2


@pytest.fixture(scope="module")
def clip_openai_text():
    """tiny-clip (seed 0) class embeddings for CLIP's 80 templates, one class at a time."""
    from open_clip import zero_shot_metadata as z

    enc, text = _encoder("tiny-clip"), []
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
    enc, ids, text = _encoder("tiny-clip"), imagenet_val(data_root), clip_openai_text
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
        assert "unreadable files skipped: 1" in r.reason


def test_gpu_evaluators_skip_naming_every_missing_piece(data_root, tmp_path, monkeypatch):
    monkeypatch.delenv("MCDO_DATA_ROOT", raising=False)
    (r,) = engine.evaluate("OOD-07", "gpu", engine.Context(progress=False))
    assert r.verdict == SKIPPED and "ViT-B-16-SigLIP:webli" in r.reason and "MCDO_DATA_ROOT is unset" in r.reason
    # data present except SUN: the reason names SUN's expected folder and nothing else that is present
    partial = tmp_path / "partial"
    for rel in ("imagenet/val", "iNaturalist/images", "Places/images", "dtd/images"):
        (partial / rel).parent.mkdir(parents=True, exist_ok=True)
        (partial / rel).symlink_to(data_root / rel, target_is_directory=True)
    monkeypatch.setenv("MCDO_DATA_ROOT", str(partial))
    ctx = engine.Context(progress=False, pretrained=False, require_gpu=False, stand_ins={"clip-vit-b-16": "tiny-clip"})
    (r,) = engine.evaluate("OOD-04", "gpu", ctx)
    assert r.verdict == SKIPPED and str(partial / "SUN/images") in r.reason
    assert "iNaturalist" not in r.reason.split(":")[0] and "weights" not in r.reason


def test_ood_command(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    rc = cli.main(["ood", "--model", "tiny-siglip", "--random-weights", "--data-root", str(data_root), "--bs", "4",
                   "--workers", "0", "--ood-dataset", "iNaturalist", "--ood-dataset", "Textures", "--score", "all",
                   "--out", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "| iNaturalist |" in text and "| Textures |" in text and "| mean |" in text and "sigmoid AUROC" in text
    assert "unreadable files skipped: ImageNet-1k val 1" in text
    rows = [json.loads(line) for line in (out / "tiny-siglip-random.jsonl").read_text().splitlines()]
    assert {(r["score"], r["ood_set"]) for r in rows} == {(s, n) for s in ("softmax", "sigmoid", "energy", "max_logit")
                                                          for n in ("iNaturalist", "Textures", "mean")}
    mean = next(r for r in rows if r["score"] == "sigmoid" and r["ood_set"] == "mean")
    per = [r["auroc"] for r in rows if r["score"] == "sigmoid" and r["ood_set"] != "mean"]
    assert mean["auroc"] == pytest.approx(np.mean(per))
    assert cli.main(["ood", "--model", "no-such-model", "--data-root", str(data_root), "--quiet"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert cli.main(["ood", "--model", "tiny-clip", "--random-weights", "--data-root", str(tmp_path), "--quiet"]) == 2
    assert str(tmp_path / "imagenet/val") in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no logit_bias"):
        cli.main(["ood", "--model", "tiny-clip", "--random-weights", "--score", "sigmoid", "--data-root",
                  str(data_root), "--quiet"])


# ---------------------------------------------------------------- MC-dropout reliability (MCD-03..07)


def test_mcd_gpu_evaluators_with_stand_ins(data_root, monkeypatch, clip_openai_text):
    from PIL import ImageFilter
    from scipy.special import softmax
    from scipy.stats import spearmanr

    from mcdo import scores
    from mcdo.sampling import mc_sample
    from mcdo.verify.mcd_gpu_claims import GPU

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
        assert recs[snr_id][0].model == key and recs[snr_id][0].config["T"] == 64
    gate = {r.model: r for r in recs["MCD-07"]}
    assert set(gate) == {"clip_b32", "siglip2_b16"} and all(r.verdict != SKIPPED for r in gate.values())

    # MCD-08..13, 18 from the same pass, against direct computations on the CLIP stand-in
    more = {c: engine.evaluate(c, "gpu", ctx) for c in ("MCD-08", "MCD-09", "MCD-10", "MCD-11", "MCD-12", "MCD-13",
                                                         "MCD-18")}
    assert all(r.verdict != SKIPPED for rs in more.values() for r in rs)
    enc, x = _encoder("tiny-clip"), ctx.memo["mcd-gpu/clip_b32"]["trials"]
    ids = imagenet_val(data_root)
    good = [(p, y) for p, y in zip(ids.paths, ids.labels) if p.name != "broken.JPEG"]
    with torch.no_grad():
        feats, blurred = [], []
        for p, _ in good:
            with Image.open(p) as im:
                im = im.convert("RGB")
                feats.append(enc.encode_image(enc.preprocess(im)[None])[0].double().numpy())
                blurred.append(enc.preprocess(im.filter(ImageFilter.GaussianBlur(5))))
    f = np.array(feats)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    probs = softmax(enc.logit_scale * f @ clip_openai_text.T, axis=1)
    entropy = -(probs * np.log(probs)).sum(1)
    assert more["MCD-08"][0].measured == pytest.approx(spearmanr(x[0], entropy).statistic, abs=1e-9)
    kw = {k: GPU[k] for k in ("T", "p", "mode", "batch_size", "max_rows", "dtype")}
    light = scores.trace_pre(mc_sample(enc.vision_tower, torch.stack(blurred), seed=0, progress=False, **kw))
    assert more["MCD-11"][0].measured == pytest.approx(np.mean(light > x[0]))
    errors = np.array([int(np.argmax(row) != y) for row, (_, y) in zip(probs, good)])
    if 2 <= errors.sum() <= errors.size - 2:
        assert more["MCD-18"][0].measured == pytest.approx(roc_auc_score(errors, x[0]))
    else:
        assert more["MCD-18"][0].verdict == INCONCLUSIVE and f"{errors.sum()} errors of 12" in more["MCD-18"][0].reason
    (erank,) = more["MCD-13"]
    assert np.isfinite(erank.measured) and erank.ci[0] <= erank.measured <= erank.ci[1]


def test_mcd_gpu_images_are_the_recorded_runs_when_available(data_root, tmp_path, monkeypatch):
    from mcdo.verify.mcd_gpu_claims import select_images

    ids = imagenet_val(data_root)
    pick = [ids.paths[i] for i in (5, 0, 9)]
    rec = tmp_path / "recorded/exp0_nested_mc/clip_b32"
    rec.mkdir(parents=True)
    paths = np.array([f"/elsewhere/imagenet_val/{p.parent.name}/{p.name}" for p in pick])
    np.savez(rec / "exp0_trials_T64.npz", trial_pre=np.ones((10, 3)), trial_post=np.ones((10, 3)), paths=paths)
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(tmp_path / "recorded"))
    got, labels, source = select_images(engine.Context(), ids)
    assert got == pick and source == "the recorded run's 500 images"
    np.testing.assert_array_equal(labels, [ids.labels[i] for i in (5, 0, 9)])
    paths[1] = "/elsewhere/imagenet_val/n01440764/ILSVRC2012_val_09999999.JPEG"
    np.savez(rec / "exp0_trials_T64.npz", trial_pre=np.ones((10, 3)), trial_post=np.ones((10, 3)), paths=paths)
    with pytest.raises(MissingData, match="1 of the recorded run's 3"):
        select_images(engine.Context(), ids)
