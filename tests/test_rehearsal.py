"""The first GPU night rehearsed on a CPU (issue 33): a Hugging Face cache holding what a real download leaves for
the registry's base-size models (random weights of the real architectures in the real files and repos, tokenizers
trained here in the hub's formats, no marker only an online load writes; ``mcdo.testing.hub_model``) and every data
set in its documented layout (``make_gpu_data_root``), the GPU waived by ``MCDO_ALLOW_CPU=1``.

Built and loaded from that layout: CLIP B-32 (openai and LAION-2B), CLIP B-16, SigLIP B-16, SigLIP2 B-16 and the
fine-tuned CLIP B-16 classifier (timm). Carried end to end on them (load, MC passes, statistics, record, report) by
``mcdo claims --tier gpu --limit 2``: 27 of the 29 gpu claims, MCD-03..13, MCD-16, MCD-18, OOD-03..08, BVL-03..06
and ICL-01..04; MCD-16 with SigLIP2's one fabricated weight set written in both layouts (open_clip's and
transformers', ``hub_hf_port``), whose features must then agree. Their ImageNet-1k zero-shot heads (1000 classes x 1
to 80 prompts: one to eighty minutes per model on a 2-core CPU) are written into the cache as a previous night leaves
them (``mcdo.testing.warm_text_heads``); everything from the cached head on is real, and the tokenizers and text
towers stay exercised by the claims whose text is not cached (BVL-03..06, MCD-16, OOD's small heads). PRB-04/05 run
only the models too large to build at CI's size (CLIP L-14-336, the three SO400M: 0.4 to 1.1 billion parameters,
a minute or more per image batch on this CPU), which are checked for configuration only: the repo and file open_clip
resolves for them, the input size and width of the architecture it builds, and their tokenizers loading offline from
the hub layout; PRB-04/05's chains run on random-weight stand-ins at ``--limit 2`` (``tests/test_smoke_run.py``).
"""
from __future__ import annotations

import json

import pytest

from mcdo.models.classifier import FINETUNED_CLIP

pytestmark = [pytest.mark.rehearsal, pytest.mark.slow]

BUILT = ("clip-vit-b-32", "clip-vit-b-32-laion2b", "clip-vit-b-16", "siglip-vit-b-16", "siglip2-vit-b-16")
CONFIG_ONLY = ("clip-vit-l-14-336", "siglip-so400m-14-384", "siglip2-so400m-14-378", "siglip2-so400m-16-384")
CARRIED = ("MCD-03", "MCD-04", "MCD-05", "MCD-06", "MCD-07", "MCD-08", "MCD-09", "MCD-10", "MCD-11", "MCD-12",
           "MCD-13", "MCD-16", "MCD-18", "OOD-03", "OOD-04", "OOD-05", "OOD-06", "OOD-07", "OOD-08",
           "BVL-03", "BVL-04", "BVL-05", "BVL-06", "ICL-01", "ICL-02", "ICL-03", "ICL-04")
NOT_BUILT = ("PRB-04", "PRB-05")  # their models are CONFIG_ONLY
NIGHTLY = ("BVL-04", "ICL-02", "MCD-07", "OOD-08")  # one per family, for the nightly workflow's steps
WARM_HEADS = ("clip-vit-b-32", "clip-vit-b-16", "siglip-vit-b-16", "siglip2-vit-b-16")  # ImageNet-1k heads cached


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    """The user's machine: a Hugging Face cache filled as the hub leaves it, and the data root."""
    from mcdo.testing import hub_hf_port, hub_model, hub_tokenizer, make_gpu_data_root

    base = tmp_path_factory.mktemp("rehearsal")
    mp = pytest.MonkeyPatch()
    from huggingface_hub import constants

    mp.setenv("HF_HOME", str(base / "hf"))
    mp.setattr(constants, "HF_HUB_CACHE", str(base / "hf" / "hub"))
    snapshots = {}
    for name in BUILT:
        snapshots[name] = hub_model(name, base / "work")
    snapshots[FINETUNED_CLIP] = hub_model(f"timm:{FINETUNED_CLIP}", base / "work")
    snapshots["siglip2-vit-b-16 (transformers)"] = hub_hf_port("siglip2-vit-b-16", base / "work")
    import open_clip

    from mcdo.models.registry import REGISTRY

    for name in CONFIG_ONLY:  # their tokenizers only (the weights would be 1.7 to 3.5 GB each)
        tok = (open_clip.get_model_config(REGISTRY[name].arch_name) or {}).get("text_cfg", {}).get("hf_tokenizer_name")
        if tok:
            hub_tokenizer(tok, base / "work")
    data = make_gpu_data_root(base / "data")
    for k, v in dict(MCDO_DATA_ROOT=str(data), MCDO_ALLOW_CPU="1", MCDO_DEVICE="cpu",
                     MCDO_CACHE_DIR=str(base / "cache")).items():
        mp.setenv(k, v)
    for k in ("MCDO_RECORDED_DIR", "MCDO_SIGLIP2_BACKEND", "MCDO_ALLOW_DOWNLOAD"):
        mp.delenv(k, raising=False)
    from mcdo.models import files

    files._loads.cache_clear()
    from mcdo.testing import warm_text_heads

    warm_text_heads(list(WARM_HEADS))
    yield dict(base=base, data=data, snapshots=snapshots)
    mp.undo()
    files._loads.cache_clear()


