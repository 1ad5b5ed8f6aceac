"""A timm image classifier (e.g. CLIP fine-tuned on ImageNet) behind the ``Encoder`` interface, for the signatures.

Its 'image features' are the pre-logits features its linear head reads; ``head`` returns that head. Weights come
from the Hugging Face cache only (``timm/<name>``), unless ``MCDO_ALLOW_DOWNLOAD=1``; a missing file is a
``MissingWeights`` naming it.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from ..errors import MissingWeights
from .encoder import Encoder
from .files import HF_WEIGHTS, hub_file, timm_repo, where_hint
from .registry import ModelSpec

FINETUNED_CLIP = "vit_base_patch16_clip_224.openai_ft_in1k"  # CLIP ViT-B/16 (OpenAI) fine-tuned on ImageNet-1k


def weights_missing(name: str) -> list[str]:
    """What is not on disk for the pretrained classifier ``name`` (nothing when it can be loaded offline)."""
    if os.environ.get("MCDO_ALLOW_DOWNLOAD") == "1":
        return []
    repo = timm_repo(name)
    return [] if hub_file(repo, HF_WEIGHTS) else [f"{name} weights: {' or '.join(HF_WEIGHTS)} in {repo}"]


def load_classifier(name: str, pretrained: bool = True, device: str = "cpu") -> Encoder:
    """The timm classifier ``name`` as an Encoder whose image features are its pre-logits features (loaded in
    Hugging Face's offline mode, ``env.offline``)."""
    from ..env import offline

    with offline():
        return _load_classifier(name, pretrained, device)


def _load_classifier(name: str, pretrained: bool, device: str) -> Encoder:
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('.')[0][:12]}*")[:5]
        raise KeyError(f"timm has no model {name!r}" + (f"; close names: {', '.join(close)}" if close else "")
                       + " (timm.list_models() lists them)")
    if pretrained and weights_missing(name):
        raise MissingWeights("; ".join(weights_missing(name)), where_hint())
    model = timm.create_model(name, pretrained=pretrained).eval().to(device)
    cfg = timm.data.resolve_data_config({}, model=model)
    spec = ModelSpec(name, "timm", "supervised", name, "timm" if pretrained else None, int(cfg["input_size"][-1]),
                     int(model.num_features))

    def encode(x: torch.Tensor) -> torch.Tensor:
        return model.forward_head(model.forward_features(x), pre_logits=True)

    def no_text(_):
        raise ValueError(f"{name} is an image classifier: it has no text tower")

    return Encoder(spec, "timm", model, model, timm.data.create_transform(**cfg), None, encode, no_text,
                   lambda: 1.0, lambda: None, "an image classifier has no tokenizer", pretrained)


def head(enc: Encoder) -> tuple[np.ndarray, np.ndarray | None]:
    """The classifier's linear head: weight ``[K, d]`` and bias ``[K]`` (None without one)."""
    lin = enc.model.get_classifier()
    b = lin.bias.detach().double().cpu().numpy() if getattr(lin, "bias", None) is not None else None
    return lin.weight.detach().double().cpu().numpy(), b
