"""One interface over backends: ``load(name)`` returns an ``Encoder``.

Backends: open_clip (default) and transformers (``MCDO_SIGLIP2_BACKEND=hf`` for SigLIP2, or
``backend="hf"``). Pretrained weights come only from the libraries' own caches unless
``MCDO_ALLOW_DOWNLOAD=1``; when absent, ``MissingWeights`` names them and says how to get them.
``pretrained=False`` builds the real architecture with random weights (the arch tier, tests).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..errors import MissingWeights
from .registry import ModelSpec, get_spec

BACKENDS = ("open_clip", "hf")


@dataclass
class Encoder:
    """A dual encoder behind one interface. Image features are returned unnormalised."""

    spec: ModelSpec
    backend: str
    model: nn.Module
    vision_tower: nn.Module
    preprocess: Callable | None
    _tokenizer: Callable | None
    _encode_image: Callable[[torch.Tensor], torch.Tensor]
    _encode_text: Callable[[Any], torch.Tensor]
    _logit_scale: Callable[[], float]
    _logit_bias: Callable[[], float | None]

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self._encode_image(images)

    def encode_text(self, tokens: Any) -> torch.Tensor:
        return self._encode_text(tokens)

    @property
    def tokenizer(self) -> Callable:
        if self._tokenizer is None:
            raise MissingWeights(f"tokenizer of {self.spec.name}",
                                 "it is fetched from the Hugging Face hub with the weights; run once with "
                                 "MCDO_ALLOW_DOWNLOAD=1 on a machine with network")
        return self._tokenizer

    @property
    def logit_scale(self) -> float:
        return self._logit_scale()

    @property
    def logit_bias(self) -> float | None:
        return self._logit_bias()


def _open_clip(spec: ModelSpec, pretrained: bool, device: str) -> Encoder:
    import open_clip

    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.arch_name, pretrained=spec.pretrained if pretrained else None, device=device)
    except Exception as e:  # open_clip raises several types for a missing file / offline hub
        if not pretrained:
            raise
        raise MissingWeights(f"open_clip weights {spec.arch_name}:{spec.pretrained} ({type(e).__name__})",
                             "run once with MCDO_ALLOW_DOWNLOAD=1 on a machine with network (they land in the "
                             "Hugging Face cache, HF_HOME) or copy that cache here") from e
    try:
        tokenizer = open_clip.get_tokenizer(spec.arch_name)
    except Exception:  # an HF tokenizer that is not cached; reported when used
        tokenizer = None
    model.eval()
    bias = getattr(model, "logit_bias", None)
    return Encoder(spec, "open_clip", model, model.visual, preprocess, tokenizer,
                   lambda x: model.encode_image(x, normalize=False),
                   lambda t: model.encode_text(t, normalize=False),
                   lambda: float(model.logit_scale.detach().exp()),
                   (lambda: float(bias.detach())) if bias is not None else (lambda: None))


class _HFVision(nn.Module):
    """The pooled image embedding of a transformers SigLIP model, as one module."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.inner = model.vision_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(pixel_values=x).pooler_output


def _hf(spec: ModelSpec, pretrained: bool, device: str) -> Encoder:
    from transformers import SiglipConfig, SiglipModel

    if pretrained:
        if not spec.hf_id:
            raise MissingWeights(f"a transformers checkpoint for {spec.name}", "this model has no hf_id in the registry")
        try:
            model = SiglipModel.from_pretrained(spec.hf_id)
        except Exception as e:
            raise MissingWeights(f"transformers weights {spec.hf_id} ({type(e).__name__})",
                                 "run once with MCDO_ALLOW_DOWNLOAD=1 on a machine with network") from e
    else:
        if not spec.hf_config:
            raise ValueError(f"{spec.name} has no transformers config in the registry")
        cfg = SiglipConfig(vision_config=spec.hf_config["vision"], text_config=spec.hf_config["text"])
        model = SiglipModel(cfg)
    model.eval().to(device)
    tower = _HFVision(model)
    tokenizer = None
    if pretrained:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(spec.hf_id)
            # SigLIP was trained on texts padded to 64 tokens: its text features need the same padding
            tokenizer = lambda texts: tok(list(texts), padding="max_length", max_length=64, truncation=True,  # noqa: E731
                                          return_tensors="pt")["input_ids"]
        except Exception:  # reported when the tokenizer is used
            tokenizer = None
    return Encoder(spec, "hf", model, tower, None, tokenizer, tower,
                   lambda t: model.get_text_features(input_ids=t),
                   lambda: float(model.logit_scale.detach().exp()), lambda: float(model.logit_bias.detach()))


