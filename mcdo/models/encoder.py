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

    tokenizer_error: str = ""  # why the tokenizer could not be built, when it could not
    pretrained: bool = True  # False: the architecture with random weights (``load(..., pretrained=False)``)

    def projection_features(self, modality: str, inputs: Any):
        """Pre-projection activations, embeddings and the residual around the projection (``mcdo.models.heads``):
        what a Laplace over the projection layers needs, for every backend."""
        from .heads import projection_features

        return projection_features(self, modality, inputs)

    def projection_weight(self, modality: str) -> tuple[torch.Tensor, bool]:
        """The image or text projection as ``W [D, P]`` (bias as last column) and whether it has a bias."""
        from .heads import projection_weight

        return projection_weight(self, modality)

    @property
    def device(self) -> str:
        """Where the model's weights sit (its first parameter's device): what every input must be moved to.
        Functions that take an encoder default their ``device`` to this, so no call can feed one tower from
        another device by leaving the argument out."""
        param = next(self.model.parameters(), None)
        return str(param.device) if param is not None else "cpu"

    @property
    def tokenizer(self) -> Callable:
        if self._tokenizer is None:
            from .files import where_hint

            raise MissingWeights(f"tokenizer of {self.spec.name} ({self.tokenizer_error or 'none was built'})",
                                 where_hint())
        return self._tokenizer

    @property
    def logit_scale(self) -> float:
        return self._logit_scale()

    @property
    def logit_bias(self) -> float | None:
        return self._logit_bias()


def open_clip_encoder(spec: ModelSpec, pretrained: bool, device: str) -> Encoder:
    import open_clip

    from .tokenizer import open_clip_tokenizer

    try:
        hub = spec.arch_name.startswith(("hf-hub:", "local-dir:"))  # weights come with the name: load them or not
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.arch_name, pretrained=spec.pretrained if pretrained else None, device=device,
            **({"load_weights": pretrained} if hub else {}))
    except Exception as e:  # open_clip raises several types for a missing file / offline hub
        if not pretrained:
            raise
        if spec.pretrained and os.path.isfile(spec.pretrained):  # the file is there: it does not fit the architecture
            why = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            raise ValueError(f"{spec.name}: the checkpoint {spec.pretrained} does not load into open_clip's "
                             f"{spec.arch_name} ({why}); name the architecture it was trained as (ARCH:PATH)") from e
        raise _missing(spec, "open_clip", e) from e
    tokenizer, error = None, ""
    try:
        tokenizer = open_clip_tokenizer(spec.arch_name)
    except Exception as e:  # an HF tokenizer that is not cached, or sentencepiece missing: said when used
        error = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    model.eval()
    bias = getattr(model, "logit_bias", None)
    return Encoder(spec, "open_clip", model, model.visual, preprocess, tokenizer,
                   lambda x: model.encode_image(x, normalize=False),
                   lambda t: model.encode_text(t, normalize=False),
                   lambda: float(model.logit_scale.detach().exp()),
                   (lambda: float(bias.detach())) if bias is not None else (lambda: None), error)


def _missing(spec: ModelSpec, backend: str, error: Exception) -> MissingWeights:
    """The weights of ``spec`` could not be loaded: name the repo and files looked for, and where."""
    from .files import needed_files, where_hint

    files = [n.describe() for n in needed_files(spec, backend) if n.what == "weights"]
    return MissingWeights(f"{spec.name} weights through {backend} ({'; '.join(files)}; {type(error).__name__})",
                          where_hint())


def hf_features(out) -> torch.Tensor:
    """Features from a transformers call: a tensor (4.x) or an output object whose pooler_output holds them (5.x)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class HFVision(nn.Module):
    """The pooled image embedding of a transformers SigLIP model, as one module."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.inner = model.vision_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return hf_features(self.inner(pixel_values=x))


