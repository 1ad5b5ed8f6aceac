"""A Hugging Face cache as a hub download leaves it, and a hub on loopback, for the rehearsal of the first GPU
night (``tests/test_rehearsal.py``) and the doctor's tests: random weights of the real architectures saved under the
real file names and repos, tokenizers trained here, nothing an online load alone writes. Also importable from
``mcdo.testing``."""
from __future__ import annotations

import json
import os
from pathlib import Path


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


def hub_tokenizer(repo: str, work: Path | str, vocab_size: int = 512, cache: Path | str | None = None) -> Path:
    """A SigLIP-style sentencepiece tokenizer trained here (``train_siglip_tokenizer``) laid out in the cache as
    ``repo``'s download (``hub_repo``): the files open_clip's and transformers' tokenizer loads read."""
    folder = Path(work) / repo.replace("/", "--")
    train_siglip_tokenizer(folder, vocab_size)
    return hub_repo(repo, {p.name: p for p in folder.iterdir() if p.is_file()}, cache=cache)


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


def warm_text_heads(names: list[str], template_sets: tuple[str, ...] = ("mcm", "photo", "openai", "simple"),
                    seed: int = 0) -> list[Path]:
    """The ImageNet-1k zero-shot heads of the registered models ``names``, written into mcdo's cache
    (``zeroshot.text_cache_path``) as a previous night leaves them: random unit vectors, one per class, for each
    template set. Each model is loaded through the real front door, so the cache key is its loaded weights'
    fingerprint. For a rehearsal on a CPU, where encoding 1000 classes x 80 prompts takes minutes to an hour per
    model; the tokenizer and the text tower stay exercised by every claim whose head is not cached. Returns the
    files written."""
    import numpy as np

    from .io import save_npy_atomic
    from .models import load
    from .zeroshot import imagenet_classnames, text_cache_path

    rng = np.random.default_rng(seed)
    classes, written = imagenet_classnames(), []
    for name in names:
        enc = load(name, progress=False)
        for t in template_sets:
            emb = rng.standard_normal((len(classes), enc.spec.embed_dim)).astype(np.float32)
            path = text_cache_path(enc, classes, t)
            path.parent.mkdir(parents=True, exist_ok=True)
            save_npy_atomic(path, emb / np.linalg.norm(emb, axis=1, keepdims=True))
            written.append(path)
        del enc
    return written


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
