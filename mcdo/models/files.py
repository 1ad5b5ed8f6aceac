"""The files a registered model needs on disk, and where they are looked for.

One source for the weight and tokenizer checks that run before any heavy work, for the skip reasons (the
Hugging Face repo and file, the cache folder, ``HF_HOME``), and for ``mcdo doctor``. Nothing is loaded or
downloaded: these are cache look-ups.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from .hub import hub_file  # noqa: F401 (the look-up the loaders share)
from .registry import ModelSpec

OPEN_CLIP_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # open_clip's default names
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class Needed:
    """One file (any of ``files``) of a Hugging Face repo that loading needs: present when one is cached."""

    what: str  # "weights" | "tokenizer"
    repo: str
    files: tuple[str, ...]
    path: str | None  # the cached file found, or None
    note: str = ""

    @property
    def present(self) -> bool:
        return self.path is not None

    def describe(self) -> str:
        files = " or ".join(self.files)
        where = f"in {self.repo}" if not os.path.isdir(self.repo) else f"in the folder {self.repo}"
        return f"{self.what}: {files} {where}" + (f" ({self.note})" if self.note else "")


def hf_cache() -> str:
    """The folder the Hugging Face cache is read from (``HF_HUB_CACHE``, else ``HF_HOME``/hub)."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def where_hint() -> str:
    """Where files are looked for and how to bring them, for messages."""
    home = os.environ.get("HF_HOME")
    return (f"looked in the Hugging Face cache {hf_cache()}" + (f" (HF_HOME={home})" if home else " (HF_HOME unset)")
            + "; fetch them once with MCDO_ALLOW_DOWNLOAD=1 on a machine with network, or copy that cache here "
            "and point HF_HOME at it")


def timm_repo(name: str) -> str:
    """The Hugging Face repo timm loads ``name``'s pretrained weights from (its pretrained config's
    ``hf_hub_id``; ``timm/<name>`` when timm does not know the name). timm reads only the weights file from it
    (``model.safetensors``, else ``pytorch_model.bin``): no ``config.json`` is downloaded or needed."""
    try:
        import timm

        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001  (an unknown name: said by the loader)
        cfg = None
    return getattr(cfg, "hf_hub_id", None) or f"timm/{name}"


def _open_clip_files(spec: ModelSpec) -> list[Needed]:
    import open_clip

    out = []
    cfg = open_clip.get_pretrained_cfg(spec.arch_name, spec.pretrained) or {}
    if cfg.get("file"):
        out.append(Needed("weights", os.path.dirname(cfg["file"]), (os.path.basename(cfg["file"]),),
                          cfg["file"] if os.path.isfile(cfg["file"]) else None))
    elif cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])  # 'org/model/' (default file names) or 'org/model/file'
        files = (filename,) if filename else OPEN_CLIP_WEIGHTS
        out.append(Needed("weights", repo, files, hub_file(repo, files)))
    else:
        out.append(Needed("weights", f"{spec.arch_name}:{spec.pretrained}", ("(no pretrained entry in open_clip)",),
                          None, "this open_clip version does not know these weights"))
    tok = (open_clip.get_model_config(spec.arch_name) or {}).get("text_cfg", {}).get("hf_tokenizer_name")
    if tok:
        out.append(_tokenizer(tok, arch_name=spec.arch_name))
    return out


def _tokenizer(repo: str, arch_name: str | None = None) -> Needed:
    """A transformers tokenizer: its config, and the sentencepiece library when it is a sentencepiece model; and
    with them, that it loads offline (``tokenizer.tokenizer_problem``: files alone do not make a tokenizer)."""
    found = hub_file(repo, ("tokenizer_config.json",))
    vocab = hub_file(repo, ("tokenizer.json", "spiece.model"))
    note = ""
    if vocab and vocab.endswith(".model") and not _has_sentencepiece():
        note, vocab = "sentencepiece or protobuf is not installed: pip install sentencepiece protobuf", None
    elif vocab and found:
        problem = _loads(arch_name, None if arch_name else repo, os.path.dirname(vocab))
        if problem:
            note, vocab = f"the files are there but the tokenizer {problem}", None
    return Needed("tokenizer", repo, ("tokenizer_config.json + tokenizer.json or spiece.model",),
                  vocab if found else None, note)


@functools.lru_cache(maxsize=64)
def _loads(arch_name: str | None, hf_repo: str | None, folder: str) -> str | None:
    """``tokenizer_problem``, once per tokenizer and snapshot folder (a changed cache is a new folder)."""
    from .tokenizer import tokenizer_problem

    return tokenizer_problem(arch_name, hf_repo)


def _has_sentencepiece() -> bool:
    """Whether a sentencepiece tokenizer can be read here (transformers needs sentencepiece and protobuf)."""
    try:
        import google.protobuf  # noqa: F401
        import sentencepiece  # noqa: F401
    except ImportError:
        return False
    return True


def _hf_files(spec: ModelSpec) -> list[Needed]:
    if not spec.hf_id:
        return [Needed("weights", f"(no transformers checkpoint for {spec.name})", ("-",), None,
                       "the registry has no hf_id for this model")]
    config = hub_file(spec.hf_id, ("config.json",))
    weights = hub_file(spec.hf_id, HF_WEIGHTS)
    return [Needed("weights", spec.hf_id, ("config.json + " + " or ".join(HF_WEIGHTS),), weights if config else None),
            _tokenizer(spec.hf_id)]


def user_files(spec: ModelSpec) -> list[Needed]:
    """The files a user's model (``model_specs.user_spec``) needs: a checkpoint file, an open_clip folder or hub
    repo, a transformers folder or hub repo, a timm hub repo; an open_clip pretrained tag is looked up as the
    registry's are."""
    arch, tag = spec.arch_name, spec.pretrained
    if spec.source == "timm":
        repo = timm_repo(arch)
        return [Needed("weights", repo, HF_WEIGHTS, hub_file(repo, HF_WEIGHTS))]
    if spec.source == "hf":
        return _hf_files(spec)[:1]
    if arch.startswith("local-dir:"):
        folder = arch[len("local-dir:"):]
        return [Needed("weights", folder, OPEN_CLIP_WEIGHTS, hub_file(folder, OPEN_CLIP_WEIGHTS))]
    if arch.startswith("hf-hub:"):
        repo = arch[len("hf-hub:"):]
        return [Needed("weights", repo, OPEN_CLIP_WEIGHTS, hub_file(repo, OPEN_CLIP_WEIGHTS))]
    if tag and (Path(tag).is_file() or Path(tag).suffix):
        return [Needed("weights", os.path.dirname(tag) or ".", (os.path.basename(tag),),
                       tag if Path(tag).is_file() else None)]
    return [n for n in _open_clip_files(spec) if n.what == "weights"]


def needed_files(spec: ModelSpec, backend: str) -> list[Needed]:
    """The weight and tokenizer files the pretrained ``spec`` needs through ``backend``. Proxies and toys need
    none (proxies are trained here; toys have no weights)."""
    if spec.family == "proxy" or spec.tiny:
        return []
    if spec.source != "registry":
        return user_files(spec)
    return _hf_files(spec) if backend == "hf" else _open_clip_files(spec)
