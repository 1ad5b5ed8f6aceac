"""The model registry as data: name -> spec. Small factories hold each family's defaults.

``arch_name`` is the open_clip architecture that matches the pretrained weights (the openai CLIP weights run
QuickGELU, hence the ``-quickgelu`` names); ``tiny-*`` entries are real code paths at toy size so every test runs on
a CPU in seconds. This module imports neither torch nor open_clip, so a command can answer a wrong model name at
once (``mcdo.cli``); ``mcdo.models.registry`` registers the toy architectures with open_clip.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path


class Loss(StrEnum):
    """The training loss of a vision-language model: CLIP's softmax contrastive loss or SigLIP's sigmoid loss."""

    SOFTMAX = "softmax"
    SIGMOID = "sigmoid"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # clip | siglip | siglip2 | proxy
    loss: str  # softmax | sigmoid
    arch_name: str  # open_clip architecture
    pretrained: str | None  # open_clip pretrained tag
    image_size: int
    embed_dim: int
    hf_id: str | None = None  # transformers checkpoint (fallback backend)
    hf_config: dict = field(default_factory=dict)  # enough to build the HF model with random weights
    tiny: bool = False
    hf_image_size: int | None = None  # the transformers checkpoint's input size, where it differs from open_clip's
    # where the model comes from: "registry", or for a user's model "open_clip" (ARCH:tag, ARCH:checkpoint,
    # hf-hub:org/name, an open_clip folder), "hf" (a transformers name or folder), "timm" (timm:name); a user's
    # spec holds placeholders (family "unknown", sizes 0) until ``mcdo.models.user.infer`` reads the loaded model
    source: str = "registry"

    @property
    def inferred(self) -> bool:
        """Whether family, loss, image size and embedding dim are known (the registry's, or read off the model)."""
        return self.family != "unknown"


def _clip(name, arch, size, dim, hf_id=None, pretrained="openai") -> ModelSpec:
    return ModelSpec(name, "clip", "softmax", arch, pretrained, size, dim, hf_id)


def _siglip(name, arch, size, dim, family="siglip", pretrained="webli", hf_id=None, hf_config=None) -> ModelSpec:
    return ModelSpec(name, family, "sigmoid", arch, pretrained, size, dim, hf_id, hf_config or {})


def _siglip_b16_hf(size: int) -> dict:
    return dict(vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                            image_size=size, patch_size=16),
                text=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                          vocab_size=256000, max_position_embeddings=64))


# Toy open_clip architectures (mcdo.models.registry registers them with open_clip; no files, no download).
TINY_CONFIGS = {
    "mcdo-tiny-clip": {"embed_dim": 32, "quick_gelu": True,
                       "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
                       "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}},
    "mcdo-tiny-sigmoid": {"embed_dim": 64, "init_logit_bias": -10, "custom_text": True,
                         "vision_cfg": {"image_size": 32, "timm_model_name": "test_vit", "timm_model_pretrained": False,
                                        "timm_pool": "map", "timm_proj": "none"},
                         "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                                      "layers": 2, "no_causal_mask": True, "pool_type": "last", "proj_bias": True}},
}

# the same toy for the transformers backend (a tokenizer for it is trained offline: mcdo.testing)
TINY_SIGLIP_HF = dict(vision=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                  image_size=32, patch_size=8),
                      text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                vocab_size=512, max_position_embeddings=64))

