"""The tokenizers of open_clip models, built from the local cache as an offline machine has it.

open_clip builds a SigLIP / SigLIP2 tokenizer with ``AutoTokenizer.from_pretrained("timm/<repo>")``. transformers
5.x first asks that repo for a ``config.json`` (the timm repos have none) and, offline, accepts its absence only
when the cache holds ``.no_exist/<commit>/config.json``, a marker that only an online transformers load writes
(not ``hf download``, ``snapshot_download`` or copied files). So a cache filled any other way fails offline.
Here the repo is first resolved to its snapshot folder in the cache and the tokenizer is read from that folder,
which needs only the tokenizer's own files; without a cached snapshot, open_clip's own call runs (and fetches
the files when downloads are allowed). ``tokenizer_problem`` is the same build, for ``mcdo doctor`` and the
gpu claims' checks: a tokenizer counts as present only when it loads.
"""
from __future__ import annotations

import os
from typing import Callable


def cached_snapshot(repo: str, probe: tuple[str, ...] = ("tokenizer_config.json", "open_clip_config.json",
                                                          "config.json")) -> str | None:
    """The folder of ``repo``'s cached snapshot (its ``main`` revision) that holds one of ``probe``, or None when
    the Hugging Face cache holds none. A look-up only: a snapshot holding only some of the repo's files (a
    download of single files) counts, which ``snapshot_download(local_files_only=True)`` refuses once the hub's
    file list is cached."""
    if os.path.isdir(repo):
        return repo
    from .hub import hub_file

    hit = hub_file(repo, probe)
    return os.path.dirname(hit) if hit else None


def open_clip_tokenizer(arch_name: str) -> Callable:
    """The tokenizer open_clip pairs with ``arch_name`` (a built-in architecture, or ``hf-hub:`` / ``local-dir:``),
    its Hugging Face tokenizer read from the cached snapshot folder when there is one."""
    import open_clip
    from open_clip.tokenizer import DEFAULT_CONTEXT_LENGTH, HFTokenizer

    text_cfg = _text_cfg(arch_name)
    repo = text_cfg.get("hf_tokenizer_name")
    folder = cached_snapshot(repo) if repo else None
    if folder is None:
        return open_clip.get_tokenizer(arch_name)
    return HFTokenizer(folder, context_length=text_cfg.get("context_length", DEFAULT_CONTEXT_LENGTH),
                       tokenizer_mode=text_cfg.get("tokenizer_mode"), **text_cfg.get("tokenizer_kwargs", {}))


def _text_cfg(arch_name: str) -> dict:
    """open_clip's ``text_cfg`` for an architecture: built in, or the ``open_clip_config.json`` of an ``hf-hub:``
    repo (cached) or of a ``local-dir:`` folder; empty when none can be read here."""
    import json

    import open_clip

    for schema in ("hf-hub:", "local-dir:"):
        if arch_name.startswith(schema):
            where = arch_name[len(schema):]
            folder = where if schema == "local-dir:" else cached_snapshot(where)
            path = os.path.join(folder, "open_clip_config.json") if folder else None
            if not path or not os.path.isfile(path):
                return {}
            with open(path, encoding="utf-8") as f:
                return dict(json.load(f).get("model_cfg", {}).get("text_cfg", {}))
    return dict((open_clip.get_model_config(arch_name) or {}).get("text_cfg", {}))


def hf_auto_tokenizer(repo: str):
    """A transformers tokenizer from ``repo``'s cached snapshot folder (or a local folder), else by its name."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(cached_snapshot(repo) or repo)


def tokenizer_problem(arch_name: str | None = None, hf_repo: str | None = None) -> str | None:
    """Why the tokenizer of an open_clip architecture (or of the transformers ``hf_repo``) does not load
    offline here, or None when it loads: the build the model's load makes, in Hugging Face's offline mode."""
    from ..env import offline

    try:
        with offline():
            if hf_repo:
                hf_auto_tokenizer(hf_repo)
            else:
                open_clip_tokenizer(arch_name)
    except Exception as e:  # noqa: BLE001  (any failure is what the doctor must say)
        first = str(e).splitlines()[0][:240] if str(e) else ""
        return f"does not load offline ({type(e).__name__}: {first})"
    return None
