"""What a gpu-tier record needs, checked before any work: each record skips for what it uses only, a skip names
the Hugging Face repo and files, and ``mcdo doctor`` lists what a machine lacks per model and per claim."""
from __future__ import annotations

import numpy as np
import pytest

from mcdo import cli
from mcdo.verify import catalog, engine, prerequisites
from mcdo.verify.records import INCONCLUSIVE, SKIPPED

pytestmark = [pytest.mark.arch, pytest.mark.usefixtures("isolated_cache")]


def test_accuracy_claims_need_imagenet_only(data_root, tmp_path, monkeypatch):
    """OOD-03 and OOD-05 are ImageNet accuracies: a missing OOD set must not skip them (it skips OOD-04)."""
    only = tmp_path / "only-imagenet"
    (only / "imagenet").mkdir(parents=True)
    (only / "imagenet/val").symlink_to(data_root / "imagenet/val", target_is_directory=True)
    monkeypatch.setenv("MCDO_DATA_ROOT", str(only))
    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    ctx = engine.Context(progress=False, pretrained=False, require_gpu=False, batch_size=4,
                         stand_ins={"clip-vit-b-16": "tiny-clip", "siglip-vit-b-16": "tiny-siglip",
                                    "siglip2-vit-b-16": "tiny-siglip"})
    (acc,) = engine.evaluate("OOD-03", "gpu", ctx)
    assert acc.verdict == INCONCLUSIVE and "12 images of 4 classes" in acc.reason  # measured; a partial val set
    assert all(r.verdict == INCONCLUSIVE for r in engine.evaluate("OOD-05", "gpu", ctx))
    (auroc,) = engine.evaluate("OOD-04", "gpu", ctx)
    assert auroc.verdict == SKIPPED and "iNaturalist" in auroc.reason


def test_prb05_skips_only_the_model_whose_weights_are_missing(data_root, monkeypatch):
    monkeypatch.setenv("MCDO_DATA_ROOT", str(data_root))
    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    real = prerequisites.missing_files

    def one_missing(ctx, model, text=False):
        return ["weights of siglip-so400m-14-384 (made missing by the test)"] if model == "siglip-so400m-14-384" \
            else real(ctx, model, text)

    monkeypatch.setattr(prerequisites, "missing_files", one_missing)
    models = ("clip-vit-l-14-336", "siglip-so400m-14-384", "siglip2-so400m-14-378", "siglip2-so400m-16-384")
    ctx = engine.Context(progress=False, pretrained=False, require_gpu=False, batch_size=4,
                         stand_ins=dict.fromkeys(models, "tiny-clip"))
    recs = {r.model: r for r in engine.evaluate("PRB-05", "gpu", ctx)}
    assert set(recs) == set(models)
    assert recs["siglip-so400m-14-384"].verdict == SKIPPED and "made missing" in recs["siglip-so400m-14-384"].reason
    assert all(recs[m].verdict == INCONCLUSIVE for m in models if m != "siglip-so400m-14-384")


def test_skip_names_repo_file_and_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("MCDO_DATA_ROOT", raising=False)
    (r,) = engine.evaluate("MCD-03", "gpu", engine.Context(progress=False))
    assert r.verdict == SKIPPED
    assert "in timm/vit_base_patch32_clip_224.openai" in r.reason and "open_clip_pytorch_model.bin" in r.reason
    assert "Hugging Face cache" in r.reason and "HF_HOME" in r.reason
    assert "tokenizer" not in r.reason  # MCD-03 needs no text


