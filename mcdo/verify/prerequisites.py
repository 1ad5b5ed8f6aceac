"""What a gpu-tier claim needs before any heavy work: the GPU, each model's weights, the data sets; and the
model itself (or its random-weight stand-in, for the pipeline tests) on the run's device."""
from __future__ import annotations

from functools import partial

from .. import env
from ..data.folders import MOS_SETS, ImageList, imagenet_val, ood_set
from ..errors import MissingResource
from ..models.encoder import describe_weights, load, resolve_backend, weights_present
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


def require(ctx: Context, models: list[str], ood_sets: tuple[str, ...] = MOS_SETS, text: bool = False
            ) -> tuple[ImageList, dict[str, ImageList]]:
    """Raise ``MissingResource`` naming every missing GPU, weight (and, with ``text``, tokenizer) file and data
    set (ImageNet-1k val and ``ood_sets``) at once; else return the data sets found. Called before any heavy
    work, so a run never fails after its MC passes for want of a file that could have been checked first."""
    import torch

    missing, how = [], []
    if ctx.require_gpu and not torch.cuda.is_available():
        missing.append("a CUDA GPU (none visible)")
        how.append("run `pytest claims -m gpu` or `mcdo claims --tier gpu` on a GPU machine")
    files = [f for m in models for f in missing_files(ctx, m, text)]
    if files:
        missing += files
        how.append(where_hint())
    try:
        root = env.data_root()
    except MissingResource as e:
        missing.append("ImageNet-1k val" + (" and the MOS sets" if ood_sets else "") + " (MCDO_DATA_ROOT is unset)")
        how.append(e.how)
    else:
        found = {}
        for name, find in (("ImageNet-1k val", imagenet_val), *((n, partial(ood_set, n)) for n in ood_sets)):
            try:
                found[name] = ctx.cached(f"data/{root}/{name}", partial(find, root=root))  # listed once per run
            except MissingResource as e:
                missing.append(e.what)
                how.append(e.how)
    if missing:
        raise MissingResource("missing " + "; ".join(missing), " / ".join(dict.fromkeys(how)))
    if ctx.dry_run:
        raise Ready(", ".join([*models, "ImageNet-1k val", *ood_sets]))
    return found.pop("ImageNet-1k val"), found


def gpu_and_files(ctx: Context, files: list[str]) -> tuple[list[str], list[str]]:
    """What a gpu claim lacks before its data: a GPU (unless the context waives it) and the weight files named in
    ``files``; with how to supply each. The data sets are checked by the caller, which adds to both lists."""
    import torch

    missing, how = [], []
    if ctx.require_gpu and not torch.cuda.is_available():
        missing.append("a CUDA GPU (none visible)")
        how.append("run `pytest claims -m gpu` on a GPU machine")
    if files:
        missing += files
        how.append(where_hint())
    return missing, how


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

    enc = ctx.cached(f"model/{model}/{backend}/{device}", make)  # loaded once per run, shared by the claims
    return enc, dict(batch_size=ctx.batch_size, device=device, workers=env.default_workers(8),
                     precision="amp" if device.startswith("cuda") else "fp32", progress=ctx.progress)


def stand_in_config(ctx: Context, model: str) -> dict:
    """What a record's config says when a stand-in ran in place of ``model`` (nothing otherwise)."""
    stand_in = ctx.stand_ins.get(model)
    return {"stand_in": stand_in, "pretrained": ctx.pretrained} if stand_in else {}
