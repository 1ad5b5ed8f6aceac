"""The model registry (``mcdo.model_specs``, torch-free data) with its toy architectures registered with open_clip
at import time (no files, no download)."""
from __future__ import annotations

import open_clip

from ..model_specs import (ALIASES, REGISTRY, TINY_CONFIGS, TINY_SIGLIP_HF, ModelSpec, get_spec,  # noqa: F401
                           unknown_model)

for _name, _cfg in TINY_CONFIGS.items():
    open_clip.factory._MODEL_CONFIGS.setdefault(_name, _cfg)