def test_every_gpu_claim_is_carried_or_named_as_not_built():
    from mcdo.verify import catalog

    assert {c for c, _ in catalog.pairs(("gpu",))} == set(CARRIED) | set(NOT_BUILT)


def test_doctor_finds_every_built_model_and_gates_the_carried_claims(machine, capsys):
    from mcdo.cli import main

    assert main(["doctor", "--require", "gpu", "--id", NOT_BUILT[0]]) != 0  # its models' weights are not here
    capsys.readouterr()

    assert main(["doctor", "--require", "gpu", *(a for c in CARRIED for a in ("--id", c))]) == 0
    text = capsys.readouterr().out
    models = text.split("## Models", 1)[1].split("## Data", 1)[0]
    for name in BUILT:
        assert f"ok      {name} [open_clip]" in models, models
    assert "missing: tokenizer" not in models.split("siglip2-so400m-14-378")[0]  # SO400M-14's tokenizer is SigLIP B-16's
    for name in CONFIG_ONLY:
        assert f"MISSING {name} [open_clip]" in models  # weights not built here: named, with their repo
    data = text.split("## Data", 1)[1].split("## gpu-tier claims", 1)[0]
    assert "MISSING" not in data, data
    print("\n".join(text.splitlines()[:40]))  # the note's excerpt (pytest -s)


@pytest.mark.parametrize("name", BUILT)
def test_each_built_model_loads_offline_from_the_hub_layout(machine, name):
    """The real front door (``models.load``) in offline mode: open_clip's weights and, for SigLIP / SigLIP2, the
    tokenizer from the cache; the identity names the file the hub layout holds, byte for byte."""
    import hashlib
    from pathlib import Path

    from mcdo.models import load
    from mcdo.models.identity import weights_identity

    enc = load(name, progress=False)
    ident = weights_identity(enc)
    blob = Path(ident["file"]).resolve()
    assert ident["revision"] == "a" * 40 and blob.parent.name == "blobs"
    assert ident["file_sha256"] == blob.name == hashlib.sha256(blob.read_bytes()).hexdigest()
    tokens = enc.tokenizer(["a photo of a goldfish."])
    assert tokens.shape[0] == 1 and enc.encode_text(tokens).shape == (1, enc.spec.embed_dim)


def test_the_finetuned_classifier_loads_from_its_weights_file(machine):
    from mcdo.models.classifier import load_classifier
    from mcdo.models.identity import weights_identity

    ident = weights_identity(load_classifier(FINETUNED_CLIP))
    assert ident["repo"] == f"timm/{FINETUNED_CLIP}" and ident["file"].endswith("model.safetensors")


@pytest.mark.parametrize("name", CONFIG_ONLY)
def test_large_models_resolve_to_their_hub_files(name):
    """Configuration only: the repo and file the offline load will look for, and the input size and embedding
    dim the registry states against the architecture open_clip builds (on the meta device: no memory)."""
    import open_clip
    import torch

    from mcdo.models.files import needed_files
    from mcdo.models.registry import REGISTRY

    spec = REGISTRY[name]
    [weights] = [n for n in needed_files(spec, "open_clip") if n.what == "weights"]
    assert weights.repo.startswith("timm/") and "open_clip_model.safetensors" in weights.files
    cfg = open_clip.get_model_config(spec.arch_name)
    assert cfg["vision_cfg"]["image_size"] == spec.image_size and cfg["embed_dim"] == spec.embed_dim
    with torch.device("meta"):
        model = open_clip.create_model(spec.arch_name, device="meta")
    assert model.visual.image_size in (spec.image_size, (spec.image_size, spec.image_size))