def _proxy(spec: ModelSpec, seed: int, progress: bool) -> Encoder:
    from ..data import world
    from .proxy import ProxyConfig, load_or_train, normalise_images

    model = load_or_train(ProxyConfig(loss=spec.loss, seed=seed), progress=progress)
    return Encoder(spec, "proxy", model, model.visual, normalise_images,
                   lambda texts: torch.as_tensor(world.tokenize(texts)),
                   lambda x: model.encode_image(x), lambda t: model.encode_text(t),
                   lambda: float(model.logit_scale.detach().exp()),
                   (lambda: float(model.logit_bias.detach())) if model.logit_bias is not None else (lambda: None))


_LOADERS = {"open_clip": _open_clip, "hf": _hf}


def weights_present(name: str, backend: str | None = None) -> bool:
    """Whether the pretrained weights of ``name`` can be loaded here without a download (a cache lookup,
    nothing is loaded). Proxies count as present: they are trained on first use."""
    spec = get_spec(name)
    if spec.family == "proxy":
        return True
    if spec.tiny:
        return False
    if resolve_backend(spec, backend) == "hf":
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(spec.hf_id, "config.json"), str)
    import open_clip
    from open_clip.pretrained import download_pretrained

    cfg = open_clip.get_pretrained_cfg(spec.arch_name, spec.pretrained)
    if os.environ.get("MCDO_ALLOW_DOWNLOAD") == "1":
        return bool(cfg)  # it would be fetched on load
    try:  # the hub is offline (see mcdo/__init__): this returns a cached file or fails at once
        return bool(cfg) and os.path.isfile(download_pretrained(cfg))
    except Exception:
        return False


def describe_weights(name: str) -> str:
    """Where the pretrained weights of ``name`` come from, for messages."""
    spec = get_spec(name)
    if spec.family != "proxy" and resolve_backend(spec, None) == "hf":
        return f"{spec.hf_id} (transformers)"
    return f"{spec.arch_name}:{spec.pretrained} (open_clip)"


def resolve_backend(spec: ModelSpec, backend: str | None) -> str:
    """open_clip unless asked otherwise; ``MCDO_SIGLIP2_BACKEND`` decides for SigLIP2."""
    if backend is None and spec.family == "siglip2":
        backend = os.environ.get("MCDO_SIGLIP2_BACKEND") or "open_clip"
    backend = backend or "open_clip"
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS} (MCDO_SIGLIP2_BACKEND too)")
    if backend == "hf" and spec.family not in ("siglip", "siglip2"):
        raise ValueError(f"the transformers backend is wired for SigLIP/SigLIP2 only, not {spec.name}")
    return backend


def load(name: str, pretrained: bool = True, backend: str | None = None, device: str = "cpu", seed: int = 0,
         progress: bool = True) -> Encoder:
    """The one front door: a registered model through its backend, pretrained or random-weight.

    Proxy models (``proxy-softmax``, ``proxy-sigmoid``) are trained here on first use, per ``seed``.
    """
    spec = get_spec(name)
    if spec.family == "proxy":
        return _proxy(spec, seed, progress)
    if spec.tiny and pretrained:
        raise MissingWeights(f"{spec.name} is a toy architecture with no pretrained weights", "use pretrained=False")
    return _LOADERS[resolve_backend(spec, backend)](spec, pretrained, device)