REGISTRY: dict[str, ModelSpec] = {s.name: s for s in (
    _clip("clip-vit-b-32", "ViT-B-32-quickgelu", 224, 512, "openai/clip-vit-base-patch32"),
    # BayesVLM's CLIP B/32 (LAION-2B weights, open_clip's tag)
    _clip("clip-vit-b-32-laion2b", "ViT-B-32", 224, 512, "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
          pretrained="laion2b_s34b_b79k"),
    _clip("clip-vit-b-16", "ViT-B-16-quickgelu", 224, 512, "openai/clip-vit-base-patch16"),
    _clip("clip-vit-l-14-336", "ViT-L-14-336-quickgelu", 336, 768, "openai/clip-vit-large-patch14-336"),
    _siglip("siglip-vit-b-16", "ViT-B-16-SigLIP", 224, 768, hf_id="google/siglip-base-patch16-224",
            hf_config=_siglip_b16_hf(224)),
    _siglip("siglip-so400m-14-384", "ViT-SO400M-14-SigLIP-384", 384, 1152, hf_id="google/siglip-so400m-patch14-384"),
    _siglip("siglip2-vit-b-16", "ViT-B-16-SigLIP2", 224, 768, family="siglip2",
            hf_id="google/siglip2-base-patch16-224", hf_config=_siglip_b16_hf(224)),
    # the transformers release of these weights is named for 384 px: its patch-14 convolution reads a 27 x 27 grid
    # from a 384-px input (the last 6 px are never read), the same 729 patches as open_clip's 378 px; each backend is
    # fed its own size (tests/test_registry.py builds both and compares the grids)
    ModelSpec("siglip2-so400m-14-378", "siglip2", "sigmoid", "ViT-SO400M-14-SigLIP2-378", "webli", 378, 1152,
              "google/siglip2-so400m-patch14-384", hf_image_size=384),
    _siglip("siglip2-so400m-16-384", "ViT-SO400M-16-SigLIP2-384", 384, 1152, family="siglip2",
            hf_id="google/siglip2-so400m-patch16-384"),
    ModelSpec("tiny-clip", "clip", "softmax", "mcdo-tiny-clip", None, 32, 32, tiny=True),
    # the matched pair trained here (mcdo.models.proxy); same architecture, only the loss differs
    ModelSpec("proxy-softmax", "proxy", "softmax", "mcdo-proxy", None, 32, 64),
    ModelSpec("proxy-sigmoid", "proxy", "sigmoid", "mcdo-proxy", None, 32, 64),
    ModelSpec("tiny-siglip", "siglip", "sigmoid", "mcdo-tiny-sigmoid", None, 32, 64, tiny=True,
              hf_config=TINY_SIGLIP_HF),
)}

ALIASES = {"clip_b32": "clip-vit-b-32", "siglip2_b16": "siglip2-vit-b-16", "ViT-B-32": "clip-vit-b-32",
           "ViT-B-16-SigLIP2": "siglip2-vit-b-16",
           # the OOD seed's --model_type values
           "clip": "clip-vit-b-16", "siglip": "siglip-vit-b-16", "siglip2": "siglip2-vit-b-16"}


def loss_family(name: str) -> Loss | None:
    """The one answer to "which loss trained this model": the registry's (an alias too, e.g. the recorded folder
    ``clip_b32``), else read from the name (SigLIP models name themselves, in any case and anywhere in the name;
    ``proxy-<loss>`` names its loss; a CLIP otherwise); None when the name says neither."""
    spec = REGISTRY.get(ALIASES.get(name, name))
    if spec is not None and spec.loss in tuple(Loss):
        return Loss(spec.loss)
    low = name.lower()
    named = next((loss for loss in Loss if loss.value in low), None)
    return named or (Loss.SIGMOID if "siglip" in low else Loss.SOFTMAX if "clip" in low else None)


USER_FORMS = ("a registry name (mcdo models)", "ARCH:TAG (an open_clip architecture and pretrained tag)",
              "ARCH:/path/checkpoint.pt (an open_clip architecture and a local checkpoint)",
              "hf-hub:ORG/NAME (an open_clip model on the Hugging Face hub)", "a folder saved by open_clip or "
              "transformers", "ORG/NAME (a transformers checkpoint)", "timm:NAME (a timm image model)")


def user_spec(text: str) -> ModelSpec | None:
    """The spec of a model the registry does not hold, or None when ``text`` has none of the forms in
    ``USER_FORMS``. Nothing is loaded: family, loss and sizes are inferred when the model is (``mcdo.models.user``)."""
    def spec(source, arch, pretrained=None, hf_id=None):
        return ModelSpec(text, "unknown", "unknown", arch, pretrained, 0, 0, hf_id, source=source)

    path = Path(text).expanduser()
    if text.startswith("timm:"):
        return spec("timm", text[5:]) if text[5:] else None
    if text.startswith(("hf-hub:", "local-dir:")):
        return spec("open_clip", text)
    if path.is_dir():
        if (path / "open_clip_config.json").is_file():
            return spec("open_clip", f"local-dir:{path}")
        return spec("hf", str(path), hf_id=str(path)) if (path / "config.json").is_file() else None
    if ":" in text:
        arch, tag = text.split(":", 1)
        return spec("open_clip", arch, str(Path(tag).expanduser()) if _looks_like_path(tag) else tag) \
            if arch and tag else None
    if text.count("/") == 1 and not path.exists() and all(text.split("/")):
        return spec("hf", text, hf_id=text)
    return None


