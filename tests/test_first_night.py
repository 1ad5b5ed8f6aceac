"""What the first night on a GPU machine meets, checked on a CPU (issue 33): files laid out as a hub download
leaves them (``mcdo.testing.hub_repo``: blobs, snapshot links, ``refs/main``, and no marker that only an online
load writes), the doctor as a gate, and the defects a rehearsal of the gpu tier found. Each test here failed on
the code before the fix it names.
"""
from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest

from mcdo.testing import hub_repo, hub_tokenizer

pytestmark = pytest.mark.arch


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    """An empty Hugging Face cache of this test's own (``HF_HOME``; the hub library reads it at import, so its
    cache constant is pointed there too)."""
    from huggingface_hub import constants

    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.delenv("MCDO_ALLOW_DOWNLOAD", raising=False)
    from mcdo.models import files

    if hasattr(files, "_loads"):  # the doctor's memo of tokenizer loads, per snapshot folder
        files._loads.cache_clear()
    return home


# ------------------------------------------------------------------ 1. SigLIP tokenizers, offline, from the cache


def test_siglip_tokenizer_loads_offline_from_a_hub_layout_cache(hf_home, tmp_path):
    """open_clip's own call (``AutoTokenizer.from_pretrained("timm/ViT-B-16-SigLIP")``) fails offline on such a
    cache under transformers 5 (it asks for the config.json timm repos lack); mcdo reads the snapshot folder."""
    from mcdo.models.tokenizer import open_clip_tokenizer, tokenizer_problem

    hub_tokenizer("timm/ViT-B-16-SigLIP", tmp_path / "work")
    assert tokenizer_problem("ViT-B-16-SigLIP") is None
    from mcdo.env import offline

    with offline():
        tokens = open_clip_tokenizer("ViT-B-16-SigLIP")(["a photo of a tench.", "A PHOTO, of a goldfish"])
    assert tokens.shape == (2, 64)  # SigLIP's context length, from open_clip's text config
    # open_clip's canonicalize cleaning (lower case, no punctuation) is applied: the two differ only by the class
    assert (tokens[0] != tokens[1]).sum() <= 4


def test_doctor_counts_a_tokenizer_present_only_when_it_loads(hf_home, tmp_path):
    """Files that exist but do not make a tokenizer (a damaged sentencepiece model) are not 'present'."""
    from mcdo.models.files import needed_files
    from mcdo.models.registry import REGISTRY

    snap = hub_tokenizer("timm/ViT-B-16-SigLIP", tmp_path / "work")
    tok = [n for n in needed_files(REGISTRY["siglip-vit-b-16"], "open_clip") if n.what == "tokenizer"][0]
    assert tok.present
    hub_repo("timm/ViT-B-16-SigLIP", {"spiece.model": b"not a sentencepiece model"}, commit=snap.name)
    from mcdo.models import files

    if hasattr(files, "_loads"):
        files._loads.cache_clear()
    tok = [n for n in needed_files(REGISTRY["siglip-vit-b-16"], "open_clip") if n.what == "tokenizer"][0]
    assert not tok.present and "does not load offline" in tok.note


# ------------------------------------------------------------------ 2. one device per model


def _encoder_functions_with_literal_device():
    """(module, function) of every function in mcdo whose first parameter is an encoder and whose ``device``
    defaults to a literal: a caller that leaves it out feeds a model on a GPU from the CPU."""
    root = Path(__import__("mcdo").__file__).parent
    bad = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.args.args:
                continue
            if node.args.args[0].arg not in ("enc", "encoder"):
                continue
            params = node.args.args[-len(node.args.defaults):] if node.args.defaults else []
            for p, d in zip(params, node.args.defaults):
                if p.arg == "device" and isinstance(d, ast.Constant) and d.value is not None:
                    bad.append(f"{path.relative_to(root)}:{node.name}")
    return bad


def test_no_encoder_function_defaults_its_device():
    """BVL-06 on CUDA crashed: the class texts were tokenised onto the CPU default while the text tower sat on
    the GPU. Every function that takes an encoder now defaults its device to the encoder's own."""
    assert _encoder_functions_with_literal_device() == []


def test_text_features_follow_the_encoder_device(monkeypatch):
    """Left out, the device is the encoder's (a stand-in device name checks the tokens are sent there)."""
    import torch

    from mcdo.bayes import data as D
    from mcdo.models.encoder import Encoder
    from mcdo.testing import random_encoder

    enc = random_encoder("tiny-clip")
    sent = []
    monkeypatch.setattr(Encoder, "device", property(lambda self: "cpu:0"))
    real_to = torch.Tensor.to

    def spy(self, *args, **kw):
        where = args[0] if args else kw.get("device")
        if isinstance(where, (str, torch.device)):  # a move, not a dtype cast
            sent.append(where)
        return real_to(self, *args, **kw)

    monkeypatch.setattr(torch.Tensor, "to", spy)
    D.projection_text_features(enc, ["a photo of a dog", "a photo of a cat"])
    assert sent and set(map(str, sent)) == {"cpu:0"}


