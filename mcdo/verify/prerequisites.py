"""What a gpu-tier claim needs before any heavy work: the GPU, each model's weights, the data sets; and the
model itself (or its random-weight stand-in, for the pipeline tests) on the run's device."""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import env
from ..data.folders import MOS_SETS, ImageList, imagenet_val, ood_set
from ..data.limit import shrink, subset  # noqa: F401 (subset: one import place for the claims)
from ..errors import MissingResource
from ..models.encoder import describe_weights, resolve_backend, weights_present
from ..models.factory import load
from ..models.files import needed_files, where_hint
from ..models.registry import get_spec
from .engine import Context


def backend_of(model: str) -> str:
    """The backend a registered model runs through here (``MCDO_SIGLIP2_BACKEND`` decides for SigLIP2)."""
    return resolve_backend(get_spec(model), None)


def missing_files(ctx: Context, model: str, text: bool = False) -> list[str]:
    """The weight (and, with ``text``, tokenizer) files of ``model`` that are not on disk, described with their
    Hugging Face repo; nothing for a random-weight stand-in."""
    if not ctx.pretrained:
        return []
    name = ctx.stand_ins.get(model, model)
    spec = get_spec(name)
    backend = backend_of(model) if spec.family in ("siglip", "siglip2") else None
    if spec.family == "proxy" or spec.tiny:
        return []
    out = [] if weights_present(name, backend) else [describe_weights(name, backend)]
    if text:
        out += [f"{spec.name} {n.describe()}" for n in needed_files(spec, resolve_backend(spec, backend))
                if n.what == "tokenizer" and not n.present]
    return out


def ensure_ready(ctx: Context, files: list[str], data: dict[str, Callable[[Path], Any]], ready: str,
          unset: str | None = None, how_data: str | None = None) -> dict[str, Any]:
    """The one prerequisite check of every gpu-tier claim, run before any heavy work: a CUDA GPU (unless the
    context waives it), the weight and tokenizer files named in ``files`` (``missing_files``), and each data set
    of ``data`` (name -> finder of it under ``MCDO_DATA_ROOT``, listed once per run). Everything missing is named
    at once in one ``MissingResource`` with how to supply each (``unset`` names the data when MCDO_DATA_ROOT is not
    set, ``how_data`` adds how to lay it out); a dry run (``mcdo doctor``) that finds all raises ``Ready(ready)``;
    else the data sets found, by name."""
    import torch

    missing, how = [], []
    if ctx.require_gpu and not torch.cuda.is_available() and not env.cpu_allowed():
        missing.append("a CUDA GPU (none visible)")
        how.append("run `pytest claims -m gpu` or `mcdo claims --tier gpu` on a GPU machine")
    if files:
        missing += files
        how.append(where_hint())
    found = {}
    if data:
        try:
            root = env.data_root()
        except MissingResource as e:
            missing.append(f"{unset or ', '.join(data)} (MCDO_DATA_ROOT is unset)")
            how += [e.how] + ([how_data] if how_data else [])
            ctx.data_seen.update((name, f"MISSING (MCDO_DATA_ROOT is unset) {how_data or ''}".strip()) for name in data)
        else:
            for name, find in data.items():
                try:
                    found[name] = ctx.cached(f"data/{root}/{name}", partial(find, root))
                    if ctx.limit and not isinstance(found[name], str):
                        # the key holds everything the cut depends on: claims find one data set with different
                        # floors, and whichever ran first must not decide the size the others get
                        n, per_class = max(ctx.limit, getattr(find, "min_images", 0)), getattr(find, "min_per_class", 0)
                        found[name] = ctx.cached(f"data/{root}/{name}/limit{n}/per-class{per_class}",
                                                 partial(shrink, found[name], n, ctx.seed, per_class))
                    text = _describe(found[name])
                    ctx.data_seen[name] = ("-       " if text.startswith("not checked") else "ok      ") + text
                except MissingResource as e:
                    missing.append(e.what)
                    how.append(e.how)
                    ctx.data_seen[name] = f"MISSING {e.what}: {e.how}"
    if missing:
        raise MissingResource("missing " + "; ".join(missing), " / ".join(dict.fromkeys(how)))
    if ctx.dry_run:
        raise Ready(ready)
    return found


