"""Real images that ship with installed packages (scikit-image's sample photographs, scikit-learn's digits)."""
from __future__ import annotations

import numpy as np
import torch

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "coins", "camera", "moon", "hubble_deep_field",
                  "immunohistochemistry", "retina", "cat", "horse", "page", "text", "brick", "grass", "gravel",
                  "clock", "logo", "microaneurysms")

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def to_rgb(im: np.ndarray) -> np.ndarray:
    """Any skimage sample as float RGB in [0, 1], shape [H, W, 3]."""
    im = np.asarray(im)
    if im.dtype == bool:
        im = im.astype(np.float64)
    im = im.astype(np.float64)
    if im.max() > 1.0:
        im = im / 255.0
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, axis=2)
    return im[..., :3]


def skimage_photos(size: int, names: tuple[str, ...] = SKIMAGE_PHOTOS, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """scikit-image's bundled photographs, resized to ``size`` and normalised: ``[N, 3, size, size]``."""
    from skimage import data, transform

    out = []
    for name in names:
        im = to_rgb(getattr(data, name)())
        out.append(transform.resize(im, (size, size), anti_aliasing=True))
    x = torch.tensor(np.stack(out), dtype=torch.float32).permute(0, 3, 1, 2)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
