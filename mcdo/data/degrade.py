"""Degradations of images ``[N, 3, H, W]`` in [0, 1]: Gaussian blur and down-sampling, as in the seed."""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each channel with standard deviation ``sigma`` pixels."""
    if sigma < 0:
        raise ValueError(f"blur sigma must be non-negative, got {sigma}")
    return ndimage.gaussian_filter(np.asarray(images, dtype=np.float32), sigma=(0, 0, sigma, sigma), mode="reflect")


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Average-pool by ``factor`` then repeat back to the original size (information removed, size kept)."""
    x = np.asarray(images, dtype=np.float32)
    n, c, h, w = x.shape
    if factor < 1 or h % factor or w % factor:
        raise ValueError(f"factor {factor} must divide the image size {h}x{w}")
    small = x.reshape(n, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5))
    return small.repeat(factor, axis=2).repeat(factor, axis=3)
