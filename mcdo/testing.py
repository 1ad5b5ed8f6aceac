"""Small real inputs for tests and demos: image folders in the layouts mcdo reads, random-weight encoders.

``make_image_folders(root)`` writes ImageNet-style synset folders (4 classes, 12 images and one corrupt
file) and the four MOS OOD layouts with a few random images each, so that every data path of the
gpu-tier pipelines runs on a CPU in seconds, e.g. ``mcdo ood --model tiny-siglip --random-weights
--data-root <root>``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

IMAGENET_CLASSES = (0, 1, 207, 980)  # positions in the sorted synset list
OOD_COUNTS = {"iNaturalist/images": 5, "SUN/images": 4, "Places/images": 4}


def write_image(path: Path, rng: np.random.Generator, fmt: str = "JPEG") -> None:
    """A random RGB image of 30 to 63 pixels a side."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = rng.integers(30, 64, size=2)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, fmt)


def make_image_folders(root: Path | str, seed: int = 0) -> Path:
    """ImageNet-like synset folders (with one corrupt file, ``broken.JPEG``) and the four MOS layouts."""
    from .data.folders import imagenet_synsets

    root = Path(root)
    rng = np.random.default_rng(seed)
    wnids = imagenet_synsets()
    for k, c in enumerate(IMAGENET_CLASSES):
        for j in range(3):
            write_image(root / "imagenet/val" / wnids[c] / f"ILSVRC2012_val_{3 * k + j + 1:08d}.JPEG", rng)
    (root / "imagenet/val" / wnids[IMAGENET_CLASSES[0]] / "broken.JPEG").write_bytes(b"this is not a JPEG")
    for rel, n in OOD_COUNTS.items():
        png = "Places" in rel
        for j in range(n):
            write_image(root / rel / f"{j}.{'png' if png else 'jpg'}", rng, "PNG" if png else "JPEG")
    for j in range(3):
        write_image(root / "dtd/images" / ("banded" if j < 2 else "zigzagged") / f"t{j}.jpg", rng)
    return root


def random_encoder(name: str, seed: int = 0):
    """A registered architecture with random weights drawn after ``torch.manual_seed(seed)``."""
    import torch

    from .models import load

    torch.manual_seed(seed)
    return load(name, pretrained=False, progress=False)


def save_open_clip_checkpoint(arch: str, path: Path | str, seed: int = 0) -> Path:
    """An open_clip architecture with random weights (drawn after ``torch.manual_seed(seed)``) saved as a local
    checkpoint file: a researcher's own model as ``ARCH:PATH`` would name it, with no download."""
    import open_clip
    import torch

    from .models import registry  # noqa: F401  (registers the toy architectures)

    torch.manual_seed(seed)
    path = Path(path)
    torch.save(open_clip.create_model(arch, pretrained=None).state_dict(), path)
    return path


def flatten_imagenet(src: Path | str, dst: Path | str) -> Path:
    """The ImageNet folders of ``make_image_folders(src)`` in the flat + devkit layout under ``dst``: the same
    ``ILSVRC2012_val_%08d.JPEG`` files in one folder, labelled by a devkit (``meta.mat`` with the ILSVRC ids in
    a shuffled order, an inner node, and the ground-truth file)."""
    from scipy.io import savemat

    from .data.folders import imagenet_synsets, imagenet_val

    src, dst = Path(src), Path(dst)
    wnids = imagenet_synsets()
    order = np.random.default_rng(1).permutation(1000)  # ILSVRC2012_ID k+1 <-> wnids[order[k]]
    ilsvrc_of = {wnids[order[k]]: k + 1 for k in range(1000)}
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height",
              "num_train_images"]
    rows = [(k + 1, wnids[order[k]], "w", "g", 0, np.zeros(0), 0, 1300) for k in range(1000)]
    rows.append((1001, "n00001740", "entity", "g", 3, np.array([1, 2, 3]), 18, 0))  # an inner node: not a class
    devkit = dst / "imagenet/ILSVRC2012_devkit_t12/data"
    devkit.mkdir(parents=True, exist_ok=True)
    savemat(devkit / "meta.mat", {"synsets": np.array(rows, dtype=[(f, "O") for f in fields])})
    ref = imagenet_val(src)
    flat = dst / "imagenet/val"
    flat.mkdir(parents=True, exist_ok=True)
    truth = {}
    for p, y in zip(ref.paths, ref.labels):
        if p.name.startswith("ILSVRC2012_val_"):
            (flat / p.name).write_bytes(p.read_bytes())
            truth[int(p.stem.rsplit("_", 1)[-1])] = ilsvrc_of[wnids[y]]
    lines = [str(truth.get(n, 1)) for n in range(1, max(truth) + 1)]
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("\n".join(lines) + "\n")
    return dst


