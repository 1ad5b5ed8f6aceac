"""The projection layers of each backend (as data), and the pre-projection features a Laplace over them needs.

A projection maps the pooled pre-projection activation ``a`` to the embedding: ``e = W a (+ b) + r``. ``r`` is a
residual that bypasses the layer: zero for CLIP's ``proj`` and the text heads; SigLIP's image embedding is the
output of its attention-pooling head, whose last linear (``mlp.fc2``) sits inside a residual block, so BayesVLM
(and this module) puts the posterior over that linear and carries the residual through unchanged.

Sites are either a matrix parameter applied as ``x @ P`` (open_clip CLIP: ``W = P'``) or an ``nn.Linear``; the
features come from one ordinary forward pass (a hook on the linear, or the parameter set aside for the pass and
restored even on error), so they match what ``encode_image`` / ``encode_text`` compute.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

MODALITIES = ("image", "text")
# (backend, family) -> modality -> path of the projection inside the encoder's model
SITES: dict[tuple[str, str], dict[str, str]] = {
    ("open_clip", "clip"): {"image": "visual.proj", "text": "text_projection"},
    ("open_clip", "siglip"): {"image": "visual.trunk.attn_pool.mlp.fc2", "text": "text.text_projection"},
    ("open_clip", "siglip2"): {"image": "visual.trunk.attn_pool.mlp.fc2", "text": "text.text_projection"},
    ("hf", "siglip"): {"image": "vision_model.head.mlp.fc2", "text": "text_model.head"},
    ("hf", "siglip2"): {"image": "vision_model.head.mlp.fc2", "text": "text_model.head"},
    ("proxy", "proxy"): {"image": "visual.head", "text": "text.head"},
}


@dataclass
class ProjectionFeatures:
    """What a Laplace over one projection needs for a batch: ``activations [N, P]`` (with a trailing 1 when the
    layer has a bias), ``embeddings [N, D]`` (the encoder's output) and ``residual [N, D]`` (``e - W a``)."""

    activations: torch.Tensor
    embeddings: torch.Tensor
    residual: torch.Tensor

    def to_cpu(self) -> "ProjectionFeatures":
        return ProjectionFeatures(self.activations.cpu(), self.embeddings.cpu(), self.residual.cpu())

    def __getitem__(self, idx) -> "ProjectionFeatures":
        return ProjectionFeatures(self.activations[idx], self.embeddings[idx], self.residual[idx])


def site(encoder, modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose from {MODALITIES}")
    key = (encoder.backend, encoder.spec.family)
    if key not in SITES:
        raise ValueError(f"no projection site registered for {encoder.spec.name} through {encoder.backend} "
                         f"(mcdo.models.heads.SITES has {sorted(SITES)})")
    return SITES[key][modality]


def _resolve(model: nn.Module, path: str) -> tuple[nn.Module, str, object]:
    *parents, leaf = path.split(".")
    owner = model
    for p in parents:
        owner = getattr(owner, p)
    return owner, leaf, getattr(owner, leaf)


def projection_weight(encoder, modality: str) -> tuple[torch.Tensor, bool]:
    """The projection as ``W [D, P]`` (the bias, if any, as its last column) and whether it has a bias."""
    _, _, obj = _resolve(encoder.model, site(encoder, modality))
    if isinstance(obj, nn.Linear):
        if obj.bias is None:
            return obj.weight.detach(), False
        return torch.cat([obj.weight.detach(), obj.bias.detach()[:, None]], dim=1), True
    return obj.detach().T.contiguous(), False  # x @ P


@contextmanager
def _set_aside(owner: nn.Module, leaf: str):
    """Remove a matrix projection for one forward (open_clip then skips it), restoring it in all cases."""
    saved = getattr(owner, leaf)
    setattr(owner, leaf, None)
    try:
        yield saved
    finally:
        setattr(owner, leaf, saved)


@torch.no_grad()
def projection_features(encoder, modality: str, inputs) -> ProjectionFeatures:
    """Pre-projection activations, embeddings and residual of one batch (images or tokens) through ``encoder``."""
    owner, leaf, obj = _resolve(encoder.model, site(encoder, modality))
    encode: Callable = encoder.encode_image if modality == "image" else encoder.encode_text
    if isinstance(obj, nn.Linear):
        seen = {}

        def hook(_, args, out):
            seen["a"], seen["o"] = args[0], out

        handle = obj.register_forward_hook(hook)
        try:
            emb = encode(inputs)
        finally:
            handle.remove()
        n = emb.shape[0]
        a, o = seen["a"].reshape(n, -1, obj.in_features)[:, 0], seen["o"].reshape(n, -1, obj.out_features)[:, 0]
        if obj.bias is not None:
            a = torch.cat([a, torch.ones_like(a[:, :1])], dim=1)
        return ProjectionFeatures(a.float(), emb.float(), (emb - o).float())
    with _set_aside(owner, leaf) as proj:
        a = encode(inputs)
    emb = a @ proj
    return ProjectionFeatures(a.float(), emb.float(), torch.zeros_like(emb, dtype=torch.float32))
