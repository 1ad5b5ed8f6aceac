"""The OOD benchmark end to end on image folders made here (``mcdo.testing``), with random-weight toys.

Layouts, corrupt files, caches, resume, the gpu-tier evaluators OOD-03..08 and ``mcdo ood``: the plumbing,
and every number against a direct computation written out below (one image at a time, sklearn for the
metrics). The seed's own numbers need real weights and data (gpu tier).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from mcdo import cli, oodbench
from mcdo.data.folders import MOS_SETS, imagenet_synsets, imagenet_val, ood_set
from mcdo.errors import MissingData
from mcdo.features import image_features
from mcdo.testing import random_encoder, write_image
from mcdo.verify import engine
from mcdo.verify.records import INCONCLUSIVE, SKIPPED
from mcdo.zeroshot import model_cache_id, imagenet_classnames

pytestmark = [pytest.mark.arch, pytest.mark.usefixtures("isolated_cache")]  # data_root: tests/conftest.py


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
    from mcdo.testing import flatten_imagenet

    ref = imagenet_val(data_root)
    keep = [i for i, p in enumerate(ref.paths) if p.name.startswith("ILSVRC2012_val_")]
    got = imagenet_val(flatten_imagenet(data_root, tmp_path))
    assert got.layout == "flat + devkit" and len(got) == len(keep) == 12
    assert [p.read_bytes() for p in got.paths] == [ref.paths[i].read_bytes() for i in keep]
    np.testing.assert_array_equal(got.labels, ref.labels[keep])


def test_missing_and_malformed_sets_name_the_expected_path(data_root, tmp_path):
    with pytest.raises(MissingData, match=str(tmp_path / "imagenet/val")):
        imagenet_val(tmp_path)
    with pytest.raises(MissingData, match=str(tmp_path / "SUN/images")):
        ood_set("SUN", tmp_path)
    (tmp_path / "imagenet/val/not_a_synset").mkdir(parents=True)
    with pytest.raises(MissingData, match="not_a_synset"):
        imagenet_val(tmp_path)
    (tmp_path / "imagenet/val/not_a_synset").rmdir()
    write_image(tmp_path / "imagenet/val/ILSVRC2012_val_00000001.JPEG", np.random.default_rng(0))
    with pytest.raises(MissingData, match="meta.mat"):
        imagenet_val(tmp_path)
    with pytest.raises(ValueError, match="iNaturalist"):
        ood_set("ImageNet-O", data_root)


# ---------------------------------------------------------------- against a direct computation


def _bilinear(enc, im):
    """The MCM paper's preprocessing written out: short side to the input size (bilinear), centre crop."""
    from torchvision.transforms import functional as TF

    s = enc.spec.image_size
    im = TF.center_crop(TF.resize(im, s, interpolation=TF.InterpolationMode.BILINEAR), s)
    norm = next(t for t in enc.preprocess.transforms if type(t).__name__ == "Normalize")
    return TF.normalize(TF.to_tensor(im), norm.mean, norm.std)


def _mcm_fpr95(x, y):
    """FPR at the threshold whose TPR is closest to 0.95, from sklearn's full ROC curve cut where TPR reaches 1."""
    fpr, tpr, _ = roc_curve(y, x, drop_intermediate=False)
    stop = int(np.argmax(tpr == 1.0)) + 1
    fpr, tpr = fpr[:stop], tpr[:stop]
    d = np.abs(tpr - 0.95)
    return fpr[np.flatnonzero(d == d.min())[-1]]


def _direct(enc, data_root, convention="seed"):
    """Features one image at a time, text one class at a time, scores and metrics by hand / sklearn."""
    prompt = "a photo of a {}" + ("" if convention == "mcm" else ".")

    def feats(paths):
        out, bad = [], []
        for p in paths:
            try:
                with Image.open(p) as im:
                    im = im.convert("RGB")
                    x = (_bilinear(enc, im) if convention == "mcm" else enc.preprocess(im))[None]
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
            t = enc.encode_text(enc.tokenizer([prompt.format(c)]))[0].double().numpy()
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
            if convention == "openood":  # OpenOOD: OOD is the positive class, scored by -confidence
                fpr, tpr, _ = roc_curve(1 - y, -x)
                table[k][name] = dict(auroc=roc_auc_score(y, x), fpr95=fpr[np.argmax(tpr >= 0.95)],
                                      aupr=average_precision_score(1 - y, -x))
                continue
            fpr, tpr, _ = roc_curve(y, x)
            table[k][name] = dict(auroc=roc_auc_score(y, x), aupr=average_precision_score(y, x),
                                  fpr95=_mcm_fpr95(x, y) if convention == "mcm" else fpr[np.argmax(tpr >= 0.95)])
    return dict(acc=np.mean(cos_id.argmax(1) == labels), table=table, bad=bad, n_id=len(labels))


