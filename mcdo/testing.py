"""Small real inputs for tests and demos: image folders in the layouts mcdo reads, random-weight encoders.

``make_image_folders(root)`` writes ImageNet-style synset folders (4 classes, 12 images and one corrupt
file) and the four MOS OOD layouts with a few random images each, so that every data path of the
gpu-tier pipelines runs on a CPU in seconds, e.g. ``mcdo ood --model tiny-siglip --random-weights
--data-root <root>``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGENET_CLASSES = (0, 1, 207, 980)  # positions in the sorted synset list
OOD_COUNTS = {"iNaturalist/images": 5, "SUN/images": 4, "Places/images": 4}


def write_image(path: Path, rng: np.random.Generator, fmt: str = "JPEG") -> None:
    """A random RGB image of 30 to 63 pixels a side."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = rng.integers(30, 64, size=2)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, fmt)


def make_image_folders(root: Path | str, seed: int = 0) -> Path:
    """ImageNet-like synset folders (with one corrupt file, ``broken.JPEG``) and the four MOS layouts."""
    from .data.folders import imagenet_synsets

    root = Path(root)
    rng = np.random.default_rng(seed)
    wnids = imagenet_synsets()
    for k, c in enumerate(IMAGENET_CLASSES):
        for j in range(3):
            write_image(root / "imagenet/val" / wnids[c] / f"ILSVRC2012_val_{3 * k + j + 1:08d}.JPEG", rng)
    (root / "imagenet/val" / wnids[IMAGENET_CLASSES[0]] / "broken.JPEG").write_bytes(b"this is not a JPEG")
    for rel, n in OOD_COUNTS.items():
        png = "Places" in rel
        for j in range(n):
            write_image(root / rel / f"{j}.{'png' if png else 'jpg'}", rng, "PNG" if png else "JPEG")
    for j in range(3):
        write_image(root / "dtd/images" / ("banded" if j < 2 else "zigzagged") / f"t{j}.jpg", rng)
    return root


def random_encoder(name: str, seed: int = 0):
    """A registered architecture with random weights drawn after ``torch.manual_seed(seed)``."""
    import torch

    from .models import load

    torch.manual_seed(seed)
    return load(name, pretrained=False, progress=False)