SMOKE_TRIALS = 3  # the fewest MC trials the reliability statistics take (the trial jackknife needs 3)
SMOKE_PASSES = 4  # a smoke run's T: the passes per trial (a variance needs 2; 4 keeps the sampler's batching real)
SMOKE_MIN_IMAGES = 8  # a smoke run's floor for ImageNet val: rank correlations and AUROCs over images need a few


def _describe(found: Any) -> str:
    """What a data set's finder returned, in a few words (files, classes and where, when it says)."""
    if isinstance(found, str):
        return found
    if hasattr(getattr(found, "images", None), "root"):  # a labelled set or image-caption pairs: its image list
        found = found.images
    parts = []
    if hasattr(found, "__len__") or hasattr(found, "paths"):
        parts.append(f"{len(found) if hasattr(found, '__len__') else len(found.paths)} files")
    if (getattr(found, "n_classes", 0) or 0) > 1:
        parts.append(f"{found.n_classes} classes")
    root = getattr(found, "root", None)
    return ", ".join(parts) + (f" at {root}" if root else "") + (f" ({found.layout})" if getattr(found, "layout", None)
                                                                   else "")


def require(ctx: Context, models: list[str], ood_sets: tuple[str, ...] = MOS_SETS, text: bool = False,
            extra: dict[str, Callable[[Path], Any]] | None = None) -> tuple[ImageList, dict[str, ImageList]]:
    """``ensure_ready`` for the claims that read ImageNet-1k val and ``ood_sets`` with ``models``: the validation set and
    the OOD sets found. ``extra``: further checks of the data (name -> check under the data root), made with the
    rest before any work (e.g. that the recorded run's images are all there)."""
    def val(root: Path) -> ImageList:
        return imagenet_val(root=root)

    val.min_images = SMOKE_MIN_IMAGES
    data = {"ImageNet-1k val": val, **{n: (lambda root, n=n: ood_set(n, root=root)) for n in ood_sets}, **(extra or {})}
    found = ensure_ready(ctx, [f for m in models for f in missing_files(ctx, m, text)], data,
                  ", ".join([*models, "ImageNet-1k val", *ood_sets]),
                  unset="ImageNet-1k val" + (" and the MOS sets" if ood_sets else ""))
    val = found.pop("ImageNet-1k val")
    return val, {n: found[n] for n in ood_sets}


class Ready(Exception):
    """Raised by ``require`` in a dry run (``mcdo doctor``) when every prerequisite is present: the claim would run."""


def load_model(ctx: Context, model: str):
    """The model of a gpu claim (or its stand-in; random weights drawn from the run's seed) on the run's
    device, and the keyword arguments of ``features.image_features`` for that device."""
    device = env.device()
    stand_in = get_spec(ctx.stand_ins.get(model, model))
    backend = backend_of(model) if stand_in.family in ("siglip", "siglip2") else None  # a stand-in runs as the real one

    def make():
        if not ctx.pretrained:
            import torch

            torch.manual_seed(ctx.seed)
        return load(stand_in.name, pretrained=ctx.pretrained, backend=backend, device=device, progress=ctx.progress)

    def make_identity():
        from ..models.identity import weights_identity

        return dict(weights_identity(ctx.cached(f"model/{model}/{backend}/{device}", make)),
                    **({"stand_in_for": model} if model in ctx.stand_ins else {}))

    enc = ctx.cached(f"model/{model}/{backend}/{device}", make)  # loaded once per run, shared by the claims
    ctx.weights[model] = ctx.cached(f"identity/{model}/{backend}/{device}", make_identity)
    env.full_fp32()  # one precision for every comparison of the gpu tier: float32, no TF32 (stated in each record)
    return enc, dict(batch_size=ctx.batch_size, device=device, workers=env.default_workers(8), precision="fp32",
                     progress=ctx.progress)


def stand_in_config(ctx: Context, model: str) -> dict:
    """What a record's config says when a stand-in ran in place of ``model`` (nothing otherwise)."""
    stand_in = ctx.stand_ins.get(model)
    return {"stand_in": stand_in, "pretrained": ctx.pretrained} if stand_in else {}