def make_recorded_run(root: Path | str, models: dict[str, float], Ts: tuple[int, ...] = (16, 64),
                      trials: int | dict[int, int] = 6, n_images: int = 200, seed: int = 0,
                      summaries: dict[str, dict] | None = None) -> Path:
    """A recorded folder laid out as the published run (``exp0_nested_mc/<model>/exp0_trials_T<T>.npz``) with
    synthetic traces whose reliability is known: image i has signal s_i ~ N(1, 0.1^2) and each trial adds noise of
    variance ``noise / T`` (the 1/T law), so SNR(T) = 0.01 T / noise. ``models``: model folder -> noise;
    ``trials``: one count, or a count per T; ``summaries``: model -> its ``exp0_summary.json``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    paths = np.array([f"/data/imagenet/val/n{1440764 + i // 2:08d}/ILSVRC2012_val_{i + 1:08d}.JPEG"
                      for i in range(n_images)])
    for model, noise in models.items():
        folder = root / "exp0_nested_mc" / model
        folder.mkdir(parents=True, exist_ok=True)
        signal = rng.normal(1.0, 0.1, n_images)
        if model in (summaries or {}):
            (folder / "exp0_summary.json").write_text(json.dumps(summaries[model]))
        for T in Ts:
            k = trials[T] if isinstance(trials, dict) else trials
            pre = signal + rng.normal(0.0, np.sqrt(noise / T), (k, n_images))
            np.savez(folder / f"exp0_trials_T{T}.npz", trial_pre=pre.astype(np.float32),
                     trial_post=(0.5 * pre).astype(np.float32), paths=paths)
    return root


def train_siglip_tokenizer(folder: Path | str, vocab_size: int = 512):
    """A SigLIP tokenizer (a sentencepiece unigram model, as SigLIP's) trained here on ImageNet class names in
    CLIP's prompts, saved to ``folder``: the transformers tokenizer path runs with no download."""
    import sentencepiece as spm
    from transformers import SiglipTokenizer

    from .zeroshot import imagenet_classnames, templates

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = imagenet_classnames()
    sentences = [t.format(c) for c in names for t in templates("openai")[:6]]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_prefix=str(folder / "spiece"),
                                   vocab_size=vocab_size, model_type="unigram", pad_id=0, eos_id=1, unk_id=2,
                                   bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
                                   minloglevel=2)
    tok = SiglipTokenizer(vocab_file=str(folder / "spiece.model"), model_max_length=64)
    tok.save_pretrained(folder)
    return tok


def save_tiny_siglip_hf(folder: Path | str, seed: int = 0) -> Path:
    """``tiny-siglip`` for the transformers backend with random weights and a tokenizer trained here, written as
    a local checkpoint (``save_pretrained``): loading it exercises ``from_pretrained`` with no download."""
    import torch
    from transformers import SiglipConfig, SiglipModel

    from .models.registry import TINY_SIGLIP_HF

    folder = Path(folder)
    torch.manual_seed(seed)
    SiglipModel(SiglipConfig(vision_config=TINY_SIGLIP_HF["vision"], text_config=TINY_SIGLIP_HF["text"])
                ).save_pretrained(folder)
    train_siglip_tokenizer(folder, TINY_SIGLIP_HF["text"]["vocab_size"])
    return folder


def make_probe_folder(root: Path | str, ages: tuple[int, ...] = (3, 4, 5, 6), per_class: int = 12, seed: int = 0,
                      broken: bool = True) -> Path:
    """An ordinal image folder in the seed's layout (``root/<age>/*.jpg``, like otolith images by age), the
    images' brightness rising with the age so a probe has something to find, and (``broken``) one corrupt file."""
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for a in ages:
        for j in range(per_class):
            img = np.clip(rng.normal(40 * (a - ages[0]) + 60, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
            (root / str(a)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / str(a) / f"fish{j:03d}.jpg")
    if broken:
        (root / str(ages[0]) / "broken.jpg").write_bytes(b"not a JPEG")
    return root


def hub_repo(repo: str, files: dict[str, Path | str | bytes], commit: str = "a" * 40,
             cache: Path | str | None = None) -> Path:
    """``files`` (name in the repo -> a file or its bytes) laid out as a hub download leaves them in the Hugging
    Face cache (``HF_HUB_CACHE``, or ``cache``): content-addressed blobs, the snapshot's names as relative links to
    them, ``refs/main`` naming the commit; and nothing else (no ``.no_exist`` marker, which only an online
    transformers load writes). Returns the snapshot folder."""
    import hashlib
    import os

    if cache is None:
        from huggingface_hub import constants

        cache = constants.HF_HUB_CACHE
    base = Path(cache) / ("models--" + repo.replace("/", "--"))
    snapshot = base / "snapshots" / commit
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / "main").write_text(commit)
    for name, src in files.items():
        data = src if isinstance(src, bytes) else Path(src).read_bytes()
        blob = base / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.relpath(blob, link.parent), link)
    return snapshot


