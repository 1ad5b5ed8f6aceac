"""A researcher's own model behind the ``Encoder`` interface: what the registry holds as data (family, loss, image
size, embedding dim, logit bias) is read off the loaded model instead.

Forms (``mcdo.model_specs.USER_FORMS``): an open_clip architecture with a pretrained tag or a local checkpoint
(``ViT-B-16:laion2b_s34b_b88k``, ``ViT-B-16:/path/ckpt.pt``), ``hf-hub:org/name`` or a folder open_clip saved, a
transformers checkpoint (``org/name`` or a folder with ``config.json``: CLIP, SigLIP, SigLIP2), ``timm:name``.
Nothing is downloaded unless ``MCDO_ALLOW_DOWNLOAD=1`` (``env.offline``).
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

import torch

from ..errors import MissingWeights
from .encoder import Encoder, HFVision, hf_features, hf_tokenizer, open_clip_encoder
from .files import where_hint
from .registry import ModelSpec

# a transformers model_type -> (family, loss); what the loss is decides a claim's expectation (MCD-07's families)
HF_FAMILIES = {"clip": ("clip", "softmax"), "siglip": ("siglip", "sigmoid"), "siglip2": ("siglip2", "sigmoid")}
CLIP_NORM = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))  # CLIPImageProcessor's


def load_user(spec: ModelSpec, pretrained: bool, device: str) -> Encoder:
    """Load a user's model and return it with its spec inferred (``infer``)."""
    enc = {"open_clip": _open_clip_user, "hf": _hf_user, "timm": _timm_user}[spec.source](spec, pretrained, device)
    return dataclasses.replace(enc, spec=infer(enc))


def _open_clip_user(spec: ModelSpec, pretrained: bool, device: str) -> Encoder:
    import open_clip

    arch = spec.arch_name
    if not arch.startswith(("hf-hub:", "local-dir:")) and arch not in open_clip.list_models():
        close = difflib.get_close_matches(arch, open_clip.list_models(), n=4, cutoff=0.6)
        raise KeyError(f"{spec.name!r}: open_clip has no architecture {arch!r}"
                       + (f" (close: {', '.join(close)})" if close else "") + " (open_clip.list_models() lists them)")
    tag = spec.pretrained
    if pretrained and tag and Path(tag).suffix and not Path(tag).is_file():
        raise MissingWeights(f"the checkpoint file {tag} of {spec.name}", "no such file: give an existing path")
    if pretrained and tag and not Path(tag).is_file() and tag not in open_clip.list_pretrained_tags_by_model(arch):
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise KeyError(f"{spec.name!r}: open_clip has no pretrained tag {tag!r} for {arch}; its tags: "
                       f"{', '.join(tags) or 'none'} (or give a checkpoint path, ARCH:/path/ckpt.pt)")
    if pretrained and not tag and not arch.startswith(("hf-hub:", "local-dir:")):
        raise MissingWeights(f"pretrained weights for {arch}", f"give ARCH:TAG or ARCH:/path/ckpt.pt "
                             f"(tags: {', '.join(open_clip.list_pretrained_tags_by_model(arch)) or 'none'}), "
                             "or --random-weights")
    return open_clip_encoder(spec, pretrained, device)


def _hf_user(spec: ModelSpec, pretrained: bool, device: str) -> Encoder:
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(spec.hf_id)
        if config.model_type not in HF_FAMILIES:  # refused from its config, before any weight is read
            raise ValueError(f"{spec.name!r} is a transformers {config.model_type!r} model; mcdo reads dual encoders "
                             f"of the types {', '.join(HF_FAMILIES)}")
        model = AutoModel.from_pretrained(spec.hf_id) if pretrained else AutoModel.from_config(config)
    except OSError as e:  # not cached, or a folder without weights
        raise MissingWeights(f"the transformers checkpoint {spec.hf_id} (config.json and weights)", where_hint()) from e
    model.eval().to(device)
    tower = HFVision(model)
    tokenizer, error = None, "random weights: no tokenizer files"
    if pretrained:
        from .tokenizer import hf_auto_tokenizer

        try:
            length = config.text_config.max_position_embeddings
            tokenizer = hf_tokenizer(hf_auto_tokenizer(spec.hf_id), length)
            error = ""
        except Exception as e:  # not cached, or sentencepiece missing: said when the tokenizer is used
            error = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    size = config.vision_config.image_size
    mean, std = CLIP_NORM if config.model_type == "clip" else ((0.5,) * 3, (0.5,) * 3)
    from torchvision import transforms as T

    preprocess = T.Compose([T.Resize((size, size), interpolation=T.InterpolationMode.BICUBIC), T.ToTensor(),
                            T.Normalize(mean, std)])
    bias = getattr(model, "logit_bias", None)
    return Encoder(spec, "hf", model, tower, preprocess, tokenizer, tower,
                   lambda t: hf_features(model.get_text_features(input_ids=t)),
                   lambda: float(model.logit_scale.detach().exp()),
                   (lambda: float(bias.detach())) if bias is not None else (lambda: None), error)


def _timm_user(spec: ModelSpec, pretrained: bool, device: str) -> Encoder:
    from .classifier import load_classifier

    return load_classifier(spec.arch_name, pretrained=pretrained, device=device)


def infer(enc: Encoder) -> ModelSpec:
    """The spec of a loaded user's model: loss from the logit bias (sigmoid when the model has one), family from
    the loss (SigLIP2 where the name says so), image size from the tower or its preprocessing, embedding dim from
    one forward pass. What cannot be inferred is named in the error."""
    spec = enc.spec
    if enc.backend == "timm":  # load_classifier has read its config already
        return dataclasses.replace(enc.spec, name=spec.name if spec.name.startswith("timm:") else
                                   f"timm:{enc.spec.name}", source="timm")
    if enc.backend == "hf":
        family, loss = HF_FAMILIES[enc.model.config.model_type]
    else:
        loss = "sigmoid" if getattr(enc.model, "logit_bias", None) is not None else "softmax"
        family = ("siglip2" if "siglip2" in spec.name.lower() else "siglip") if loss == "sigmoid" else "clip"
    size = _image_size(enc)
    if size is None:
        raise ValueError(f"could not infer the input image size of {spec.name!r}: neither its vision tower "
                         "(image_size) nor its preprocessing (Resize / CenterCrop) says it")
    device = next(enc.model.parameters()).device
    try:
        with torch.no_grad():
            dim = int(enc.encode_image(torch.zeros(1, 3, size, size, device=device)).shape[-1])
    except Exception as e:
        raise ValueError(f"could not infer the embedding dim of {spec.name!r}: its image encoder failed on a "
                         f"{size}-px input ({type(e).__name__}: {e})") from e
    return dataclasses.replace(spec, family=family, loss=loss, image_size=size, embed_dim=dim)


def _image_size(enc: Encoder) -> int | None:
    from ..sampling import expected_size

    size = expected_size(enc.vision_tower)
    if size is None:
        trunk = getattr(enc.vision_tower, "trunk", None)  # open_clip's timm towers
        size = getattr(getattr(trunk, "patch_embed", None), "img_size", None)
    if size is None:
        for t in getattr(enc.preprocess, "transforms", ()):
            if type(t).__name__ in ("CenterCrop", "Resize") and getattr(t, "size", None) is not None:
                size = t.size
    if size is None:
        return None
    return int(size if isinstance(size, int) else size[0])