# ------------------------------------------------------------------ 3. the fine-tuned classifier, as timm fetches it


def test_timm_classifier_loads_from_its_weights_file_alone(hf_home, tmp_path):
    """``timm.create_model(..., pretrained=True)`` downloads ``model.safetensors`` only; no config.json is needed
    (mcdo asked for one, so ICL-01..04 said the classifier was missing when it was there)."""
    import timm
    import torch
    from safetensors.torch import save_file

    from mcdo.models.classifier import load_classifier, weights_missing

    name = "test_vit.r160_in1k"
    torch.manual_seed(0)
    ref = timm.create_model(name)
    save_file(ref.state_dict(), tmp_path / "model.safetensors")
    assert weights_missing(name)  # nothing cached yet: named
    hub_repo(f"timm/{name}", {"model.safetensors": tmp_path / "model.safetensors"})
    assert weights_missing(name) == []
    enc = load_classifier(name)
    assert torch.equal(enc.model.head.weight, ref.head.weight)


# ------------------------------------------------------------------ 7. the recorded run's images, before any work


def test_doctor_names_recorded_images_that_are_not_under_the_data_root(data_root, tmp_path, monkeypatch):
    from mcdo import doctor
    from mcdo.testing import make_recorded_run
    from mcdo.verify import engine

    monkeypatch.setenv("MCDO_DATA_ROOT", str(data_root))
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(make_recorded_run(tmp_path / "rec", {"clip_b32": 1.0},
                                                                   Ts=(64,), trials=3, n_images=20)))
    ctx = engine.Context(progress=False)
    status = doctor.claim_status(ctx)
    for claim in ("MCD-03", "MCD-07", "MCD-08", "MCD-18"):
        assert "of the recorded run's 20 ImageNet val images" in status[claim], status[claim]
    assert ctx.data_seen["the recorded run's ImageNet val images"].startswith("MISSING")


# ------------------------------------------------------------------ 8. MCD-18 on few errors


def test_error_auroc_survives_resamples_with_one_class():
    """Two errors in ten images: many bootstrap resamples hold no error; they are left out, not fatal."""
    from types import SimpleNamespace

    from mcdo import stats as S
    from mcdo.verify.builders import error_auroc_record
    from mcdo.verify.engine import Context

    rng = np.random.default_rng(3)
    u = rng.normal(size=10)
    err = np.zeros(10, bool)
    err[[2, 7]] = True
    rec = error_auroc_record(Context(n_boot=300), SimpleNamespace(uncertainty=u, error=err, config={}), "gpu", "m")
    assert rec.measured == pytest.approx(S.auroc(u, err))
    lo, hi = rec.ci
    assert 0.0 <= lo <= rec.measured <= hi <= 1.0


# ------------------------------------------------------------------ 9. transforms that pickle; the doctor's data list


@pytest.mark.parametrize("resize", ["model", "bilinear"])
def test_image_transforms_pickle_for_spawned_workers(resize):
    """DataLoader workers under spawn / forkserver (Python 3.14's default on Linux) pickle the transform."""
    from mcdo.testing import random_encoder
    from mcdo.zeroshot import image_transform

    pickle.dumps(image_transform(random_encoder("tiny-clip"), resize))


