"""Reader for the recorded published measurements (``MCDO_RECORDED_DIR``).

Format (see ``recorded/PROVENANCE.md``): ``exp0_trials_T{T}.npz`` holds
``trial_pre`` and ``trial_post`` float32 ``[K trials, N images]`` and ``paths``
``[N]``; the ImageNet class of an image is the synset folder in its path.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import env
from ..errors import MissingResource

MODELS = {"clip_b32": "open_clip ViT-B-32 openai", "siglip2_b16": "open_clip ViT-B-16-SigLIP2 webli"}
NESTED_T = (4, 16, 64)
_SYNSET = re.compile(r"(n\d{8})")


@dataclass(frozen=True)
class NestedTrials:
    """Per-image MC-dropout traces of one model at T passes, over K independent trials."""

    model: str
    T: int
    pre: np.ndarray  # [K, N] trace before L2 normalisation
    post: np.ndarray  # [K, N] trace after L2 normalisation
    paths: np.ndarray  # [N]

    @property
    def synsets(self) -> list[str]:
        """ImageNet synset id of each image, read from its folder."""
        out = []
        for p in self.paths:
            m = _SYNSET.search(str(p))
            out.append(m.group(1) if m else "")
        return out


def _file(relative: str) -> Path:
    path = env.recorded_dir() / relative
    if not path.is_file():
        raise MissingResource(f"recorded file {relative} (not under {env.recorded_dir()})",
                              "use the complete recorded folder described in its PROVENANCE.md")
    return path


def nested_trials(model: str, T: int) -> NestedTrials:
    """The exp0 nested-MC trials of a recorded model ('clip_b32' or 'siglip2_b16') at T in (4, 16, 64)."""
    if model not in MODELS:
        raise ValueError(f"unknown recorded model {model!r}; choose from {sorted(MODELS)}")
    if T not in NESTED_T:
        raise ValueError(f"recorded T must be one of {NESTED_T}, got {T}")
    with np.load(_file(f"exp0_nested_mc/{model}/exp0_trials_T{T}.npz"), allow_pickle=False) as z:
        pre, post, paths = z["trial_pre"].astype(np.float64), z["trial_post"].astype(np.float64), z["paths"]
    if pre.shape != post.shape or pre.shape[1] != paths.shape[0]:
        raise ValueError(f"malformed recorded trials for {model} T={T}: {pre.shape}, {post.shape}, {paths.shape}")
    return NestedTrials(model, T, pre, post, paths)


def ambiguity_subset() -> dict[str, np.ndarray]:
    """exp5: CLIP B/32 on 2000 CIFAR-100 test images, T=32, one trial (uncertainty, entropy, margin, ...)."""
    with np.load(_file("exp5_ambiguity/exp5_subset_clip_b32.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def summary(relative: str) -> dict:
    """A recorded JSON summary, e.g. 'ablation/prelim_ablation.json'."""
    return json.loads(_file(relative).read_text())
