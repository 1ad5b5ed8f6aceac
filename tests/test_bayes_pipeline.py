"""BayesVLM end to end: projection features on every backend, the gpu-tier evaluators on generated folders with
random-weight stand-ins (every number against a direct computation), skips naming what is missing, the command."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mcdo.bayes import metrics
from mcdo.bayes.data import labelled_folder, pairs_folder
from mcdo.models import load
from mcdo.models.heads import SITES
from mcdo.testing import random_encoder
from mcdo.verify import engine


@pytest.mark.parametrize("name,backend", [("tiny-clip", None), ("tiny-siglip", None), ("tiny-siglip", "hf"),
                                          ("proxy-softmax", None)])
def test_projection_features_rebuild_each_backends_embeddings(name, backend):
    """W a + r equals the encoder's own image and text embeddings (the residual is zero except SigLIP's MAP head)."""
    torch.manual_seed(0)
    enc = load(name, pretrained=False, backend=backend) if not name.startswith("proxy") else load(name, progress=False)
    assert (enc.backend, enc.spec.family) in SITES
    x = torch.randn(3, 3, 32, 32)
    vocab = 500 if backend == "hf" else 1000
    tokens = enc.tokenizer(["a photo of a red shape"] * 3) if name.startswith("proxy") else \
        torch.randint(1, vocab, (3, 64 if backend == "hf" else 16))
    for modality, inputs, encode in (("image", x, enc.encode_image), ("text", tokens, enc.encode_text)):
        f = enc.projection_features(modality, inputs)
        w, has_bias = enc.projection_weight(modality)
        with torch.no_grad():
            ref = encode(inputs)
        torch.testing.assert_close(f.activations @ w.T + f.residual, ref, atol=1e-5, rtol=1e-5)
        assert bool(has_bias) == bool((f.activations[:, -1] == 1).all() and has_bias)
    if not name.startswith("proxy"):
        assert hasattr(enc.model, "visual") or backend == "hf"  # the projection was put back after the pass


def _folders(root, n_classes=3, per_class=6, seed=0):
    rng = np.random.default_rng(seed)
    names = ["apple pie", "ramen", "sushi"][:n_classes]
    for split in ("food-101/images", "bayes-hessian", "bayes-hessian-alt"):
        for c in names:
            folder = root / split / c.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                arr = (rng.random((40, 40, 3)) * 255).astype(np.uint8)
                Image.fromarray(arr).save(folder / f"{i}.jpg")
    meta = root / "food-101" / "meta"
    meta.mkdir(parents=True)
    (meta / "test.txt").write_text("".join(f"{c.replace(' ', '_')}/{i}\n" for c in names for i in range(per_class - 1)))
    rows = [f"{c.replace(' ', '_')}/{i}.jpg\ta picture of {c} number {i}" for c in names for i in range(per_class)]
    (root / "bayes-hessian-alt" / "captions.tsv").write_text("\n".join(rows) + "\n")
    return root


def test_folders_read_food101_split_and_captions(tmp_path):
    root = _folders(tmp_path)
    ev = labelled_folder(root / "food-101")
    assert len(ev.labels) == 15 and ev.classnames == ["apple pie", "ramen", "sushi"]
    pairs = pairs_folder(root / "bayes-hessian-alt")
    assert pairs.captions[0] == "a picture of apple pie number 0" and len(pairs.captions) == 18
    assert pairs_folder(root / "bayes-hessian").captions[0] == "a photo of a apple pie."


def test_bvl_gpu_evaluators_with_stand_ins(tmp_path, monkeypatch):
    root = _folders(tmp_path / "data")
    monkeypatch.setenv("MCDO_DATA_ROOT", str(root))
    monkeypatch.setenv("MCDO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    ctx = engine.Context(progress=False, pretrained=False, require_gpu=False, batch_size=8, n_boot=50,
                         stand_ins={"clip-vit-b-32-laion2b": "tiny-clip", "siglip-vit-b-16": "tiny-siglip"})
    from mcdo.verify.bvl.gpu import SETTINGS

    all_recs = engine.evaluate("BVL-03", "gpu", ctx)
    recs = {r.model: r for r in all_recs if not r.variant}
    assert set(recs) == {"clip-vit-b-32-laion2b", "siglip-vit-b-16"}
    # the notebook's table for its own model, baseline first: a random stand-in's baseline is not the notebook's
    (anchor,) = [r for r in all_recs if r.variant == "notebook anchor"]
    assert anchor.model == "clip-vit-b-32-laion2b" and anchor.verdict == "not reproduced"
    assert anchor.reason.startswith("the deterministic baseline differs") and "0.80083" in anchor.expected
    assert set(anchor.details) == {"baseline_accuracy", "baseline_ece20", "accuracy", "nlpd", "ece20"}
    for model, r in recs.items():
        assert r.verdict != "skipped", r.reason
        cal = ctx.memo[f"bvl-gpu/{model}/bayes-hessian"]
        # direct computation: deterministic softmax of scaled cosines from the encoder itself
        enc = ctx.memo[next(k for k in ctx.memo if k.startswith(f"model/{model}/"))]
        ev = labelled_folder(root / "food-101")
        from mcdo.bayes.data import projection_image_features, projection_text_features

        f = torch.nn.functional.normalize(projection_image_features(enc, ev.images).embeddings.double(), dim=-1)
        prompts = [SETTINGS["prompt"].format(c.replace(" ", "_")) for c in ev.classnames]  # torchvision's names
        assert prompts[0] == "An image of a apple_pie"  # the authors' prompt and class names
        t = torch.nn.functional.normalize(projection_text_features(enc, prompts).embeddings.double(), dim=-1)
        det = torch.softmax(enc.logit_scale * f @ t.T, -1).numpy()
        np.testing.assert_allclose(cal.prediction.deterministic.numpy(), det, atol=1e-6)
        direct = metrics.compare(det, cal.prediction.probs.numpy(), ev.labels, n_boot=50)
        assert r.measured == pytest.approx(direct["ece20"]["change"], abs=1e-6)  # det agrees to 1e-6 above
        assert r.config["stand_in"] and r.config["n_pairs"] == 18 and r.config["posterior"] == "bayesvlm"
    for claim in ("BVL-04", "BVL-05", "BVL-06"):
        for r in engine.evaluate(claim, "gpu", ctx):
            assert r.verdict != "skipped", r.reason
    alt = ctx.memo["bvl-gpu/clip-vit-b-32-laion2b/bayes-hessian-alt"]
    assert alt.config["hessian"] == "bayes-hessian-alt"


def test_bvl_gpu_skips_name_everything_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("MCDO_DATA_ROOT", str(tmp_path))
    monkeypatch.delenv("MCDO_RECORDED_DIR", raising=False)
    recs = engine.evaluate("BVL-03", "gpu", engine.Context(progress=False))
    for r in recs:
        assert r.verdict == "skipped"
        assert "food-101" in r.reason and "bayes-hessian" in r.reason
        if not torch.cuda.is_available():
            assert "CUDA GPU" in r.reason
    # with the authors' published factors at hand, CLIP B-32 needs no Hessian folder (issue 21)
    recorded = tmp_path / "recorded"
    (recorded / "exp0_nested_mc").mkdir(parents=True)
    (recorded / "bayesvlm" / "clip-vit-b-32-laion2b").mkdir(parents=True)
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(recorded))
    recs = {r.model: r for r in engine.evaluate("BVL-03", "gpu", engine.Context(progress=False))}
    assert "bayes-hessian" not in recs["clip-vit-b-32-laion2b"].reason
    assert "bayes-hessian" in recs["siglip-vit-b-16"].reason


def test_mcdo_bayes_command(tmp_path, capsys):
    from mcdo.cli import main

    root = _folders(tmp_path / "data")
    rc = main(["bayes", "--model", "tiny-clip", "--random-weights", "--hessian-data", str(root / "bayes-hessian"),
               "--eval-data", str(root / "food-101"), "--out", str(tmp_path / "out"), "--quiet", "--class-batch", "9"])
    out = capsys.readouterr().out
    assert rc == 0 and "ece20" in out and len(list((tmp_path / "out").glob("tiny-clip-random-*-reliability.png"))) == 1
    # issue 21: the authors' posterior by default, and every record says which, with N, lambda and the prompt
    import json

    (report,) = (tmp_path / "out").glob("tiny-clip-random-*.json")
    config = json.loads(report.read_text())["config"]
    assert config["posterior"] == "bayesvlm" and config["multiplier"] == 10.0
    assert config["N_image"] == 10 * config["n_pairs"] and config["prompt"] == "a photo of a {}."
    assert "posterior bayesvlm" in out and "N = " in out
    rc = main(["bayes", "--model", "tiny-clip", "--random-weights", "--hessian-data", str(root / "bayes-hessian"),
               "--eval-data", str(root / "food-101"), "--out", str(tmp_path / "out"), "--quiet", "--class-batch", "9",
               "--posterior", "laplace", "--pseudo-count", "2"])
    assert rc == 0 and len(list((tmp_path / "out").glob("tiny-clip-random-*.json"))) == 2  # both kept
    (other,) = [p for p in (tmp_path / "out").glob("tiny-clip-random-*.json") if p != report]
    c2 = json.loads(other.read_text())["config"]
    assert c2["posterior"] == "laplace" and c2["N_image"] == 2 * c2["n_pairs"] and c2["probit_bias"]
    capsys.readouterr()
    assert main(["bayes", "--model", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["bayes", "--model", "tiny-clip", "--random-weights", "--eval-data", str(tmp_path / "none")]) == 2
    assert "--eval-data" in (err := capsys.readouterr().err) and "no such folder" in err
    (tmp_path / "empty").mkdir()  # a folder that exists but holds no classes: named by the reader
    assert main(["bayes", "--model", "tiny-clip", "--random-weights", "--eval-data", str(tmp_path / "empty")]) == 2
    assert "labelled image folder" in capsys.readouterr().err


def test_overhead_is_counted_in_operations_not_seconds():
    """BVL-04's figure is an operation count (issue 20: a timed verdict depended on the machine's load): the
    counter gives a matrix product's closed form 2nkm under no_grad, and refuses inference_mode (where it would
    see nothing)."""
    import torch

    from mcdo.flops import count_flops

    a, b = torch.randn(7, 5), torch.randn(5, 3)
    with torch.no_grad():
        n, out = count_flops(lambda: a @ b)
    assert n == 2 * 7 * 5 * 3 and out.shape == (7, 3)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        count_flops(lambda: a @ b)
    assert count_flops(lambda: (a @ b) @ torch.randn(3, 4))[0] == 2 * 7 * 5 * 3 + 2 * 7 * 3 * 4


@pytest.mark.parametrize("args,named", [
    (["--class-batch", "-1"], "--class-batch"), (["--pseudo-count", "0"], "--pseudo-count"),
    (["--pseudo-count", "-5"], "--pseudo-count"), (["--bins", "0"], "--bins"), (["--prompt", "a photo"], "--prompt"),
    (["--bs", "0"], "--bs")], ids=["class-batch", "pseudo-count-0", "pseudo-count-neg", "bins", "prompt", "bs"])
def test_options_that_would_report_perfect_calibration_are_refused(args, named, capsys):
    """Issue 20: a zeroed Hessian (class batch -1, pseudo-count 0), zero bins or a prompt without {} gave uniform
    probabilities or ECE 0, read as perfect calibration."""
    from mcdo.cli import main

    assert main(["bayes", "--model", "tiny-clip", "--random-weights", *args]) == 2
    assert named in capsys.readouterr().err


def test_a_one_class_or_empty_class_folder_is_refused(tmp_path, capsys):
    from PIL import Image

    from mcdo.cli import main

    one = tmp_path / "one"
    (one / "cat").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(one / "cat" / "0.png")
    assert main(["bayes", "--model", "tiny-clip", "--random-weights", "--eval-data", str(one)]) == 2
    assert "1 class" in capsys.readouterr().err
    (one / "dog").mkdir()
    assert main(["bayes", "--model", "tiny-clip", "--random-weights", "--eval-data", str(one)]) == 2
    assert "no image: dog" in capsys.readouterr().err


def test_an_interrupted_hessian_pass_resumes_from_its_last_piece(monkeypatch, tmp_path):
    """Issue 20: mcdo bayes resumed nothing. The Hessian features are cached piece by piece: killed after the
    first piece, the rerun computes only the rest, and the features equal an uninterrupted pass."""
    from mcdo.bayes import data as D
    from mcdo.bayes import pipeline
    from mcdo.testing import random_encoder

    monkeypatch.setenv("MCDO_CACHE_DIR", str(tmp_path / "cache"))
    enc = random_encoder("tiny-clip", seed=0)
    pairs = D.world_pairs(40, seed=3)
    whole = pipeline.hessian_features(enc, pairs, batch_size=8, chunk=1000)  # one piece: the reference
    real, calls, armed = pipeline.projection_image_features, [], [True]

    def dies_on_the_second_piece(*a, **k):
        calls.append(1)
        if armed[0] and len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(pipeline, "projection_image_features", dies_on_the_second_piece)
    with pytest.raises(KeyboardInterrupt):
        pipeline.hessian_features(enc, pairs, batch_size=8, chunk=16)
    calls.clear()
    armed[0] = False
    img, txt = pipeline.hessian_features(enc, pairs, batch_size=8, chunk=16)
    assert len(calls) == 2  # pieces 16..31 and 32..39 only; piece 0..15 came from the cache
    for a, b in zip((img, txt), whole):
        torch.testing.assert_close(a.embeddings, b.embeddings, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a.activations, b.activations, rtol=1e-5, atol=1e-6)


def test_published_factors_command(tmp_path, capsys, monkeypatch):
    """``mcdo bayes --factors DIR`` on factors written in the authors' format (sums / sqrt(n), a prior-precision
    JSON): both posteriors' lambdas and per-direction variances, written beside; a damaged file is named."""
    import json
    import math

    import torch

    from mcdo.bayes import published
    from mcdo.cli import main

    rng = np.random.default_rng(0)
    n, shapes = 50, {"img": (3, 4), "txt": (3, 3)}
    monkeypatch.setitem(published.PUBLISHED, "toy", dict(pairs=n, shape=shapes, script_init={"img": 8.0, "txt": 4.0}))
    folder = tmp_path / "toy"
    folder.mkdir()
    for mod, (d, p) in shapes.items():
        for side, k in (("A", p), ("B", d)):
            m = rng.normal(size=(k, k))
            torch.save(torch.tensor(m @ m.T + k * np.eye(k), dtype=torch.float32) * n / math.sqrt(n),
                       folder / f"{side}_{mod}_analytic.pt")
    (folder / "prior_precision_analytic.json").write_text(json.dumps(dict(lambda_img=20.0, n_img=1.0,
                                                                          lambda_txt=15.0, n_txt=1.0)))
    assert main(["bayes", "--factors", str(folder), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| image | 20.000" in out and "| text | 15.000" in out and "laplace / bayesvlm" in out
    summary = json.loads((tmp_path / "out" / "published-toy-x10.json").read_text())["summary"]
    assert summary["image"]["count_bayesvlm"] == 10 * n and summary["image"]["count_laplace"] == n
    (folder / "B_txt_analytic.pt").write_bytes(b"not a tensor")
    assert main(["bayes", "--factors", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert "B_txt_analytic.pt" in capsys.readouterr().err


def test_bvl_gpu_uses_the_published_factors_for_clip_b32(tmp_path, monkeypatch):
    """Issue 21: BVL-03 on CLIP B-32 (the real architecture, random weights) takes its Hessian from the authors'
    published factors, no Hessian folder needed, in the authors' posterior (N = 10 x 327,680)."""
    import os

    recorded = os.environ.get("MCDO_RECORDED_DIR")
    if not recorded or not (Path(recorded) / "bayesvlm" / "clip-vit-b-32-laion2b").is_dir():
        pytest.skip("no published BayesVLM factors (set MCDO_RECORDED_DIR)")
    root = _folders(tmp_path / "data")
    monkeypatch.setenv("MCDO_DATA_ROOT", str(root))
    monkeypatch.setenv("MCDO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    ctx = engine.Context(progress=False, pretrained=False, require_gpu=False, batch_size=8, n_boot=50,
                         stand_ins={"siglip-vit-b-16": "tiny-siglip"})
    recs = {(r.model, r.variant): r for r in engine.evaluate("BVL-03", "gpu", ctx)}
    r = recs[("clip-vit-b-32-laion2b", "")]
    assert r.verdict != "skipped", r.reason
    assert r.config["hessian"].startswith("LAION-400M") and r.config["n_pairs"] == 327680
    assert r.config["N_image"] == 10 * 327680 and "hessian" not in r.departures
    assert ("clip-vit-b-32-laion2b", "notebook anchor") in recs


def test_mcdo_bayes_limit_is_a_smoke_run_that_says_so(tmp_path, capsys):
    """``mcdo bayes --limit N`` (issue 33): N Hessian pairs and N evaluation images, the chain run, the console
    and the record saying smoke run."""
    import json

    from mcdo.cli import main

    root = _folders(tmp_path / "data")
    rc = main(["bayes", "--model", "tiny-clip", "--random-weights", "--hessian-data", str(root / "bayes-hessian"),
               "--eval-data", str(root / "food-101"), "--out", str(tmp_path / "out"), "--quiet", "--class-batch", "9",
               "--limit", "4"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.startswith("smoke run (--limit 4)")
    (report,) = (tmp_path / "out").glob("tiny-clip-random-*.json")
    config = json.loads(report.read_text())["config"]
    assert config["limit"] == 4 and config["n_pairs"] == 4