def test_doctor_lists_models_data_and_claims(data_root, monkeypatch, capsys):
    monkeypatch.setenv("MCDO_DATA_ROOT", str(data_root))
    monkeypatch.delenv("MCDO_RECORDED_DIR", raising=False)
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    for name in ("clip-vit-b-32", "siglip2-vit-b-16", "siglip-so400m-14-384", "clip-vit-l-14-336"):
        assert f"MISSING {name} [open_clip]" in out
    assert "missing: weights: open_clip_model.safetensors or open_clip_pytorch_model.bin in timm/ViT-B-16-SigLIP2" in out
    assert "missing: tokenizer:" in out and "timm/ViT-B-16-SigLIP2" in out
    assert "ok      ImageNet-1k val: 13 files" in out and "4 classes" in out
    assert "ok      SUN: 4 files" in out and "MCDO_RECORDED_DIR" in out
    gpu_claims = [c for c, t in catalog.pairs(("gpu",))]
    for c in gpu_claims:
        assert f"\n{c:7s} " in out
    status = {line[:7].strip(): line[8:] for line in out.splitlines() if line[:4] in {"MCD-", "OOD-", "BVL-", "ICL-",
                                                                                   "PRB-"}}
    # MCD-16 reads SigLIP2 through both backends: both weight sets are named
    assert "timm/ViT-B-16-SigLIP2" in status["MCD-16"] and "google/siglip2-base-patch16-224" in status["MCD-16"]
    assert "openai_ft_in1k" in status["ICL-01"] and "clip-vit-b-16" in status["ICL-01"]  # both models' weights
    assert "broden1_224" in status["ICL-04"] and "otoliths" in status["PRB-04"]
    assert "a CUDA GPU" in status["MCD-03"] and "timm/vit_base_patch32_clip_224.openai" in status["MCD-03"]
    assert "ImageNet" not in status["MCD-03"]  # present here


def test_doctor_says_ready_when_everything_is_there(data_root, monkeypatch):
    """The dry run reaches each evaluator's own check: with stand-ins and data, every implemented claim is ready."""
    from mcdo.doctor import claim_status

    monkeypatch.setenv("MCDO_DATA_ROOT", str(data_root))
    # this fixture has 12 ImageNet images, not the recorded run's 500: with MCDO_RECORDED_DIR set the MC-dropout
    # claims are rightly not ready (tests/test_first_night.py checks that the doctor says so)
    monkeypatch.delenv("MCDO_RECORDED_DIR", raising=False)
    stand = {"clip-vit-b-16": "tiny-clip", "siglip-vit-b-16": "tiny-siglip", "siglip2-vit-b-16": "tiny-siglip",
             "clip-vit-b-32": "tiny-clip", "clip-vit-l-14-336": "tiny-clip", "siglip-so400m-14-384": "tiny-siglip",
             "siglip2-so400m-14-378": "tiny-siglip", "siglip2-so400m-16-384": "tiny-siglip",
             "clip-vit-b-32-laion2b": "tiny-clip", "vit_base_patch16_clip_224.openai_ft_in1k": "test_vit"}
    ctx = engine.Context(progress=False, pretrained=False, require_gpu=False, stand_ins=stand)
    status = claim_status(ctx)
    implemented = {c for c, t in engine.implemented() if t == "gpu"}
    bvl = {c for c in implemented if c.startswith("BVL")}  # need food-101 / bayes-hessian, absent from this fixture
    other = {"ICL-04", "PRB-04"}  # need Broden and a probe folder, absent too
    assert {c for c, v in status.items() if v == "ready"} == implemented - bvl - other
    assert all("food-101" in status[c] and "bayes-hessian" in status[c] for c in bvl)
    assert "Broden" in status["ICL-04"] and "otoliths" in status["PRB-04"]
    assert not ctx.memo.get("mcd-gpu/clip_b32")  # nothing ran


def test_no_text_claims_run_without_a_tokenizer(data_root, monkeypatch):
    """MCD-05 needs no text: a SigLIP2 stand-in with no tokenizer (transformers, random weights) still gives it,
    and says which backend ran and how many dropout sites fired; MCD-09, which needs text, skips naming it."""
    monkeypatch.setenv("MCDO_DATA_ROOT", str(data_root))
    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    monkeypatch.setenv("MCDO_SIGLIP2_BACKEND", "hf")
    monkeypatch.delenv("MCDO_RECORDED_DIR", raising=False)
    ctx = engine.Context(n_boot=20, progress=False, pretrained=False, require_gpu=False,
                         stand_ins={"siglip2-vit-b-16": "tiny-siglip"})
    (snr,) = engine.evaluate("MCD-05", "gpu", ctx)
    assert snr.verdict != SKIPPED and np.isfinite(snr.measured)
    assert snr.config["backend"] == "hf" and snr.config["dropout_sites"]["firing"] > 0
    (rho,) = engine.evaluate("MCD-09", "gpu", ctx)
    assert rho.verdict == SKIPPED and "tokenizer of tiny-siglip" in rho.reason
