"""Zero-shot classification over any registered encoder.

A classifier is the L2-normalised mean over prompt templates of the normalised text embeddings of each
class name (CLIP's prompt ensembling); its logits are ``scale * cos + bias`` with the model's own
``logit_scale`` and, for SigLIP, ``logit_bias``. Class embeddings are cached per model (``model_cache_id``),
class list and template set, so they are computed once.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from . import env
from .io import keep_cache, read_cache, save_npy_atomic
from .models.encoder import Encoder

# "mcm": the OOD seed's single prompt (with a period); "photo": the MCM paper's code and the MC-dropout seed's
# investigation ("a photo of a {}", no period); "openai": CLIP's 80-template ImageNet ensemble.
TEMPLATE_SETS = ("mcm", "photo", "openai", "simple")


def templates(name: str) -> tuple[str, ...]:
    """Prompt templates by name, as format strings with one ``{}`` for the class name."""
    from open_clip import zero_shot_metadata as z

    sets = {"mcm": ("a photo of a {}.",), "photo": ("a photo of a {}",),
            "openai": tuple(t("{}") for t in z.OPENAI_IMAGENET_TEMPLATES),
            "simple": tuple(t("{}") for t in z.SIMPLE_IMAGENET_TEMPLATES)}
    if name not in sets:
        raise ValueError(f"unknown template set {name!r}; choose from {TEMPLATE_SETS}")
    return sets[name]


def imagenet_classnames() -> list[str]:
    """The 1000 ImageNet-1k class names (open_clip's cleaned list), in sorted-synset order."""
    from open_clip import zero_shot_metadata as z

    return list(z.IMAGENET_CLASSNAMES)


def model_cache_id(enc: Encoder) -> str:
    """The name under which an encoder's features and text embeddings are cached: its registry name and a hash of
    all its weights (``sampling.weights_fingerprint``, the sampler's own key, memoised per model), so any edit of
    any weight keys a new cache; two encoders with the same weights share it. A user's model spec (a path, a hub
    name) becomes one path-safe folder name."""
    import re

    from .sampling import weights_fingerprint

    name = re.sub(r"[^A-Za-z0-9._+-]+", "-", enc.spec.name).strip("-.") or "model"
    return f"{name}-{weights_fingerprint(enc.model)[:12]}"


def image_transform(enc: Encoder, resize: str = "model"):
    """The PIL -> tensor transform the model was trained with (open_clip's own; SigLIP's for transformers), or
    with ``resize="bilinear"`` the MCM paper's: bilinear Resize of the short side and a centre crop to the model's
    input size, then the model's own normalisation."""
    if resize == "bilinear":
        from torchvision import transforms as T

        mean, std = _normalisation(enc)
        s = enc.spec.image_size
        return T.Compose([StripCrop(), T.Resize(s, interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(s),
                          ToRGB(), T.ToTensor(), T.Normalize(mean, std)])
    if resize != "model":
        raise ValueError(f"unknown resize {resize!r}; choose 'model' or 'bilinear'")
    if enc.backend in ("open_clip", "timm"):  # the library's own transform
        return bound_strips(enc.preprocess)
    if enc.backend == "hf":
        from torchvision import transforms as T

        s = enc.spec.image_size
        return T.Compose([T.Resize((s, s), interpolation=T.InterpolationMode.BICUBIC), T.ToTensor(),
                          T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    raise ValueError(f"{enc.spec.name} ({enc.backend}) does not read image files; it takes arrays")


class ToRGB:
    """PIL image -> RGB. A class, not a lambda: a transform must pickle for DataLoader workers under the spawn and
    forkserver start methods (forkserver is Python 3.14's default on Linux)."""

    def __call__(self, im):
        return im.convert("RGB")


class StripCrop:
    """Crop an image's long side to at most ``ratio`` times its short side, about the centre. Before a resize of
    the short side and a centre crop, this keeps the region the crop keeps (with half a short side to spare on
    each side for the resampling kernel), so the output moves by at most half an output pixel, while a 1 x 3000
    strip no longer becomes a 384 x 1,152,000 image (1.7 GB) on the way."""

    def __init__(self, ratio: float = 2.0):
        self.ratio = ratio

    def __call__(self, im):
        w, h = im.size
        short, long = min(w, h), max(w, h)
        keep = int(math.ceil(self.ratio * short))
        if long <= keep:
            return im
        start = (long - keep) // 2
        return im.crop((start, 0, start + keep, h) if w > h else (0, start, w, start + keep))

    def __repr__(self) -> str:
        return f"StripCrop(ratio={self.ratio})"


def bound_strips(transform):
    """``transform`` with a ``StripCrop`` in front when it resizes the short side and then centre-crops (the only
    kind whose memory grows with the aspect ratio; a squash resize is left alone, since it shows the whole image)."""
    from torchvision import transforms as T

    ops = getattr(transform, "transforms", None)
    if (ops and len(ops) >= 2 and isinstance(ops[0], T.Resize) and isinstance(ops[1], T.CenterCrop)
            and (isinstance(ops[0].size, int) or len(ops[0].size) == 1)):
        return T.Compose([StripCrop(), *ops])
    return transform


def text_cache_path(enc: Encoder, classnames: list[str], template_set: str):
    """Where the class embeddings of ``enc`` over ``classnames`` with one template set are cached: per model
    fingerprint, and a hash of the class list and the templates."""
    temps = templates(template_set)
    key = hashlib.sha1(("\n".join(classnames) + "||" + "\n".join(temps)).encode()).hexdigest()[:12]
    return env.cache_dir() / "text" / model_cache_id(enc) / f"{template_set}-{key}.npy"


def class_embeddings(enc: Encoder, classnames: list[str], template_set: str = "mcm", device: str | None = None,
                     batch_size: int = 256, cache: bool = True, progress: bool = False,
                     shard_classes: int = 50) -> np.ndarray:
    """[K, D] unit vectors, one per class: normalise each prompt's embedding, average, normalise again.

    Cached per model fingerprint, class list and template set; computed in shards of ``shard_classes`` classes,
    each written as it finishes, so an interrupted pass resumes where it stopped. A cache file that cannot be read
    is named and recomputed."""
    device = device or enc.device
    temps = templates(template_set)
    path = text_cache_path(enc, classnames, template_set)
    if cache and path.is_file():
        emb = _read_npy(path)
        if emb is not None and emb.shape[0] == len(classnames):
            return emb
    from tqdm.auto import tqdm

    shard_dir = path.with_suffix(".shards")
    starts = list(range(0, len(classnames), shard_classes))
    parts = []
    for s0 in tqdm(starts, desc=f"text {template_set}", disable=not progress, leave=False):
        shard = shard_dir / f"{s0:06d}.npy"
        part = _read_npy(shard) if cache and shard.is_file() else None
        if part is None:
            part = _encode_classes(enc, classnames[s0:s0 + shard_classes], temps, device, batch_size)
            if cache:
                _save_npy(shard, part)
        parts.append(part)
    emb = np.concatenate(parts)
    if cache:
        _save_npy(path, emb)
        for f in shard_dir.glob("*.npy"):
            f.unlink()
        if shard_dir.is_dir():
            shard_dir.rmdir()
    return emb


def _encode_classes(enc: Encoder, names: list[str], temps: tuple[str, ...], device: str, batch_size: int) -> np.ndarray:
    prompts = [t.format(c) for c in names for t in temps]
    out = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            f = enc.encode_text(enc.tokenizer(prompts[i:i + batch_size]).to(device)).float()
            out.append(torch.nn.functional.normalize(f, dim=-1).cpu())
    emb = torch.cat(out).reshape(len(names), len(temps), -1).mean(1)
    return torch.nn.functional.normalize(emb, dim=-1).numpy().astype(np.float32)


def _read_npy(path) -> np.ndarray | None:
    return read_cache(path, lambda p: np.load(p, allow_pickle=False), "cached text embeddings")


def _save_npy(path, arr: np.ndarray) -> None:
    """Write then rename: a file on disk is always complete."""
    keep_cache(save_npy_atomic, path, arr)


def _normalisation(enc: Encoder) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std the model's own preprocessing normalises with."""
    for t in getattr(enc.preprocess, "transforms", ()):
        if type(t).__name__ == "Normalize":
            return tuple(t.mean), tuple(t.std)
    return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # SigLIP through transformers


@dataclass
class ZeroShot:
    """A zero-shot head: class embeddings and the model's logit scale and bias."""

    text: np.ndarray  # [K, D] unit vectors
    scale: float
    bias: float | None

    def cosines(self, image_features: np.ndarray) -> np.ndarray:
        """Cosine similarity [N, K] of (normalised or not) image features to every class."""
        f = np.asarray(image_features, dtype=np.float64)
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
        return f @ self.text.T.astype(np.float64)

    def logits(self, image_features: np.ndarray) -> np.ndarray:
        return self.scale * self.cosines(image_features) + (self.bias or 0.0)

    def predict(self, image_features: np.ndarray) -> np.ndarray:
        return self.cosines(image_features).argmax(axis=1)


def classifier(enc: Encoder, classnames: list[str], template_set: str = "mcm", device: str | None = None,
               progress: bool = False) -> ZeroShot:
    """The zero-shot head of ``enc`` over ``classnames`` with one template set."""
    device = device or enc.device
    return ZeroShot(class_embeddings(enc, classnames, template_set, device, progress=progress), enc.logit_scale,
                    enc.logit_bias)