def _hf(spec: ModelSpec, pretrained: bool, device: str) -> Encoder:
    from transformers import SiglipConfig, SiglipModel

    if pretrained:
        if not spec.hf_id:
            raise MissingWeights(f"a transformers checkpoint for {spec.name}", "this model has no hf_id in the registry")
        try:
            model = SiglipModel.from_pretrained(spec.hf_id)
        except Exception as e:
            raise _missing(spec, "hf", e) from e
    else:
        if not spec.hf_config:
            raise ValueError(f"{spec.name} has no transformers config in the registry")
        cfg = SiglipConfig(vision_config=spec.hf_config["vision"], text_config=spec.hf_config["text"])
        model = SiglipModel(cfg)
    model.eval().to(device)
    if spec.hf_image_size:  # this checkpoint reads another input size than open_clip's (the registry says why)
        import dataclasses

        spec = dataclasses.replace(spec, image_size=spec.hf_image_size)
    tower = HFVision(model)
    tokenizer, error = None, "random weights: no tokenizer files"
    if pretrained:
        from .tokenizer import hf_auto_tokenizer

        try:
            tokenizer = hf_tokenizer(hf_auto_tokenizer(spec.hf_id))
        except Exception as e:  # not cached, or sentencepiece missing: said when the tokenizer is used
            error = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    return Encoder(spec, "hf", model, tower, None, tokenizer, tower,
                   lambda t: hf_features(model.get_text_features(input_ids=t)),
                   lambda: float(model.logit_scale.detach().exp()), lambda: float(model.logit_bias.detach()),
                   error if tokenizer is None else "")


def hf_tokenizer(tok, length: int = 64) -> Callable:
    """A transformers tokenizer as the encoder's tokenizer: texts -> input ids, padded to ``length`` tokens (64 for
    SigLIP, how it was trained: its text features need the same padding; a CLIP's context length for CLIP)."""
    return lambda texts: tok(list(texts), padding="max_length", max_length=length, truncation=True,
                             return_tensors="pt")["input_ids"]


def proxy_encoder(spec: ModelSpec, seed: int, progress: bool) -> Encoder:
    from ..data import world
    from .proxy import ProxyConfig, load_or_train, normalise_images

    model = load_or_train(ProxyConfig(loss=spec.loss, seed=seed), progress=progress)
    return Encoder(spec, "proxy", model, model.visual, normalise_images,
                   lambda texts: torch.as_tensor(world.tokenize(texts)),
                   lambda x: model.encode_image(x), lambda t: model.encode_text(t),
                   lambda: float(model.logit_scale.detach().exp()),
                   (lambda: float(model.logit_bias.detach())) if model.logit_bias is not None else (lambda: None))


LOADERS = {"open_clip": open_clip_encoder, "hf": _hf}  # registered models, by backend


def weights_present(name: str, backend: str | None = None) -> bool:
    """Whether the pretrained weights of ``name`` can be loaded here without a download (a cache lookup,
    nothing is loaded). Proxies count as present: they are trained on first use."""
    from .files import needed_files

    spec = get_spec(name)
    if spec.family == "proxy":
        return True
    if spec.source != "registry":
        from .files import user_files

        return os.environ.get("MCDO_ALLOW_DOWNLOAD") == "1" or all(n.present for n in user_files(spec))
    if spec.tiny:
        return False
    needed = [n for n in needed_files(spec, resolve_backend(spec, backend)) if n.what == "weights"]
    if os.environ.get("MCDO_ALLOW_DOWNLOAD") == "1":
        return bool(needed)  # fetched on load
    return bool(needed) and all(n.present for n in needed)


def describe_weights(name: str, backend: str | None = None) -> str:
    """Which weight files ``name`` needs, from which Hugging Face repo, for messages."""
    from .files import needed_files

    spec = get_spec(name)
    if spec.family == "proxy":
        return f"{spec.name} (trained here)"
    if spec.source != "registry":
        from .files import user_files

        return f"{spec.name} through {spec.source}: " + "; ".join(n.describe() for n in user_files(spec))
    be = resolve_backend(spec, backend)
    files = [n.describe() for n in needed_files(spec, be) if n.what == "weights"]
    return f"{spec.name} through {be}: " + ("; ".join(files) or "no pretrained weights (a toy architecture)")


def resolve_backend(spec: ModelSpec, backend: str | None) -> str:
    """open_clip unless asked otherwise; ``MCDO_SIGLIP2_BACKEND`` decides for SigLIP2."""
    if spec.source != "registry":
        return spec.source  # a user's model: its form decides (open_clip, hf or timm)
    if backend is None and spec.family == "siglip2":
        backend = os.environ.get("MCDO_SIGLIP2_BACKEND") or "open_clip"
    backend = backend or "open_clip"
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS} (MCDO_SIGLIP2_BACKEND too)")
    if backend == "hf" and spec.family not in ("siglip", "siglip2"):
        raise ValueError(f"the transformers backend is wired for SigLIP/SigLIP2 only, not {spec.name}")
    return backend