def hub_tokenizer(repo: str, work: Path | str, vocab_size: int = 512, cache: Path | str | None = None) -> Path:
    """A SigLIP-style sentencepiece tokenizer trained here (``train_siglip_tokenizer``) laid out in the cache as
    ``repo``'s download (``hub_repo``): the files open_clip's and transformers' tokenizer loads read."""
    folder = Path(work) / repo.replace("/", "--")
    train_siglip_tokenizer(folder, vocab_size)
    return hub_repo(repo, {p.name: p for p in folder.iterdir() if p.is_file()}, cache=cache)


def make_food_folders(root: Path | str, names: tuple[str, ...] = ("apple pie", "ramen", "sushi"), per_class: int = 6,
                      seed: int = 0) -> Path:
    """Food-101 as extracted (``food-101/images/<class>/*.jpg`` with ``meta/test.txt``), and the image-caption
    sets of BayesVLM's gpu claims: ``bayes-hessian`` as class folders, ``bayes-hessian-alt`` with a
    ``captions.tsv``."""
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for split in ("food-101/images", "bayes-hessian", "bayes-hessian-alt"):
        for c in names:
            folder = root / split / c.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    meta = root / "food-101" / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "test.txt").write_text("".join(f"{c.replace(' ', '_')}/{i}\n" for c in names for i in range(per_class)))
    rows = [f"{c.replace(' ', '_')}/{i}.jpg\ta picture of {c} number {i}" for c in names for i in range(per_class)]
    (root / "bayes-hessian-alt" / "captions.tsv").write_text("\n".join(rows) + "\n")
    return root


def make_gpu_data_root(root: Path | str, seed: int = 0) -> Path:
    """Every data set a gpu-tier claim reads, a few images each, in the layouts mcdo documents: ImageNet val
    synset folders and the four MOS sets (``make_image_folders``), Food-101 and the BayesVLM caption sets
    (``make_food_folders``), the probe's ``otoliths`` (``make_probe_folder``) and Broden's ``broden1_224``."""
    from .signatures import broden

    root = make_image_folders(root, seed)
    make_food_folders(root, seed=seed)
    make_probe_folder(root / "otoliths", seed=seed)
    broden.write_fake(root, n=24, seed=seed)
    return root


def hub_model(name: str, work: Path | str, seed: int = 0, dtype: str = "float16",
              cache: Path | str | None = None) -> list[Path]:
    """A registered model as a real download leaves it in the Hugging Face cache, with random weights of its real
    architecture (drawn after ``torch.manual_seed(seed)``, stored in ``dtype`` as the published files often are):
    open_clip's weights file (``open_clip_model.safetensors``, or the file the pretrained entry names) and
    ``open_clip_config.json`` in the repo open_clip's pretrained entry names, the tokenizer's files where the
    architecture has a Hugging Face tokenizer (``hub_tokenizer``); for a timm classifier (``timm:<name>`` or the
    fine-tuned CLIP) its ``model.safetensors`` only, as ``timm.create_model(..., pretrained=True)`` fetches it.
    Nothing an online load alone would write. Returns the snapshot folders written."""
    import json

    import torch
    from safetensors.torch import save_file

    from .models.files import timm_repo
    from .models.registry import REGISTRY

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    cast = getattr(torch, dtype)
    torch.manual_seed(seed)
    if name.startswith("timm:") or name not in REGISTRY:
        import timm

        arch = name.removeprefix("timm:")
        state = timm.create_model(arch).state_dict()
        save_file({k: v.to(cast) if v.is_floating_point() else v for k, v in state.items()}, work / "model.safetensors")
        return [hub_repo(timm_repo(arch), {"model.safetensors": work / "model.safetensors"}, cache=cache)]
    import open_clip

    spec = REGISTRY[name]
    cfg = open_clip.get_pretrained_cfg(spec.arch_name, spec.pretrained)
    repo, filename = os.path.split(cfg["hf_hub"])
    model = open_clip.create_model(spec.arch_name)
    state = {k: v.contiguous().to(cast) if v.is_floating_point() else v.contiguous()
             for k, v in model.state_dict().items()}
    del model
    weights = work / f"{name}.safetensors"
    save_file(state, weights)
    del state
    config = {"model_cfg": open_clip.get_model_config(spec.arch_name),
              "preprocess_cfg": {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}}
    snaps = [hub_repo(repo, {filename or "open_clip_model.safetensors": weights,
                             "open_clip_config.json": json.dumps(config).encode()}, cache=cache)]
    weights.unlink()
    tok = (config["model_cfg"] or {}).get("text_cfg", {}).get("hf_tokenizer_name")
    if tok:
        snaps.append(hub_tokenizer(tok, work, cache=cache))
    return snaps


