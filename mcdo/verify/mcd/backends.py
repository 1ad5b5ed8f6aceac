"""MCD-16 on the gpu tier (its evaluator is in ``mcd/gpu.py``): SigLIP2 ViT-B/16's published weights through both backends, open_clip's
(``timm/ViT-B-16-SigLIP2``) and transformers' (``google/siglip2-base-patch16-224``), on the same ImageNet images
with the same preprocessing (open_clip's): the two builds have the same architecture and feature dimension, and
each image's features agree in direction (cosine above the registry's threshold on every image). The arch tier
checks the same with one random weight set ported between them (``mcd/arch.py``)."""
from __future__ import annotations

import numpy as np
import torch

from ... import env
from ...data.folders import ImageFiles, ImageList, imagenet_val
from ...models import load
from ...models.encoder import describe_weights, weights_present
from ...reliability import draw_images
from ...zeroshot import image_transform
from ..engine import Context
from ..prerequisites import ensure_ready, stand_in_config
from ..records import NOT_REPRODUCED, REPRODUCED, Record, all_of, decide
from .arch import siglip_dims_hf, siglip_dims_open_clip

MODEL = "siglip2-vit-b-16"
BACKENDS = ("open_clip", "hf")
N_IMAGES = 16  # one image from each of 16 drawn synsets: the claim is about every image, not an average


def _missing(ctx: Context) -> list[str]:
    if not ctx.pretrained:
        return []
    name = ctx.stand_ins.get(MODEL, MODEL)
    return [describe_weights(name, be) for be in BACKENDS if not weights_present(name, be)]


def _encoder(ctx: Context, backend: str):
    """The model (or its stand-in) through ``backend`` on the run's device, once per run; its identity noted."""
    from ...models.identity import weights_identity

    device = env.device()
    name = ctx.stand_ins.get(MODEL, MODEL)

    def make():
        if not ctx.pretrained:
            torch.manual_seed(ctx.seed)
        return load(name, pretrained=ctx.pretrained, backend=backend, device=device, progress=ctx.progress)

    enc = ctx.cached(f"model/{MODEL}/{backend}/{device}", make)
    ctx.weights.setdefault(f"{MODEL} ({backend})", weights_identity(enc))
    env.full_fp32()
    return enc


def backend_record(ctx: Context) -> Record:
    """Both backends' features of SigLIP2 B-16 on the same images: architecture, dims and per-image cosine."""
    def find(root):
        return imagenet_val(root=root)

    find.min_images = N_IMAGES
    val = ensure_ready(ctx, _missing(ctx), {"ImageNet-1k val": find}, f"{MODEL} (open_clip and transformers), "
                       "ImageNet-1k val")["ImageNet-1k val"]
    paths, labels, source = draw_images(val.paths, val.labels, 1, N_IMAGES, ctx.seed)
    oc, hf = _encoder(ctx, "open_clip"), _encoder(ctx, "hf")
    images = ImageFiles(ImageList(val.name, val.root, tuple(paths), labels, val.layout), image_transform(oc))
    x = torch.stack([t for t, _ in (images[i] for i in range(len(images))) if t is not None]).to(oc.device)
    with torch.no_grad():
        f_oc = oc.encode_image(x).double().cpu()
        f_hf = hf.encode_image(x.to(hf.device)).double().cpu()
    dims_oc, dims_hf = siglip_dims_open_clip(oc), siglip_dims_hf(hf)
    shape_ok = f_oc.shape == f_hf.shape
    cos = torch.nn.functional.cosine_similarity(f_oc, f_hf, dim=1).numpy() if shape_ok else np.array([np.nan])
    worst = float(cos.min())
    same = {k: dims_oc[k] == dims_hf[k] for k in ("width", "depth", "heads", "mlp", "patch", "image_size", "pooling")}
    dims_verdict = REPRODUCED if all(same.values()) and shape_ok else NOT_REPRODUCED
    d = decide("MCD-16", "feature_cosine", (worst, worst), "gpu")
    rel = float(((f_hf - f_oc).norm(dim=1) / f_oc.norm(dim=1)).max()) if shape_ok else float("nan")
    differ = {k: (dims_oc[k], dims_hf[k]) for k, v in same.items() if not v}
    reason = (f"architecture {'the same' if not differ else f'DIFFERS (open_clip, transformers): {differ}'}"
              f"; feature dim open_clip {f_oc.shape[1]} vs transformers {f_hf.shape[1]}; on {len(cos)} images "
              f"({source}) with open_clip's preprocessing: cosine min {worst:.6f}, median {float(np.median(cos)):.6f}; "
              f"max relative difference {rel:.2e}")
    return Record("MCD-16", "gpu", MODEL, all_of(dims_verdict, d.verdict), worst, (worst, worst),
                   expected=f"equal architecture and dims; cosine {d.expected}", reason=reason,
                   config=dict(model=MODEL, backends=list(BACKENDS), n_images=len(cos), images=source,
                               preprocessing="open_clip's, for both", **stand_in_config(ctx, MODEL)),
                   details=dict(dims={"open_clip": dims_oc, "hf": dims_hf}, cosine=cos.tolist(),
                                max_relative_difference=rel))