def test_smoke_run_on_the_real_layout(machine, tmp_path, monkeypatch, capsys):
    """``mcdo claims --tier gpu --limit 2``, as a user runs it before the night, on the rehearsal's files: every
    carried claim completes, every record names the weights that ran (the hub file's SHA-256) and how."""
    from mcdo.cli import main

    monkeypatch.chdir(tmp_path)
    rc = main(["claims", "--tier", "gpu", "--limit", "2", "--quiet", "--no-figures",
               *(a for c in CARRIED for a in ("--id", c))])
    out = capsys.readouterr()
    assert rc == 0, out.err[-3000:]
    records = json.loads((tmp_path / "reports" / "smoke" / "claims.json").read_text())["records"]
    assert {r["id"] for r in records} == set(CARRIED)
    for r in records:
        assert r["verdict"] == "smoke run", (r["id"], r["model"], r["reason"])
        weights = r["config"]["weights"]
        assert weights, (r["id"], r["model"])
        for w in weights.values():
            assert w["file_sha256"] and w["revision"] == "a" * 40 and w["preprocessing"]
        assert r["config"]["precision"] == "float32, TF32 off" and "MCDO_ALLOW_CPU=1" in r["config"]["gpu_waived"]
    [m16] = [r for r in records if r["id"] == "MCD-16"]  # one weight set in both layouts: the features agree
    assert m16["details"]["verdict_had_it_run_whole"] == "reproduced", m16["reason"]
    assert set(m16["config"]["weights"]) == {"siglip2-vit-b-16 (open_clip)", "siglip2-vit-b-16 (hf)"}
    md = (tmp_path / "reports" / "smoke" / "claims.md").read_text()
    print(md.split("\n## ", 1)[0][-6000:])  # the note's excerpt (pytest -s): the headline and the claim x tier grid


def test_the_nightly_workflow_runs_in_order_on_the_rehearsal(machine, tmp_path):
    """The nightly workflow's own ``run`` steps (``.github/workflows/nightly-gpu.yml``), in its order, in bash with
    its ``env`` (the runner's variables pointing at the rehearsal), in a copy of the checkout so its reports land
    there. Departures from the night, each the least that lets a CPU run it: the install step is not run (this test
    runs in the pinned install; ``test_nightly`` checks the pin); every ``mcdo`` and ``pytest claims`` step gets the
    selection of one carried claim per family (``NIGHTLY``; the 27 are carried by the test above) and
    ``--limit 2``; the benchmark step runs one tiny benchmark. (It found that ``pytest claims``, which runs BVL
    before MCD, handed MCD-07 BVL's two-image cut of ImageNet val.) The ``uses`` steps
    (checkout, upload) are GitHub's; the upload's condition is checked in ``test_nightly``. Every step must exit 0,
    with strict mode on as the night has it, and leave its files where the upload step looks."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    yaml = pytest.importorskip("yaml")
    root = Path(__file__).resolve().parents[1]
    job = yaml.safe_load((root / ".github" / "workflows" / "nightly-gpu.yml").read_text())["jobs"]["claims-gpu"]
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    repo = tmp_path / "checkout"
    for f in tracked:
        if (root / f).is_file():
            (repo / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / f, repo / f)
    runner = dict(MCDO_DATA_ROOT=os.environ["MCDO_DATA_ROOT"], MCDO_RECORDED_DIR="", HF_HOME=os.environ["HF_HOME"],
                  MCDO_CACHE_DIR=os.environ["MCDO_CACHE_DIR"], MCDO_BENCH_STORAGE=str(tmp_path / "bench"))
    env = dict(os.environ)
    for k, v in job["env"].items():
        v = str(v)
        for name, value in runner.items():
            v = v.replace(f"${{{{ vars.{name} }}}}", value).replace(f"vars.{name} ||", f"'{value}' ||")
        if "${{" in v:  # "${{ 'x' || '/var/tmp/...' }}": the runner's value wins
            v = v.split("'")[1]
        env[k] = v
    env.pop("MCDO_RECORDED_DIR")
    assert env["MCDO_STRICT"] == "1" and env["BENCH_STORAGE"] == runner["MCDO_BENCH_STORAGE"]
    ids = [a for c in NIGHTLY for a in ("--id", c)]
    ran = []
    for step in job["steps"]:
        if "run" not in step:
            continue
        cmd = step["run"].strip()
        if "pip install" in cmd:
            continue
        if cmd.startswith("mcdo doctor") or cmd.startswith("mcdo claims"):
            cmd += " " + " ".join(ids) + ("" if "--limit" in cmd or "doctor" in cmd else " --limit 2")
        elif cmd.startswith("pytest claims"):
            cmd += " --limit 2 -p no:cacheprovider -k '" + " or ".join(NIGHTLY) + "'"
        elif "nightly_bench.py" in cmd:
            cmd += " -- -k tiny-clip-T1-b1-naive_fp32 -q -p no:randomly"
        done = subprocess.run(["bash", "-eo", "pipefail", "-c", cmd], cwd=repo, env=env, capture_output=True, text=True)
        assert done.returncode == 0, (step["name"], cmd, done.stdout[-3000:], done.stderr[-3000:])
        ran.append(step["name"])
    assert len(ran) == 5, ran  # doctor, smoke, claims, benchmarks, gather
    smoke = json.loads((repo / "reports" / "smoke" / "claims.json").read_text())["records"]
    assert {r["id"] for r in smoke} == set(NIGHTLY)
    assert list((repo / "reports" / "benchmarks").glob("*/0001_*.json"))  # what the upload step carries
    print("\n".join(ran))
