"""Data for BayesVLM: image-caption pairs (the Hessian's) and labelled image sets (zero-shot evaluation, active
learning), from the embedded world or from folders, and their projection features through an encoder.

Folders (under ``MCDO_DATA_ROOT`` or any path):
- labelled: one sub-folder per class (``<set>/<class>/*.jpg``; class names are folder names, ``_`` read as a space),
  or Food-101's own layout (``food-101/images/<class>/*.jpg`` with ``meta/test.txt`` choosing the test split);
- pairs: a labelled folder (caption ``a photo of a <class>.``), or images with ``captions.tsv``
  (``relative/path<TAB>caption`` per line).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.folders import ImageList, class_folder, content_key
from ..errors import MissingData
from ..models.heads import ProjectionFeatures
from .model import collect, text_batches

CAPTION_TEMPLATE = "a photo of a {}."


@dataclass
class Labelled:
    """Images (a world array ``[N, 3, H, W]`` in [0, 1], or an ``ImageList`` of files), labels and class names."""

    name: str
    images: object
    labels: np.ndarray
    classnames: list[str]

    def key(self) -> str:
        return _key(self.name, self.images)


@dataclass
class Pairs:
    name: str
    images: object
    captions: list[str]

    def key(self) -> str:
        if "_key" not in self.__dict__:  # hashing 20000 images takes a while; the pairs do not change
            self.__dict__["_key"] = _key(self.name, self.images, self.captions)
        return self.__dict__["_key"]


def _key(name: str, images, captions=None) -> str:
    h = hashlib.sha256(name.encode())
    if isinstance(images, ImageList):  # by content: an image replaced under the same name keys new factors
        h.update(content_key(images).encode())
    else:
        h.update(np.ascontiguousarray(images).tobytes())
    if captions is not None:
        h.update("\n".join(captions).encode())
    return f"{name}:{h.hexdigest()[:16]}"


def world_pairs(n: int, seed: int, full_captions: bool = False, blur: float = 0.0) -> Pairs:
    """World image-caption pairs; ``full_captions`` names every attribute (another caption distribution than the
    proxies were trained on), ``blur`` a Gaussian blur sigma in pixels (other images)."""
    from ..data import degrade, world

    d = world.generate(n, seed=seed)
    images = degrade.blur(d.images, blur) if blur else d.images
    caps = d.captions
    if full_captions:
        a = d.attributes
        caps = [f"a {list(world.SIZES)[s]} {world.CLASSES[c]} {world.SHAPES[k]} at the {list(world.POSITIONS)[p]} on a "
                f"{world.BACKGROUNDS[b]} {list(world.TONES)[t]} background" for k, c, s, p, b, t in
                zip(a["shape"], a["colour"], a["size"], a["position"], a["background"], a["tone"])]
    return Pairs(f"world seed {seed} n={n}" + (" full captions" if full_captions else "")
                 + (f" blur {blur:g}" if blur else ""), images, caps)


def world_labelled(n: int, seed: int, attribute: str = "colour") -> Labelled:
    """World images labelled by one attribute (colour: the zero-shot classes; background: a weak zero-shot task)."""
    from ..data import world

    names = {"colour": list(world.CLASSES), "background": list(world.BACKGROUNDS), "shape": list(world.SHAPES)}
    if attribute not in names:
        raise ValueError(f"unknown world attribute {attribute!r}; choose from {sorted(names)}")
    d = world.generate(n, seed=seed)
    labels = d.labels if attribute == "colour" else d.attributes[attribute].astype(np.int64)
    return Labelled(f"world seed {seed} n={n} by {attribute}", d.images, labels, names[attribute])


# distribution shifts of the evaluation world under which the proxies are overconfident (confidence above
# accuracy, deterministic ECE far above its CI): what BVL-03 / BVL-05 need to be testable at all
SHIFTS = {"colour jitter 0.3": dict(colour_jitter=0.3), "contrast 0.4": dict(contrast=0.4)}


def shifted_world(n: int, seed: int, colour_jitter: float | None = None, contrast: float | None = None) -> Labelled:
    """World images labelled by colour under a shift: shape colours drawn ``colour_jitter`` (s.d. per channel, the
    world's own 0.12) around their names, so neighbouring colours overlap more; and/or each image's contrast about
    its channel means scaled by ``contrast``."""
    from ..data import world

    d = world.generate(n, seed=seed, colour_jitter=world.COLOUR_JITTER if colour_jitter is None else colour_jitter)
    x = d.images
    if contrast is not None:
        m = x.mean(axis=(2, 3), keepdims=True)
        x = np.clip(m + contrast * (x - m), 0, 1).astype(np.float32)
    parts = ([f"colour jitter {colour_jitter:g}"] if colour_jitter is not None else []) + \
        ([f"contrast {contrast:g}"] if contrast is not None else [])
    return Labelled(f"world seed {seed} n={n} by colour, {', '.join(parts) or 'unshifted'}", x, d.labels,
                    list(world.CLASSES))


WORLD_PROMPTS = {"colour": "a photo of a {} shape", "background": "a shape on a {} background", "shape": "a {}"}


def labelled_folder(path: Path | str) -> Labelled:
    """A labelled image folder (class sub-folders, or Food-101's layout with its test split): data.folders reads
    it, this wraps it for the Laplace."""
    f = class_folder(path)
    return Labelled(f.images.name, f.images, f.images.labels, f.classnames)


def pairs_folder(path: Path | str) -> Pairs:
    """Image-caption pairs from ``captions.tsv`` or, failing that, a labelled folder's class names."""
    root = Path(path).expanduser()
    tsv = root / "captions.tsv"
    if tsv.is_file():
        rows = [ln.split("\t", 1) for ln in tsv.read_text().splitlines() if ln.strip()]
        bad = [i + 1 for i, r in enumerate(rows) if len(r) != 2 or not (root / r[0]).is_file()]
        if bad:
            raise MissingData(f"{len(bad)} caption rows of {tsv} (lines {bad[:5]}...)",
                              "each line must be 'relative/path<TAB>caption' naming an existing image")
        paths = tuple(root / r[0] for r in rows)
        return Pairs(root.name, ImageList(root.name, root, paths, np.zeros(len(paths), np.int64), "captions.tsv"),
                     [r[1] for r in rows])
    lab = labelled_folder(root)
    return Pairs(lab.name, lab.images, [CAPTION_TEMPLATE.format(lab.classnames[y]) for y in lab.labels])


def projection_image_features(enc, images, batch_size: int = 256, device: str | None = None, workers: int = 0,
                   progress: bool = False) -> ProjectionFeatures:
    """Projection features of world arrays or image files (unreadable files are an error naming them)."""
    device = device or enc.device
    if not isinstance(images, ImageList):
        from ..models.proxy import normalise_images

        x = normalise_images(images) if enc.backend == "proxy" else torch.as_tensor(images)
        return collect(enc, "image", (x[i:i + batch_size].to(device) for i in range(0, len(x), batch_size)),
                       progress, "image features")
    from torch.utils.data import DataLoader

    from ..data.folders import ImageFiles
    from ..zeroshot import image_transform

    loader = DataLoader(ImageFiles(images, image_transform(enc)), batch_size=batch_size, num_workers=workers,
                        collate_fn=ImageFiles.collate)
    bad: list[int] = []

    def batches():
        for x, _, b in loader:
            bad.extend(b)
            if x is not None:
                yield x.to(device)

    feats = collect(enc, "image", batches(), progress, f"image features ({images.name})")
    if bad:
        raise MissingData(f"{len(bad)} unreadable image files in {images.root} (first: {images.paths[bad[0]]})",
                          "replace or remove them; labels and captions must stay aligned with the images")
    return feats


def projection_text_features(enc, texts: list[str], batch_size: int = 256, device: str | None = None
                             ) -> ProjectionFeatures:
    """Projection features of ``texts``, on the encoder's device unless ``device`` says otherwise."""
    device = device or enc.device
    return collect(enc, "text", (t.to(device) for t in text_batches(enc, texts, batch_size)))
