"""The T-pass core: T stochastic passes per image, fast, with float64 statistics.

Each batch of B images is repeated along the batch dimension (independent dropout masks per
row) in chunks of at most ``max_rows`` rows; there is no Python loop over passes per image. Every
mask is a function of (seed, image content, pass index, site) only (``mcdo.masks``), so an image's
result does not depend on ``batch_size``, ``max_rows``, the runner, a shard or the device count.
Per-image moments are merged across chunks in float64 with Chan's parallel update (never
E[x^2] - E[x]^2 in float32). Full ``[T, D]`` samples are kept only when asked (covariance
scores). Each batch is cached under a key of everything that determines its result (not the
chunk size, which does not: a run resumed with other chunks, as CUDA's free memory may choose,
still finds its batches): a fingerprint of the tower's weights, the dropout mode, p, T, seed,
dtype, the runner, the version of the sampling code (``SAMPLER_VERSION``) and the batch's content. An interrupted run resumes
without recomputing finished batches; a cached batch that cannot be read is named and
recomputed.
"""
from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from .io import keep_cache, read_cache, save_npz_atomic
from .dropout import MCDropout, inject_uniform_linear_dropout, mc_mode
from .fastpath import COMPILE_MODES, CLIPViTRunner, supports
from .fastpath_timm import TimmViTRunner, supports_timm
from .masks import image_keys, row_keys

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# Bump when a change to the sampler (masks, fast path, statistics) can change its output: old cached
# batches are then never read again.
SAMPLER_VERSION = 4  # 3: masks keyed by (seed, image, pass, site); 4: image keys hashed on the device


@dataclass
class MCResult:
    """Per-image statistics of T passes. Moments are ``[N, D]`` float64; samples ``[N, T, D]``."""

    T: int
    mean_pre: np.ndarray
    var_pre: np.ndarray  # unbiased (ddof=1) per-dimension variance of unnormalised features
    mean_post: np.ndarray  # mean of L2-normalised features
    var_post: np.ndarray
    samples: np.ndarray | None = None
    config: dict = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return self.mean_pre.shape[0]


class _GenericRunner:
    """Any tower: prefix is the input itself; suffix runs the tower on the repeated batch."""

    def __init__(self, tower: nn.Module, dtype: torch.dtype):
        self.tower, self.dtype = tower, dtype

    def prefix(self, images: torch.Tensor) -> torch.Tensor:
        return images

    @torch.no_grad()
    def suffix(self, images: torch.Tensor, t: int) -> torch.Tensor:
        x = images.repeat(t, 1, 1, 1)
        if self.dtype == torch.float32:
            return self.tower(x).float()
        with torch.autocast(device_type=x.device.type, dtype=self.dtype):
            return self.tower(x).float()


def make_runner(tower: nn.Module, ctl: MCDropout, dtype: torch.dtype, compile: str = "off"):
    """The fastest exact runner for this tower: a fast path for open_clip's CLIP towers and for timm ViTs (SigLIP,
    SigLIP2), else hooks on the tower's own forward. ``compile`` (``fastpath.COMPILE_MODES``) runs a fast path's
    passes under ``torch.compile``; the generic runner stays eager (its hooks are the dropout)."""
    if compile not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {compile!r}; choose from {', '.join(COMPILE_MODES)}")
    if supports(tower):
        return CLIPViTRunner(tower, ctl, dtype, compile)
    if supports_timm(tower):
        return TimmViTRunner(tower, ctl, dtype, compile)
    return _GenericRunner(tower, dtype)