def test_doctor_data_section_lists_every_data_set_the_gpu_claims_read(monkeypatch, tmp_path):
    from mcdo import doctor
    from mcdo.verify import engine

    monkeypatch.setenv("MCDO_DATA_ROOT", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    ctx = engine.Context(progress=False)
    text = doctor.report(doctor.claim_status(ctx), ctx)
    data = text.split("## Data", 1)[1].split("## gpu-tier claims", 1)[0]
    for name in ("ImageNet-1k val", "iNaturalist", "SUN", "Places", "Textures", "food-101", "bayes-hessian",
                 "bayes-hessian-alt", "otoliths", "Broden"):
        assert name in data, name


# ------------------------------------------------------------------ the doctor as a gate


def test_doctor_require_is_a_gate(data_root, hf_home, monkeypatch, capsys):
    """Exit 1 while a claim asked for lacks something, 0 once it has all (the GPU waived by MCDO_ALLOW_CPU=1),
    2 for a claim id that is not a gpu-tier claim."""
    from mcdo.cli import main

    monkeypatch.setenv("MCDO_DATA_ROOT", str(data_root))
    monkeypatch.delenv("MCDO_RECORDED_DIR", raising=False)
    monkeypatch.delenv("MCDO_ALLOW_CPU", raising=False)
    assert main(["doctor", "--require", "gpu", "--id", "MCD-08"]) == 1
    assert "1 not ready (MCD-08)" in capsys.readouterr().err
    # the weights file where the hub download leaves it (the doctor loads no model: a look-up)
    hub_repo("timm/vit_base_patch32_clip_224.openai", {"open_clip_model.safetensors": b"weights"})
    assert main(["doctor", "--require", "gpu", "--id", "MCD-08"]) == 1  # still no GPU
    monkeypatch.setenv("MCDO_ALLOW_CPU", "1")
    assert main(["doctor", "--require", "gpu", "--id", "MCD-08"]) == 0
    assert "MCD-08  ready" in capsys.readouterr().out
    assert main(["doctor", "--require", "gpu", "--id", "NOPE-1"]) == 2


# ------------------------------------------------------------------ 4, 5. every record says which weights ran, and how


def test_weights_identity_names_the_checkpoint_file_and_its_hash(tmp_path):
    import hashlib

    from mcdo.models import load
    from mcdo.models.identity import weights_identity
    from mcdo.testing import save_open_clip_checkpoint

    path = save_open_clip_checkpoint("mcdo-tiny-clip", tmp_path / "ft.pt")
    ident = weights_identity(load(f"mcdo-tiny-clip:{path}", progress=False))
    assert ident["file"] == str(path) and ident["file_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ident["arch"] == "mcdo-tiny-clip" and ident["image_size"] == 32
    assert "Normalize(mean=" in ident["preprocessing"] and "Resize(" in ident["preprocessing"]
    other = weights_identity(load(f"mcdo-tiny-clip:{save_open_clip_checkpoint('mcdo-tiny-clip', tmp_path / 'b.pt', 1)}",
                                  progress=False))
    assert other["tensors_sha256"] != ident["tensors_sha256"] and other["file_sha256"] != ident["file_sha256"]


def test_weights_identity_reads_the_hub_revision(hf_home, tmp_path):
    """A registry model's file in the hub layout: repo, the snapshot's commit and the file's SHA-256."""
    import hashlib

    import open_clip
    import torch
    from safetensors.torch import save_file

    from mcdo.models.encoder import open_clip_encoder
    from mcdo.models.identity import weights_identity
    from mcdo.models.registry import REGISTRY

    spec = REGISTRY["clip-vit-b-32"]
    torch.manual_seed(0)
    save_file(open_clip.create_model(spec.arch_name).state_dict(), tmp_path / "w.safetensors")
    hub_repo("timm/vit_base_patch32_clip_224.openai", {"open_clip_model.safetensors": tmp_path / "w.safetensors"},
             commit="c" * 40)
    from mcdo.env import offline

    with offline():
        enc = open_clip_encoder(spec, True, "cpu")
    ident = weights_identity(enc)
    assert ident["repo"] == "timm/vit_base_patch32_clip_224.openai" and ident["revision"] == "c" * 40
    assert ident["file_sha256"] == hashlib.sha256((tmp_path / "w.safetensors").read_bytes()).hexdigest()
    assert ident["pretrained"] == "openai" and ident["arch"] == "ViT-B-32-quickgelu"
    assert "interpolation=bicubic" in ident["preprocessing"]


def test_gpu_records_state_weights_precision_and_a_waived_gpu(data_root, monkeypatch):
    """MCD-07 on stand-ins with the GPU waived: each record names the weights that ran (the stand-in's, said to
    stand in), the float32 setting, and that no GPU ran it."""
    from mcdo.verify import engine

    monkeypatch.setenv("MCDO_DATA_ROOT", str(data_root))
    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    monkeypatch.setenv("MCDO_ALLOW_CPU", "1")
    monkeypatch.delenv("MCDO_RECORDED_DIR", raising=False)
    ctx = engine.Context(n_boot=20, progress=False, pretrained=False,
                         stand_ins={"clip-vit-b-32": "tiny-clip", "siglip2-vit-b-16": "tiny-siglip"})
    recs = engine.evaluate("MCD-07", "gpu", ctx)
    assert {r.model for r in recs} == {"clip-vit-b-32", "siglip2-vit-b-16"}
    for r in recs:
        w = r.config["weights"][r.model]
        assert w["stand_in_for"] == r.model and w["name"] == ctx.stand_ins[r.model] and w["file"] is None
        assert len(w["tensors_sha256"]) == 24 and w["preprocessing"]
        assert r.config["precision"] == "float32, TF32 off"
        assert r.config["gpu_waived"].startswith("MCDO_ALLOW_CPU=1")


# ------------------------------------------------------------------ 6. the transformers backend is a departure


def test_siglip2_through_transformers_is_a_declared_departure(data_root, monkeypatch):
    """MCDO_SIGLIP2_BACKEND=hf changes the experiment (other dropout sites, other text cleaning): the record
    lists the backend against the recorded run's open_clip, with its reason, never silently."""
    from mcdo.verify import engine
    from mcdo.verify.records import UNDECLARED

    monkeypatch.setenv("MCDO_DATA_ROOT", str(data_root))
    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    monkeypatch.setenv("MCDO_SIGLIP2_BACKEND", "hf")
    monkeypatch.delenv("MCDO_RECORDED_DIR", raising=False)
    ctx = engine.Context(n_boot=20, progress=False, pretrained=False, require_gpu=False,
                         stand_ins={"siglip2-vit-b-16": "tiny-siglip"})
    [rec] = engine.evaluate("MCD-05", "gpu", ctx)
    dep = rec.departures["backend"]
    assert dep["source"] == "open_clip" and dep["run"] == "hf" and dep["reason"] != UNDECLARED
    assert "74 sites" in dep["reason"] and "dropout_sites" in rec.departures


# ------------------------------------------------------------------ the doctor as a fetcher, against a stand-in hub


def test_doctor_fetch_leaves_a_cache_the_offline_loads_read(hf_home, tmp_path, monkeypatch, capsys):
    """``mcdo doctor --fetch`` against a hub on loopback: what the registry needs and the hub has is fetched (a
    weights file, a tokenizer as a partial snapshot), the doctor then finds it and the tokenizer loads offline;
    what the hub lacks is named; nothing cached is asked for twice."""
    from huggingface_hub import constants

    from mcdo.cli import main
    from mcdo.models.files import needed_files
    from mcdo.models.registry import REGISTRY
    from mcdo.testing import serve_hub, train_siglip_tokenizer

    tok = {p.name: p.read_bytes() for p in train_siglip_tokenizer(tmp_path / "tok") and (tmp_path / "tok").iterdir()}
    hub = serve_hub({"timm/ViT-B-16-SigLIP": {"open_clip_model.safetensors": b"weights", "README.md": b"card",
                                              "open_clip_config.json": b"{}", **tok},
                     "timm/vit_base_patch32_clip_224.openai": {"open_clip_model.safetensors": b"w32"}})
    try:
        endpoint = f"http://127.0.0.1:{hub.server_port}"
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        for name in dir(constants):
            if name.endswith("URL_TEMPLATE"):
                monkeypatch.setattr(constants, name, getattr(constants, name).replace("https://huggingface.co",
                                                                                      endpoint))
        assert main(["doctor", "--fetch"]) == 0
        out = capsys.readouterr().out
        assert "fetched timm/ViT-B-16-SigLIP/open_clip_model.safetensors" in out
        assert "fetched timm/ViT-B-16-SigLIP tokenizer" in out
        assert "fetched timm/vit_base_patch32_clip_224.openai/open_clip_model.safetensors" in out
        assert "NOT FETCHED laion/CLIP-ViT-B-32-laion2B-s34B-b79K weights" in out  # not on this hub: named
        assert "ok      siglip-vit-b-16 [open_clip]" in out  # the report after the fetch, offline
        files = needed_files(REGISTRY["siglip-vit-b-16"], "open_clip")
        assert all(n.present for n in files), [n.describe() for n in files]
        before = len(hub.asked)
        assert main(["doctor", "--fetch"]) == 0
        assert not any("ViT-B-16-SigLIP/" in a for a in hub.asked[before:]), hub.asked[before:]  # cached: not asked again
    finally:
        hub.shutdown()


# ------------------------------------------------------------------ 9. fixed strings follow the settings


def test_record_texts_follow_the_settings():
    """The effective-rank record names the T its samples had (it said 'T=64' whatever ran), and the template
    count the harness configuration states is the template set's own."""
    from types import SimpleNamespace

    from mcdo.verify.builders import erank_record
    from mcdo.verify.engine import Context
    from mcdo.verify.mcd.gpu import openai_template_count
    from mcdo.zeroshot import templates

    rng = np.random.default_rng(0)
    a = SimpleNamespace(effective_rank=rng.uniform(2, 3, 20), config={"T": 16})
    b = SimpleNamespace(effective_rank=rng.uniform(1, 2, 20), config={"T": 16})
    rec = erank_record(Context(n_boot=50), a, b, "gpu", "m", "x", "y")
    assert "(T=16 samples" in rec.reason and "T=64" not in rec.reason
    assert openai_template_count() == len(templates("openai"))
