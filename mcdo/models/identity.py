"""Which weights ran: what a record must say so that a number can be traced to a file, as lm-evaluation-harness
records a model's revision and hash.

``weights_identity(enc)`` gives the backend, the open_clip architecture and pretrained tag (or the transformers /
timm name), the Hugging Face repo and the snapshot's commit the file was read from, the file itself with the
SHA-256 of its bytes, a hash of the loaded tensors (``sampling.weights_fingerprint``: what actually ran, also for
random weights and stand-ins), the input size, and the image preprocessing (resize, crop, interpolation,
mean / std) as the run applied it.
"""
from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

from .files import HF_WEIGHTS, hub_file, needed_files, timm_repo


@lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (the hub's own identity of an LFS file), once per file version in a process."""
    st = os.stat(path)
    return _file_sha256(os.path.realpath(path), st.st_size, st.st_mtime_ns)


def _snapshot_commit(path: str) -> str | None:
    """The commit of a Hugging Face cache snapshot a file was read from (``.../snapshots/<commit>/<file>``)."""
    m = re.search(r"[/\\]snapshots[/\\]([0-9a-f]{40})[/\\]", path)
    return m.group(1) if m else None


def weights_file(enc) -> tuple[str | None, str | None]:
    """(repo or folder, local path) of the weights file the encoder was loaded from; (None, None) for random
    weights, proxies and toys, whose identity is the tensor hash alone."""
    spec = enc.spec
    if spec.family == "proxy" or spec.tiny or not enc.pretrained:
        return None, None
    if enc.backend == "timm":
        repo = timm_repo(spec.arch_name)
        return repo, hub_file(repo, HF_WEIGHTS)
    if enc.backend == "hf" and spec.source == "registry":
        return spec.hf_id, hub_file(spec.hf_id, HF_WEIGHTS) if spec.hf_id else None
    found = [n for n in needed_files(spec, enc.backend) if n.what == "weights" and n.present]
    return (found[0].repo, found[0].path) if found else (None, None)


def preprocessing(transform) -> str:
    """A transform as one line: its steps with their sizes, interpolation and normalisation."""
    if transform is None:
        return "arrays (no image files)"
    return " | ".join(line.strip() for line in repr(transform).splitlines()
                      if line.strip() and line.strip() not in ("Compose(", ")"))


def weights_identity(enc, transform=None) -> dict:
    """What ran for ``enc``: names, repo, commit, file and its SHA-256, the loaded tensors' hash, input size and
    preprocessing (``transform``, default the model's own ``zeroshot.image_transform``)."""
    from ..sampling import weights_fingerprint

    spec = enc.spec
    out = dict(name=spec.name, backend=enc.backend, arch=spec.arch_name, pretrained=spec.pretrained,
               hf_id=spec.hf_id if enc.backend == "hf" else None, image_size=spec.image_size,
               tensors_sha256=weights_fingerprint(enc.model))
    repo, path = weights_file(enc)
    if path:
        out.update(repo=repo, revision=_snapshot_commit(path), file=path, file_sha256=file_sha256(path))
    else:
        out.update(repo=None, revision=None, file=None, file_sha256=None)
    if transform is None:
        try:
            from ..zeroshot import image_transform

            transform = image_transform(enc)
        except ValueError:  # a proxy reads arrays
            transform = None
    out["preprocessing"] = preprocessing(transform)
    return out