class _Moments:
    """Running count, mean and sum of squared deviations per (image, dim), float64 (Chan et al.)."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def update(self, x: torch.Tensor) -> None:  # x: [t, B, D] float64
        t = x.shape[0]
        mean = x.mean(dim=0)
        m2 = ((x - mean) ** 2).sum(dim=0)
        if self.mean is None:
            self.n, self.mean, self.m2 = t, mean, m2
            return
        n = self.n + t
        delta = mean - self.mean
        self.mean = self.mean + delta * (t / n)
        self.m2 = self.m2 + m2 + delta**2 * (self.n * t / n)
        self.n = n

    def var(self) -> torch.Tensor:
        """Unbiased variance; NaN for a single pass, where it is undefined."""
        return self.m2 / (self.n - 1) if self.n > 1 else torch.full_like(self.m2, float("nan"))


_FINGERPRINTS: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def weights_fingerprint(tower: nn.Module) -> str:
    """A hash of every parameter and buffer of the tower (names, shapes, values): two towers share cached
    samples only when their weights are identical. Computed once per tower and reused while no tensor of it
    changed (the same version check as the fast path's prepared weights), so repeated trials do not re-hash
    (and, on a GPU, re-copy) the whole tower."""
    tensors = [*tower.named_parameters(), *tower.named_buffers()]
    version = tuple((id(t), t._version, t.data_ptr()) for _, t in tensors)
    hit = _FINGERPRINTS.get(tower)
    if hit is not None and hit[0] == version:
        return hit[1]
    h = hashlib.sha256()
    with torch.no_grad():
        for name, t in tensors:
            h.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
            h.update(t.detach().to("cpu", copy=False).contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                     if t.numel() else b"")
    _FINGERPRINTS[tower] = (version, h.hexdigest()[:24])
    return _FINGERPRINTS[tower][1]


def _check_args(images, T, p, batch_size: int, max_rows: int, tower: nn.Module) -> None:
    """Clear errors, naming the argument, for what would otherwise fail deep inside torch or silently."""
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"T must be an integer >= 1 (2 or more to estimate a variance), got {T!r}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"p must be a dropout probability in [0, 1), got {p!r}")
    for name, v in (("batch_size", batch_size), ("max_rows", max_rows)):
        if v is None:  # chosen for the device (mcdo.chunking)
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[0] == 0:
            raise ValueError(f"images must be a non-empty [N, C, H, W] tensor, got shape {tuple(images.shape)}")
        size = expected_size(tower)
        if size is not None and tuple(images.shape[-2:]) != size:
            raise ValueError(f"images are {images.shape[-2]}x{images.shape[-1]} but this tower takes {size[0]}x{size[1]}: "
                             "preprocess them with the model's own transform (enc.preprocess)")


def expected_size(tower: nn.Module) -> tuple[int, int] | None:
    """The input size a vision tower was built for, where it says (open_clip towers, transformers configs)."""
    size = getattr(tower, "image_size", None)
    if size is None and hasattr(getattr(tower, "inner", None), "config"):
        size = getattr(tower.inner.config, "image_size", None)
    if size is None:
        return None
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(v) for v in size)


def _read_batch(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        part = {k: z[k] for k in z.files}
    if not {"mean_pre", "var_pre", "mean_post", "var_post"} <= set(part):
        raise KeyError(f"keys {sorted(part)}")
    return part


def _load_cached(path: Path) -> dict[str, np.ndarray] | None:
    """A cached batch, or None (with a warning naming it) when the file cannot be read: it is recomputed."""
    return read_cache(path, _read_batch, "cached MC batch")


def _chunking(tower, runner, ctl, images, T, batch_size, max_rows) -> tuple[int, int, str]:
    """Batch and chunk sizes: the caller's, else the device's (``mcdo.chunking``; on CUDA measured with one chunk of
    the first image)."""
    from . import chunking

    first = images[:1] if isinstance(images, torch.Tensor) else None

    def run_rows(rows: int) -> None:
        x = first.to(next(tower.parameters()).device)
        with torch.no_grad(), mc_mode(ctl):
            ctl.row_keys = row_keys(image_keys(x, 0), torch.arange(rows))
            try:
                runner.suffix(runner.prefix(x), rows)
            finally:
                ctl.row_keys = None

    return chunking.choose(tower, None, T, batch_size, max_rows, run_rows if first is not None else None)


def _batch_key(base: dict, images: torch.Tensor) -> str:
    h = hashlib.sha256(json.dumps(base, sort_keys=True).encode())
    h.update(images.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def _run_batch(runner, ctl: MCDropout, images: torch.Tensor, T: int, max_rows: int, seed: int,
               keep_samples: bool, bar=None) -> dict[str, np.ndarray]:
    b = images.shape[0]
    per_chunk = max(1, max_rows // b)
    pre, post, kept = _Moments(), _Moments(), None
    keys = image_keys(images, seed)  # masks: a function of (seed, image, pass, site) only (mcdo.masks)
    with mc_mode(ctl):
        state = runner.prefix(images)
        done = 0
        while done < T:
            t = min(per_chunk, T - done)
            ctl.row_keys = row_keys(keys, torch.arange(done, done + t))
            try:
                out = runner.suffix(state, t).view(t, b, -1).double()
            finally:
                ctl.row_keys = None
            pre.update(out)
            post.update(out / out.norm(dim=-1, keepdim=True))
            if keep_samples:  # written in place: no list of chunks and no concatenation
                if kept is None:
                    kept = np.empty((b, T, out.shape[-1]), dtype=np.float32)
                kept[:, done:done + t] = out.float().transpose(0, 1).cpu().numpy()
            done += t
            if bar is not None:
                bar.update(t * b)
    result = {"mean_pre": pre.mean, "var_pre": pre.var(), "mean_post": post.mean, "var_post": post.var()}
    result = {k: v.cpu().numpy() for k, v in result.items()}
    if keep_samples:
        result["samples"] = kept
    return result


class _Collector:
    """Per-image arrays of the batches, in order. With the number of images known (a tensor input) each batch is
    copied into arrays allocated once and then dropped, so ``keep_samples=True`` peaks near the size of the
    returned samples (plus one batch); for an iterable of batches they are concatenated at the end (2x)."""

    def __init__(self, n: int | None):
        self.n, self.filled, self.out, self.parts = n, 0, None, []

    def add(self, part: dict[str, np.ndarray]) -> None:
        if self.n is None:
            self.parts.append(part)
            return
        if self.out is None:
            self.out = {k: np.empty((self.n, *v.shape[1:]), dtype=v.dtype) for k, v in part.items()}
        b = next(iter(part.values())).shape[0]
        for k, v in part.items():
            self.out[k][self.filled:self.filled + b] = v
        self.filled += b

    def result(self) -> dict[str, np.ndarray]:
        if self.n is not None:
            return self.out
        return {k: np.concatenate([p_[k] for p_ in self.parts]) for k in self.parts[0]}


def mc_sample(
    tower: nn.Module,
    images: torch.Tensor | Iterable[torch.Tensor],
    T: int = 64,
    p: float = 0.01,
    mode: str = "as_published",
    seed: int = 0,
    batch_size: int | None = None,
    max_rows: int | None = None,
    dtype: str = "float32",
    keep_samples: bool = False,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    model_name: str = "",
    ctl: MCDropout | None = None,
    compile: str = "off",
) -> MCResult:
    """Run T MC-dropout passes per image through a vision tower and return per-image moments.

    ``images``: a tensor ``[N, C, H, W]`` (split into ``batch_size`` batches) or an iterable of
    batches. ``batch_size`` / ``max_rows`` (rows per chunk): None chooses them for the device (``mcdo.chunking``:
    1 and 64 on a CPU, from free memory on CUDA); per-image results do not depend on them. ``dtype``: ``float32``, ``bfloat16`` (bf16 weights on the CPU fast path, autocast
    otherwise; statistics always float64) or ``auto`` (bf16 where the device multiplies it natively, see
    ``mcdo.precision``; the choice and why are in the result's config). ``ctl``: reuse already injected sites
    (else injected here with ``p`` and ``mode`` and removed afterwards). ``compile``: run a fast path's passes under
    ``torch.compile`` in this mode (``fastpath.COMPILE_MODES``; "reduce-overhead" adds CUDA graphs on a GPU): the
    same masks, values equal to rounding; it pays off on a GPU, where the eager path launches many small kernels.
    """
    _check_args(images, T, p, batch_size, max_rows, tower)
    from .precision import resolve

    requested = dtype
    dtype, why = resolve(dtype, next(tower.parameters()).device)
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {sorted(DTYPES)} or 'auto'")
    own = ctl is None
    ctl = ctl or inject_uniform_linear_dropout(tower, p, mode)
    try:
        runner = make_runner(tower, ctl, DTYPES[dtype], compile)
        batch_size, max_rows, chunking = _chunking(tower, runner, ctl, images, T, batch_size, max_rows)
        batches = images.split(batch_size) if isinstance(images, torch.Tensor) else images
        total = images.shape[0] * int(T) if isinstance(images, torch.Tensor) else None  # passes, image by image
        base = dict(model=model_name, weights=weights_fingerprint(tower) if cache_dir else "", mode=ctl.mode, p=ctl.p,
                    T=int(T), seed=seed, dtype=dtype, keep_samples=keep_samples,
                    runner=type(runner).__name__, version=SAMPLER_VERSION,
                    **({"compile": runner.compile} if getattr(runner, "compile", "off") != "off" else {}))
        cache = Path(cache_dir).expanduser() if cache_dir else None
        if cache:
            from .env import ensure_writable

            ensure_writable(cache, "cache_dir")
        device = next(tower.parameters()).device
        parts = _Collector(images.shape[0] if isinstance(images, torch.Tensor) else None)
        from tqdm.auto import tqdm

        # counted in passes (an image's one pass is one), updated per chunk: a large T shows progress and a rate
        bar = tqdm(total=total, desc=f"MC T={T}", unit="pass", unit_scale=True, disable=not progress, leave=False)
        for batch in batches:
            key = _batch_key(base, batch)
            path = cache / f"{key}.npz" if cache else None
            if path is not None and path.is_file():
                part = _load_cached(path)
                if part is not None:
                    parts.add(part)
                    bar.update(batch.shape[0] * int(T))
                    continue
            part = _run_batch(runner, ctl, batch.to(device), T, max_rows, seed, keep_samples, bar)
            if path is not None:
                keep_cache(save_npz_atomic, path, part)
            parts.add(part)
        bar.close()
    finally:
        if own:
            ctl.remove()
    cat = parts.result()
    return MCResult(T, cat["mean_pre"], cat["var_pre"], cat["mean_post"], cat["var_post"], cat.get("samples"),
                    dict(base, dtype_requested=requested, dtype_reason=why, batch_size=batch_size, max_rows=max_rows,
                         chunking=chunking))
