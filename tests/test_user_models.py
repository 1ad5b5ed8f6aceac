"""Issue 23.1-2: a researcher's own model (open_clip checkpoint, transformers folder, timm) in every command and in
the gpu tier of the claims, its family and sizes read off it; ``mcdo ood`` on the researcher's own folders."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mcdo import cli
from mcdo.errors import MissingWeights
from mcdo.model_specs import REGISTRY, get_spec, unknown_model, user_spec
from mcdo.models import load
from mcdo.verify.records import UNDECLARED
from mcdo.testing import make_probe_folder, save_open_clip_checkpoint, save_tiny_siglip_hf

pytestmark = pytest.mark.usefixtures("isolated_cache")


@pytest.mark.parametrize("text,source,arch,tag", [
    ("ViT-B-16:laion2b_s34b_b88k", "open_clip", "ViT-B-16", "laion2b_s34b_b88k"),
    ("ViT-B-16:/models/ft.pt", "open_clip", "ViT-B-16", "/models/ft.pt"),
    ("hf-hub:timm/ViT-B-16-SigLIP", "open_clip", "hf-hub:timm/ViT-B-16-SigLIP", None),
    ("google/siglip-base-patch16-224", "hf", "google/siglip-base-patch16-224", None),
    ("timm:vit_base_patch16_clip_224.openai_ft_in1k", "timm", "vit_base_patch16_clip_224.openai_ft_in1k", None),
], ids=["open_clip-tag", "open_clip-checkpoint", "hf-hub", "transformers", "timm"])
def test_each_form_is_recognised_without_loading(text, source, arch, tag):
    spec = get_spec(text)
    assert (spec.source, spec.arch_name, spec.pretrained) == (source, arch, tag) and not spec.inferred
    assert unknown_model(text) is None


def test_what_names_no_model_is_answered_with_the_forms(tmp_path):
    (tmp_path / "ckpt.pt").write_bytes(b"")
    assert "ARCH:" in unknown_model(str(tmp_path / "ckpt.pt"))  # a bare checkpoint: its architecture is needed
    assert "neither open_clip_config.json" in unknown_model(str(tmp_path))
    msg = unknown_model("clip-vit-b-3")
    assert "did you mean clip-vit-b-32" in msg and "hf-hub:ORG/NAME" in msg and user_spec("clip-vit-b-3") is None
    assert get_spec("tiny-clip") is REGISTRY["tiny-clip"]  # a registry name stays the registry's


@pytest.mark.parametrize("registered", ["tiny-clip", "tiny-siglip"])
def test_an_open_clip_checkpoint_loads_with_its_family_and_sizes_inferred(registered, tmp_path):
    """The inferred spec agrees with the registry's data for the same architecture, and the weights are the file's."""
    ref = REGISTRY[registered]
    ckpt = save_open_clip_checkpoint(ref.arch_name, tmp_path / "mine.pt", seed=3)
    enc = load(f"{ref.arch_name}:{ckpt}")
    s = enc.spec
    assert (s.family, s.loss, s.image_size, s.embed_dim) == (ref.family, ref.loss, ref.image_size, ref.embed_dim)
    saved = torch.load(ckpt)
    assert all(torch.equal(v, saved[k]) for k, v in enc.model.state_dict().items())
    x = torch.randn(2, 3, s.image_size, s.image_size)
    with torch.no_grad():
        assert enc.encode_image(x).shape == (2, s.embed_dim)
        assert enc.encode_text(enc.tokenizer(["a photo of a cat", "a dog"])).shape == (2, s.embed_dim)
    assert (enc.logit_bias is None) == (s.loss == "softmax")


def test_a_transformers_folder_and_a_timm_model_load(tmp_path):
    folder = save_tiny_siglip_hf(tmp_path / "hf")
    enc = load(str(folder))
    assert (enc.backend, enc.spec.family, enc.spec.loss, enc.spec.image_size, enc.spec.embed_dim) == \
        ("hf", "siglip", "sigmoid", 32, 64)
    with torch.no_grad():
        assert enc.encode_text(enc.tokenizer(["a red square"])).shape == (1, 64)
    timm = load("timm:test_vit", pretrained=False)
    assert (timm.spec.family, timm.spec.image_size, timm.spec.embed_dim) == ("timm", 160, 64)
    with pytest.raises(ValueError, match="no text tower"):
        timm.encode_text(None)


def test_a_user_model_that_cannot_load_says_why(tmp_path):
    with pytest.raises(KeyError, match="no architecture 'ViT-B-99'.*close: ViT-B-32"):
        load("ViT-B-99:openai")
    with pytest.raises(MissingWeights, match="no such file"):
        load(f"ViT-B-16:{tmp_path / 'absent.pt'}")
    with pytest.raises(KeyError, match="no pretrained tag 'nope'.*openai"):
        load("ViT-B-16:nope")
    bert = tmp_path / "bert"  # a transformers model that is no dual encoder: refused from its config, no weights read
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
                                                  "num_attention_heads": 2, "intermediate_size": 37}))
    with pytest.raises(ValueError, match="transformers 'bert' model; mcdo reads dual encoders"):
        load(str(bert))
    sigmoid = save_open_clip_checkpoint("mcdo-tiny-sigmoid", tmp_path / "sig.pt")  # a SigLIP's file as a CLIP
    with pytest.raises(ValueError, match="does not load into open_clip's mcdo-tiny-clip.*ARCH:PATH"):
        load(f"mcdo-tiny-clip:{sigmoid}")


def test_mcdo_ood_on_a_local_checkpoint(data_root, tmp_path, capsys):
    ckpt = save_open_clip_checkpoint("mcdo-tiny-clip", tmp_path / "mine.pt")
    out = tmp_path / "out"
    rc = cli.main(["ood", "--model", f"mcdo-tiny-clip:{ckpt}", "--data-root", str(data_root), "--bs", "4",
                   "--workers", "0", "--ood-dataset", "SUN", "--out", str(out), "--quiet", "--n-boot", "20"])
    text = capsys.readouterr().out
    assert rc == 0 and f"mcdo-tiny-clip:{ckpt}: ID top-1" in text and "| SUN |" in text
    rows = [json.loads(ln) for p in out.glob("*.jsonl") for ln in p.read_text().splitlines()]
    assert {r["model"] for r in rows} == {f"mcdo-tiny-clip:{ckpt}"} and {r["score"] for r in rows} == \
        {"softmax", "energy", "max_logit"}  # a softmax model: no sigmoid MCM, inferred from the missing bias


def test_mcdo_ood_on_own_folders_with_near_and_far_groups(tmp_path, capsys):
    """Any labelled folder in, any folders out; OpenOOD's near / far sets averaged apart; every figure recomputed
    from the saved per-image scores with scikit-learn."""
    ident = make_probe_folder(tmp_path / "id", per_class=4)
    near1, near2, far = (make_probe_folder(tmp_path / n, ages=(7,), per_class=5, seed=k, broken=False)
                         for k, n in enumerate(("n1", "n2", "f1"), 1))
    from mcdo.ood_cli import _ood_folder

    odd = tmp_path / "run=3"  # a folder whose name holds "=": taken whole, not split as NAME=DIR
    odd.mkdir()
    assert _ood_folder("far")(str(odd)) == ("far", "run=3", str(odd))
    assert _ood_folder("near")(f"mine={odd}") == ("near", "mine", str(odd))
    names = tmp_path / "names.txt"
    classes = sorted(p.name for p in ident.iterdir() if p.is_dir())
    names.write_text("".join(f"shape {c}\n" for c in classes))
    out = tmp_path / "out"
    rc = cli.main(["ood", "--model", "tiny-siglip", "--random-weights", "--id-data", str(ident), "--classnames",
                   str(names), "--near-ood", f"near-a={near1}", "--near-ood", str(near2), "--far-ood", str(far),
                   "--bs", "8", "--workers", "0", "--out", str(out), "--quiet", "--n-boot", "50", "--save-scores"])
    text = capsys.readouterr().out
    assert rc == 0 and f"on {4 * len(classes)} images ({len(classes)} classes)" in text
    for row in ("| near-a |", "| n2 |", "| f1 |", "| mean |", "| near mean |", "| far mean |"):
        assert row in text
    rows = {(r["score"], r["ood_set"]): r for p in out.glob("*.jsonl") for r in map(json.loads, p.read_text().split(
        "\n")[:-1])}
    table = list(csv.DictReader(next(out.glob("*-scores.csv")).open()))
    for score in ("softmax", "sigmoid"):
        s_id = [float(r[score]) for r in table if r["is_id"] == "1"]
        auroc = {}
        for name in ("near-a", "n2", "f1"):
            s_ood = [float(r[score]) for r in table if r["set"] == name]
            auroc[name] = roc_auc_score([1] * len(s_id) + [0] * len(s_ood), s_id + s_ood)
            assert rows[(score, name)]["auroc"] == pytest.approx(auroc[name])
        assert rows[(score, "near mean")]["auroc"] == pytest.approx((auroc["near-a"] + auroc["n2"]) / 2)
        assert rows[(score, "far mean")]["auroc"] == pytest.approx(auroc["f1"])
        lo, hi = rows[(score, "near mean")]["auroc_ci"]
        assert lo <= rows[(score, "near mean")]["auroc"] <= hi and hi > lo
    assert cli.main(["ood", "--model", "tiny-siglip", "--random-weights", "--id-data", str(ident), "--classnames",
                     str(names), "--ood-dataset", "SUN", "--ood-data", str(far), "--quiet"]) == 2
    names.write_text("just one\n")
    assert cli.main(["ood", "--model", "tiny-siglip", "--random-weights", "--id-data", str(ident), "--classnames",
                     str(names), "--ood-data", str(far), "--quiet", "--out", str(out)]) == 2
    assert "one class name per class" in capsys.readouterr().err


@pytest.mark.arch
def test_the_gate_claim_runs_on_a_user_model_with_its_familys_expectation(data_root, tmp_path, monkeypatch):
    """MCD-07 on the gpu tier with Context.user_model: the seed's configuration, one record for the user's model,
    expected to pass for a sigmoid-loss model and to fail for a softmax one (the families of the claim)."""
    from mcdo.verify import engine

    monkeypatch.setenv("MCDO_DATA_ROOT", str(data_root))
    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    monkeypatch.delenv("MCDO_RECORDED_DIR", raising=False)
    for arch, expected in (("mcdo-tiny-sigmoid", "pass"), ("mcdo-tiny-clip", "fail")):
        spec = f"{arch}:{save_open_clip_checkpoint(arch, tmp_path / f'{arch}.pt')}"
        ctx = engine.Context(n_boot=50, progress=False, require_gpu=False, batch_size=4, user_model=spec)
        (rec,) = engine.evaluate("MCD-07", "gpu", ctx)
        assert rec.model == spec and rec.expected == expected and rec.config["user_model"] is True
        assert rec.config["T"] == 64 and rec.config["trials"] == 10 and rec.details["figures"]["snr"] > 0
        assert rec.config["inferred"]["loss"] == ("sigmoid" if expected == "pass" else "softmax")
        assert all(d["reason"] != UNDECLARED for d in rec.departures.values()), rec.departures


def test_pytest_claims_collects_the_users_models(tmp_path):
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, MCDO_MODELS="mcdo-tiny-clip:/x/mine.pt")

    def collect(*extra):
        return subprocess.run([sys.executable, "-m", "pytest", "claims", "-m", "gpu", "--collect-only", "-q",
                               "-p", "no:cacheprovider", *extra], cwd=root, env=env, capture_output=True, text=True)

    got = collect("--model", "hf-hub:me/my-siglip")
    assert got.returncode == 0, got.stdout + got.stderr
    assert "test_claim_on_user_model[MCD-07-gpu-hf-hub:me/my-siglip]" in got.stdout
    assert "test_claim_on_user_model[MCD-07-gpu-mcdo-tiny-clip:/x/mine.pt]" in got.stdout
    assert "test_mcd_claim[MCD-07-gpu]" in got.stdout  # beside the seed's
    bad = collect("--model", "clip-vit-b-3")
    assert bad.returncode != 0 and "did you mean clip-vit-b-32" in bad.stdout + bad.stderr


def test_mcdo_models_lists_the_registry(capsys):
    assert cli.main(["models"]) == 0
    text = capsys.readouterr().out
    for name, spec in REGISTRY.items():
        assert name in text
    assert "siglip2-so400m-14-378" in text and "ARCH:TAG" in text
    assert np.sum([ln.startswith("| ") for ln in text.splitlines()]) == len(REGISTRY) + 2  # header, rule, one row each