@pytest.mark.parametrize("name,convention", [("tiny-clip", "seed"), ("tiny-siglip", "seed"), ("tiny-clip", "mcm"),
                                             ("tiny-siglip", "openood")])
def test_pipeline_matches_direct_computation(name, convention, data_root):
    """Each convention (prompt, resizing, positive class, FPR95 rule) against its own direct computation."""
    enc = random_encoder(name)
    res = oodbench.run(enc, data_root=data_root, batch_size=4, progress=False, accuracy_templates=("mcm",),
                       convention=convention)
    assert res.config["convention"] == convention and convention in oodbench.format_table(res)
    ref = _direct(enc, data_root, convention)
    assert res.n_id == ref["n_id"] == 12
    assert res.failed["ImageNet-1k val"] == [str(p) for p in ref["bad"]] and len(ref["bad"]) == 1
    if convention != "mcm":  # accuracy is reported with the seed's single prompt
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
    enc = random_encoder("tiny-clip")
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
    a, b, a2 = random_encoder("tiny-clip", 0), random_encoder("tiny-clip", 1), random_encoder("tiny-clip", 0)
    assert model_cache_id(a) == model_cache_id(a2) != model_cache_id(b)


# ---------------------------------------------------------------- gpu-tier evaluators and the command


def test_gpu_evaluators_run_the_pipeline_with_stand_ins(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MCDO_DATA_ROOT", str(data_root))
    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    ctx = engine.Context(seed=0, n_boot=50, progress=False, pretrained=False, require_gpu=False, batch_size=4,
                         stand_ins={"clip-vit-b-16": "tiny-clip", "siglip-vit-b-16": "tiny-siglip",
                                    "siglip2-vit-b-16": "tiny-siglip"})
    recs = {c: engine.evaluate(c, "gpu", ctx) for c in ("OOD-03", "OOD-04", "OOD-05", "OOD-06", "OOD-07", "OOD-08")}
    # both SigLIPs of the seed (its table's SigLIP, its command line's SigLIP2), one record each
    for c in ("OOD-05", "OOD-06", "OOD-07"):
        assert [r.model for r in recs[c]] == ["siglip-vit-b-16", "siglip2-vit-b-16"]
        assert "SigLIP ViT-B-16" in recs[c][0].reason and "siglip2" in recs[c][1].reason
    assert recs["OOD-05"][1].measured == pytest.approx(recs["OOD-05"][0].measured)  # the same stand-in
    # OOD-04 carries the MCM paper's own setting (its prompt, bilinear resize, FPR95 rule), checked directly
    paper = recs["OOD-04"][0].details["mcm_paper_setting"]
    ref_paper = _direct(random_encoder("tiny-clip"), data_root, "mcm")
    assert paper["measured"] == pytest.approx(np.mean([v["auroc"] for v in ref_paper["table"]["softmax"].values()]))
    assert "MCM paper's setting" in recs["OOD-04"][0].reason and "bilinear" in paper["convention"]
    clip, siglip = random_encoder("tiny-clip"), random_encoder("tiny-siglip")  # the stand-ins, seeded as the context seeds them
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
    from mcdo.verify.report_figures import make_figures

    figures, _ = make_figures([], ctx, tmp_path)
    assert ("OOD score distributions, softmax vs sigmoid MCM", "figures/ood_scores.png") in figures
    md = report.markdown(recs["OOD-08"])
    assert "## OOD tables (OOD-08)" in md and md.count("| mean |") == 3


def test_gpu_evaluators_skip_naming_every_missing_piece(data_root, tmp_path, monkeypatch):
    monkeypatch.delenv("MCDO_DATA_ROOT", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    sig, sig2 = engine.evaluate("OOD-07", "gpu", engine.Context(progress=False))
    for r, repo in ((sig, "timm/ViT-B-16-SigLIP"), (sig2, "timm/ViT-B-16-SigLIP2")):
        # the Hugging Face repo and files load() looks for, and where it looks
        assert r.verdict == SKIPPED and f"in {repo};" in r.reason and "open_clip_model.safetensors" in r.reason
        assert "tokenizer" in r.reason and f"HF_HOME={tmp_path / 'hf'}" in r.reason
        assert "MCDO_DATA_ROOT is unset" in r.reason
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
    rows = [json.loads(line) for line in _report(out, "tiny-siglip").read_text().splitlines()]
    assert {(r["score"], r["ood_set"]) for r in rows} == {(s, n) for s in ("softmax", "sigmoid", "energy", "max_logit")
                                                          for n in ("iNaturalist", "Textures", "mean")}
    mean = next(r for r in rows if r["score"] == "sigmoid" and r["ood_set"] == "mean")
    per = [r["auroc"] for r in rows if r["score"] == "sigmoid" and r["ood_set"] != "mean"]
    assert mean["auroc"] == pytest.approx(np.mean(per))
    # issue 23: every AUROC and FPR95 printed and recorded with its bootstrap CI, which holds the estimate
    assert re.search(r"\| iNaturalist \| \d+\.\d\d \[\d+\.\d\d, \d+\.\d\d\] \|", text) and "bootstrap 95% CI" in text
    for r in rows:
        assert r["auroc_ci"][0] <= r["auroc"] <= r["auroc_ci"][1] and r["n_boot"] == 200
        assert r["ood_set"] == "mean" or r["fpr95_ci"][0] <= r["fpr95"] <= r["fpr95_ci"][1]
    assert any(r["auroc_ci"][1] - r["auroc_ci"][0] > 0.05 for r in rows)  # 12 ID images: wide, not a point
    # --save-scores: one row per readable image; any metric recomputes from it (scikit-learn's AUROC, ID positive)
    rc = cli.main(["ood", "--model", "tiny-siglip", "--random-weights", "--data-root", str(data_root), "--bs", "4",
                   "--workers", "0", "--ood-dataset", "iNaturalist", "--ood-dataset", "Textures", "--score", "all",
                   "--out", str(out), "--quiet", "--save-scores", "--n-boot", "0"])
    assert rc == 0 and "[" not in capsys.readouterr().out.split("| OOD set")[1].split("\n\n")[0]  # no CIs asked
    import csv

    table = list(csv.DictReader(max(out.glob("tiny-siglip-*-scores.csv"), key=lambda p: p.stat().st_mtime_ns).open()))
    assert not any("broken" in r["file"] for r in table) and all(Path(r["file"]).is_file() for r in table)
    ident = [float(r["energy"]) for r in table if r["is_id"] == "1"]
    textures = [float(r["energy"]) for r in table if r["set"] == "Textures"]
    recorded = next(r for r in rows if r["score"] == "energy" and r["ood_set"] == "Textures")["auroc"]
    assert roc_auc_score([1] * len(ident) + [0] * len(textures), ident + textures) == pytest.approx(recorded)
    # the seed's --use_sigmoid flag is sigmoid MCM
    rc = cli.main(["ood", "--model", "tiny-siglip", "--random-weights", "--data-root", str(data_root), "--bs", "4",
                   "--workers", "0", "--ood-dataset", "SUN", "--use_sigmoid", "--out", str(out), "--quiet"])
    assert rc == 0 and "sigmoid AUROC" in capsys.readouterr().out
    sig = [json.loads(line) for line in _report(out, "tiny-siglip").read_text().splitlines()]
    assert {r["score"] for r in sig} == {"sigmoid"} and sig[0]["convention"] == "seed"
    # issue 20: a run with other options no longer overwrites the first one's report
    assert len(list(out.glob("tiny-siglip-seed-random-*.jsonl"))) == 3 and len(list(out.glob("*.md"))) == 3
    assert cli.main(["ood", "--model", "no-such-model", "--data-root", str(data_root), "--quiet"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert cli.main(["ood", "--model", "tiny-clip", "--random-weights", "--data-root", str(tmp_path), "--quiet"]) == 2
    assert str(tmp_path / "imagenet/val") in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no logit_bias"):
        cli.main(["ood", "--model", "tiny-clip", "--random-weights", "--score", "sigmoid", "--data-root",
                  str(data_root), "--quiet"])


def _report(out, model):
    """The newest ood report of ``model`` in ``out`` (reports are named by model, convention and a hash of the
    options, so runs with other options sit beside each other)."""
    return max(out.glob(f"{model}-*-random-*.jsonl"), key=lambda p: p.stat().st_mtime_ns)


def test_ood_command_limit_is_a_smoke_run_that_says_so(data_root, tmp_path, capsys):
    """``mcdo ood --limit N`` (issue 33): at most N images of the ID set and of each OOD set, the whole chain run,
    and the console and every row say it is a smoke run."""
    out = tmp_path / "out"
    rc = cli.main(["ood", "--model", "tiny-siglip", "--random-weights", "--data-root", str(data_root), "--bs", "4",
                   "--workers", "0", "--ood-dataset", "iNaturalist", "--score", "softmax", "--limit", "3",
                   "--n-boot", "20", "--out", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert text.startswith("smoke run (--limit 3)")
    rows = [json.loads(line) for line in _report(out, "tiny-siglip").read_text().splitlines()]
    assert rows and all(r["limit"] == 3 and r["n_id"] <= 3 for r in rows)
    with pytest.raises(SystemExit) as e:
        cli.main(["ood", "--model", "tiny-siglip", "--limit", "0", "--quiet"])
    assert e.value.code == 2