def serve_hub(repos: dict[str, dict[str, bytes]], commit: str = "b" * 40):
    """A stand-in for the Hugging Face hub on loopback (no network): ``repos`` maps a repo id to its files. It
    answers what ``hf_hub_download`` and ``snapshot_download`` ask (a file's metadata and bytes under
    ``/<repo>/resolve/<revision>/<file>``, a repo's commit and files under ``/api/models/<repo>/revision/<rev>``
    and ``/api/models/<repo>/tree/<rev>``)
    and 404 with the hub's error code otherwise. Returns the running server; point ``HF_ENDPOINT`` at
    ``f"http://127.0.0.1:{server.server_port}"`` and call ``server.shutdown()`` when done. ``server.asked`` lists
    the paths requested."""
    import hashlib
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    asked: list[str] = []

    class Hub(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _answer(self, body: bool) -> None:
            path = self.path.split("?", 1)[0]
            asked.append(f"{self.command} {path}")
            if path.startswith("/api/models/") and "/revision/" in path:
                repo = path[len("/api/models/"):].split("/revision/", 1)[0]
                if repo not in repos:
                    return self._missing("RepositoryNotFound", body)
                data = json.dumps({"id": repo, "sha": commit,
                                   "siblings": [{"rfilename": f} for f in sorted(repos[repo])]}).encode()
                return self._send(200, data, {"Content-Type": "application/json"}, body)
            if path.startswith("/api/models/") and "/tree/" in path:
                repo = path[len("/api/models/"):].split("/tree/", 1)[0]
                if repo not in repos:
                    return self._missing("RepositoryNotFound", body)
                data = json.dumps([{"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                                   for f, b in sorted(repos[repo].items())]).encode()
                return self._send(200, data, {"Content-Type": "application/json"}, body)
            if "/resolve/" in path:
                repo, rest = path.lstrip("/").split("/resolve/", 1)
                name = rest.split("/", 1)[1] if "/" in rest else ""
                if repo not in repos:
                    return self._missing("RepositoryNotFound", body)
                if name not in repos[repo]:
                    return self._missing("EntryNotFound", body)
                data = repos[repo][name]
                return self._send(200, data, {"X-Repo-Commit": commit,
                                              "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}, body)
            return self._missing("EntryNotFound", body)

        def _missing(self, code: str, body: bool) -> None:
            self._send(404, b"not found", {"X-Error-Code": code, "X-Error-Message": code}, body)

        def _send(self, status: int, data: bytes, headers: dict, body: bool) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self):  # noqa: N802
            self._answer(False)

        def do_GET(self):  # noqa: N802
            self._answer(True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    server.asked = asked
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def hub_hf_port(name: str, work: Path | str, cache: Path | str | None = None) -> Path:
    """The transformers checkpoint of a registered SigLIP model (its ``hf_id``) in the hub layout, holding the
    vision weights of the open_clip file ``hub_model(name)`` wrote (ported by ``models.port``; the text tower random):
    one fabricated weight set in both layouts, so that the two backends' features agree as the real checkpoints'
    should. Call after ``hub_model(name, ...)``."""
    import torch
    from safetensors.torch import load_file
    from transformers import SiglipConfig, SiglipModel

    from .models.files import needed_files
    from .models.port import openclip_siglip_to_hf
    from .models.registry import REGISTRY

    spec = REGISTRY[name]
    [weights] = [n for n in needed_files(spec, "open_clip") if n.what == "weights" and n.present]
    visual = {k[len("visual."):]: v.float() for k, v in load_file(weights.path).items() if k.startswith("visual.")}
    torch.manual_seed(0)
    model = SiglipModel(SiglipConfig(vision_config=spec.hf_config["vision"], text_config=spec.hf_config["text"]))
    model.vision_model.load_state_dict(openclip_siglip_to_hf(visual, spec.hf_config["vision"]["num_hidden_layers"]),
                                       strict=True)
    folder = Path(work) / f"{name}-hf"
    model.half().save_pretrained(folder)
    return hub_repo(spec.hf_id, {p.name: p for p in folder.iterdir() if p.is_file()}, cache=cache)
