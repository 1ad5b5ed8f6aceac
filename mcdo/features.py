"""Image features of a data set, cached per model and data set, resumable after an interruption.

Features are written in shards of ``shard`` images as they are computed; a rerun loads the finished
shards and computes only the rest, so an interrupted pass loses at most one shard. A file that cannot
be read is skipped and counted (``Features.failed``), never fatal.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import env
from .io import keep_cache, read_cache, save_npz_atomic
from .data.folders import ImageFiles, ImageList, content_key
from .models.encoder import Encoder
from .zeroshot import model_cache_id, image_transform


@dataclass
class Features:
    """Unit-norm image features of the readable images, their labels, and the files that failed."""

    name: str
    features: np.ndarray  # [n_ok, D] float32
    labels: np.ndarray  # [n_ok]
    failed: list[str]  # paths of unreadable files (not in ``features``)
    n_files: int


def _read_shard(path: Path) -> dict[str, np.ndarray] | None:
    """A finished shard, or None when there is none; one that cannot be read is named, removed and recomputed."""
    def load(p: Path) -> dict[str, np.ndarray]:
        with np.load(p) as z:
            return {k: z[k] for k in ("features", "positions", "failed")}

    return read_cache(path, load, "feature shard")


def _set_key(images: ImageList) -> str:
    """Content key of a data set: relative paths, labels and the bytes of its files (data.folders.content_key)."""
    return content_key(images)


def _autocast(device: str, precision: str):
    if precision == "fp32":
        return torch.autocast("cpu", enabled=False)
    if precision in ("bf16", "amp"):
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    raise ValueError(f"unknown precision {precision!r}; choose fp32, bf16 or amp")


def image_features(enc: Encoder, images: ImageList, batch_size: int = 256, device: str | None = None, workers: int = 0,
                   precision: str = "fp32", shard: int = 8192, cache: bool = True, progress: bool = True,
                   resize: str = "model") -> Features:
    """Encode every image of ``images`` once (or load it from the cache) and return unit-norm features.
    ``resize``: the model's own preprocessing, or "bilinear" (the MCM paper's; see ``image_transform``)."""
    device = device or enc.device
    from tqdm.auto import tqdm

    tag = f"{precision}" + ("" if resize == "model" else f"-{resize}") + "-strip2"  # StripCrop(2) in front
    folder = env.cache_dir() / "features" / model_cache_id(enc) / f"{images.name.replace('/', '_')}-{_set_key(images)}-{tag}"
    n = len(images)
    starts = list(range(0, n, shard))
    shards = {s: (_read_shard(folder / f"{s:08d}.npz") if cache else None) for s in starts}
    todo = [s for s in starts if shards[s] is None]
    if todo:
        transform = image_transform(enc, resize)
        bar = tqdm(total=sum(min(shard, n - s) for s in todo), desc=f"features {images.name}", unit="img",
                   disable=not progress)
        for s in todo:
            path = folder / f"{s:08d}.npz"
            shards[s] = _encode_shard(enc, images, transform, range(s, min(n, s + shard)), path, batch_size,
                                      device, workers, precision, bar)
        bar.close()
    feats, pos, bad = [], [], []
    for s in starts:
        z = shards[s]
        feats.append(z["features"])
        pos.append(z["positions"])
        bad.append(z["failed"])
    pos, bad = np.concatenate(pos).astype(np.int64), np.concatenate(bad).astype(np.int64)
    return Features(images.name, np.concatenate(feats), images.labels[pos],
                    [str(images.paths[i]) for i in bad], n)


def _encode_shard(enc, images, transform, positions: range, path: Path, batch_size, device, workers, precision,
                  bar) -> dict:
    subset = torch.utils.data.Subset(ImageFiles(images, transform), list(positions))
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, num_workers=workers,
                                         collate_fn=ImageFiles.collate, pin_memory=device.startswith("cuda"))
    feats, pos, bad = [], [], []
    with torch.no_grad(), _autocast(device, precision):
        for x, good, failed in loader:
            bad += failed
            if x is not None:
                f = enc.encode_image(x.to(device, non_blocking=True)).float()
                feats.append(torch.nn.functional.normalize(f, dim=-1).cpu().numpy())
                pos += good
            bar.update(len(good) + len(failed))
    dim = enc.spec.embed_dim
    arrays = dict(features=np.concatenate(feats) if feats else np.zeros((0, dim), np.float32),
                  positions=np.asarray(pos, np.int64), failed=np.asarray(bad, np.int64))
    keep_cache(save_npz_atomic, path, arrays)  # a shard on disk is always complete
    return arrays
