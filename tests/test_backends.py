"""Both backends end to end, text included: a tiny SigLIP through open_clip and through transformers, the latter
loaded with ``from_pretrained`` from a local checkpoint whose sentencepiece tokenizer is trained here."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mcdo import oodbench
from mcdo.models import encoder, registry
from mcdo.models.factory import load
from mcdo.testing import save_tiny_siglip_hf
from mcdo.zeroshot import classifier

pytestmark = [pytest.mark.arch, pytest.mark.usefixtures("isolated_cache")]


@pytest.fixture(scope="module")
def local_checkpoint(tmp_path_factory):
    return save_tiny_siglip_hf(tmp_path_factory.mktemp("tiny-siglip-hf"))


@pytest.fixture
def local_spec(local_checkpoint, monkeypatch):
    """A registered model whose transformers checkpoint is the local folder (no hub, no download)."""
    spec = dataclasses.replace(registry.REGISTRY["tiny-siglip"], name="tiny-siglip-local", tiny=False,
                               hf_id=str(local_checkpoint))
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    return spec


def test_transformers_backend_encodes_text(local_spec):
    """transformers 5 returns an output object from get_text_features: the encoder returns the tensor."""
    enc = load(local_spec.name, backend="hf")
    assert enc.backend == "hf" and encoder.weights_present(local_spec.name, "hf")
    ids = enc.tokenizer(["a photo of a goldfish", "a photo of a tench"])
    assert ids.shape == (2, 64)  # SigLIP's padding to 64 tokens
    t = enc.encode_text(ids)
    assert isinstance(t, torch.Tensor) and t.shape == (2, 64) and torch.isfinite(t).all()
    head = classifier(enc, ["goldfish", "tench", "great white shark"], "photo")
    assert head.text.shape == (3, 64) and np.allclose(np.linalg.norm(head.text, axis=1), 1, atol=1e-5)
    assert head.bias is not None
    # the same text through the model's own call, by hand
    with torch.no_grad():
        direct = enc.model.text_model(input_ids=ids).pooler_output
    torch.testing.assert_close(t, direct)


@pytest.fixture
def no_tokenizer(local_spec, local_checkpoint, tmp_path, monkeypatch):
    """``tiny-siglip-broken``: the local checkpoint without its tokenizer files."""
    import shutil

    broken = tmp_path / "no-tokenizer"
    shutil.copytree(local_checkpoint, broken)
    for f in ("tokenizer_config.json", "spiece.model"):
        (broken / f).unlink()
    monkeypatch.setitem(registry.REGISTRY, "tiny-siglip-broken",
                        dataclasses.replace(local_spec, name="tiny-siglip-broken", hf_id=str(broken)))
    return broken


def test_missing_tokenizer_is_named_with_its_reason(no_tokenizer):
    enc = load("tiny-siglip-broken", backend="hf")
    with pytest.raises(encoder.MissingWeights, match="tokenizer of tiny-siglip-broken") as e:
        enc.tokenizer(["x"])
    assert "Hugging Face cache" in str(e.value)
    from mcdo.models.files import needed_files

    tok = [n for n in needed_files(registry.REGISTRY["tiny-siglip-broken"], "hf") if n.what == "tokenizer"]
    assert tok and not tok[0].present


@pytest.mark.parametrize("backend", ["open_clip", "hf"])
def test_both_backends_run_the_ood_pipeline(backend, local_spec, data_root):
    """Zero-shot accuracy and the OOD table through each backend, and the result says which ran."""
    torch.manual_seed(0)
    enc = (load("tiny-siglip", pretrained=False) if backend == "open_clip" else load(local_spec.name, backend="hf"))
    res = oodbench.run(enc, data_root=data_root, batch_size=4, progress=False, accuracy_templates=("mcm",))
    assert res.config["backend"] == backend and res.bias is not None
    table = res.table()
    assert set(table["sigmoid"]) == {"iNaturalist", "SUN", "Places", "Textures", "mean"}
    assert all(0 <= row["auroc"] <= 1 for row in table["sigmoid"].values())
    assert 0 <= res.accuracy["mcm"] <= 1 and res.n_id == 12


def test_a_missing_tokenizer_stops_a_text_claim_before_any_mc_pass(no_tokenizer, data_root, monkeypatch):
    """MCD-09 needs text: with the tokenizer files absent it skips naming them, and no MC pass was computed."""
    import os

    from mcdo import env
    from mcdo.verify import engine
    from mcdo.verify.records import SKIPPED

    broken = no_tokenizer
    monkeypatch.setenv("MCDO_DATA_ROOT", str(data_root))
    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    monkeypatch.setenv("MCDO_SIGLIP2_BACKEND", "hf")
    monkeypatch.delenv("MCDO_RECORDED_DIR", raising=False)
    ctx = engine.Context(n_boot=20, progress=False, require_gpu=False,
                         stand_ins={"siglip2-vit-b-16": "tiny-siglip-broken"})
    (r,) = engine.evaluate("MCD-09", "gpu", ctx)
    assert r.verdict == SKIPPED and "tokenizer" in r.reason and str(broken) in r.reason
    samples = env.cache_dir() / "samples"
    assert not samples.exists() or not os.listdir(samples)
    (snr,) = engine.evaluate("MCD-05", "gpu", ctx)  # needs no text: runs with the same model
    assert snr.verdict != SKIPPED and snr.config["backend"] == "hf"