def weights_conflict(name: str, random_weights: bool) -> str | None:
    """Why ``name`` cannot run with (or without) ``--random-weights``, or None: a model named with its weights (a
    pretrained tag, a checkpoint, a hub repo or folder) would have them silently replaced by random ones; a toy
    architecture has no weights to load. Answered from the name alone, before any work."""
    try:
        spec = get_spec(name)
    except KeyError:
        return None  # an unknown name is said elsewhere
    if random_weights and spec.source == "open_clip" and (spec.pretrained or spec.arch_name.startswith(
            ("hf-hub:", "local-dir:"))):
        return (f"{name} names its weights, and --random-weights would replace them with random ones: drop "
                f"--random-weights, or name the architecture alone ({spec.arch_name.split(':')[0]})"
                if spec.pretrained else f"{name} names its weights; --random-weights would replace them: drop it")
    if random_weights and spec.source == "hf":
        return f"{name} is a checkpoint with its weights; --random-weights would replace them: drop it"
    if not random_weights and spec.tiny:
        return f"{name} is a toy architecture with no pretrained weights: add --random-weights"
    return None


def _looks_like_path(tag: str) -> bool:
    return "/" in tag or tag.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))


def get_spec(name: str) -> ModelSpec:
    """The spec of a model: a registered one (aliases: recorded names and open_clip names), else a user's model in
    one of the forms of ``USER_FORMS`` (its family and sizes still to be inferred)."""
    key = ALIASES.get(name, name)
    if key in REGISTRY:
        return REGISTRY[key]
    user = user_spec(name)
    if user is None:
        raise KeyError(unknown_model(name) or f"unknown model {name!r}")
    return user


def unknown_model(name: str) -> str | None:
    """Why ``name`` names no model, or None: a registered name or alias, or a user's model in one of the forms of
    ``USER_FORMS``; anything else is answered with the forms, the registry and the closest names."""
    if name in REGISTRY or name in ALIASES or user_spec(name) is not None:
        return None
    path = Path(name).expanduser()
    if path.is_file():
        return (f"{name!r} is a file: a checkpoint needs its open_clip architecture, as ARCH:{name} "
                f"(e.g. ViT-B-16:{name})")
    if path.is_dir():
        return f"the folder {name!r} holds neither open_clip_config.json (open_clip) nor config.json (transformers)"
    close = difflib.get_close_matches(name, [*REGISTRY, *ALIASES], n=3, cutoff=0.5)
    return (f"unknown model {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else "")
            + f"; registered: {', '.join(REGISTRY)}; or give " + "; ".join(USER_FORMS[1:]))


def registry_table() -> str:
    """``mcdo models``: the registry as a markdown table, then the forms a user's own model can take."""
    rows = ["| name | family | loss | open_clip architecture | tag | image size | embed dim | transformers |",
            "|" + " --- |" * 8]
    for s in REGISTRY.values():
        hf = (s.hf_id or "-") + (f" ({s.hf_image_size} px)" if s.hf_image_size else "")
        rows.append(f"| {s.name} | {s.family} | {s.loss} | {s.arch_name} | {s.pretrained or '-'} | {s.image_size} | "
                    f"{s.embed_dim} | {hf} |")
    aliases = ", ".join(f"{a} = {n}" for a, n in ALIASES.items())
    return "\n".join([*rows, "", f"aliases: {aliases}", "", "--model also takes your own model:",
                      *(f"  {f}" for f in USER_FORMS[1:]),
                      "family, loss, image size and embedding dim are then read off the loaded model"])
