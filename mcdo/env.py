"""Environment of a run: where recorded measurements, data sets and caches live.

All variables are optional. Nothing here downloads anything.
"""
from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path

from .errors import MissingData, MissingResource


def recorded_dir() -> Path:
    """The folder of recorded published measurements (``MCDO_RECORDED_DIR``)."""
    value = os.environ.get("MCDO_RECORDED_DIR")
    if not value:
        raise MissingResource(
            "recorded measurements (MCDO_RECORDED_DIR is unset)",
            "set MCDO_RECORDED_DIR to the folder holding exp0_nested_mc/ (in this workplace: ../shared/recorded)",
        )
    path = Path(value).expanduser()
    if not (path / "exp0_nested_mc").is_dir():
        raise MissingResource(
            f"recorded measurements (no exp0_nested_mc/ under MCDO_RECORDED_DIR={value})",
            "point MCDO_RECORDED_DIR at the recorded folder (it contains PROVENANCE.md and exp0_nested_mc/)",
        )
    return path


def data_root() -> Path:
    """Root of the real data sets (``MCDO_DATA_ROOT``): ImageNet val and the MOS OOD sets."""
    value = os.environ.get("MCDO_DATA_ROOT")
    if not value:
        raise MissingData(
            "real data sets (MCDO_DATA_ROOT is unset)",
            "set MCDO_DATA_ROOT to a folder with imagenet/val/<synset>/*.JPEG and iNaturalist/, SUN/, Places/, dtd/",
        )
    return Path(value).expanduser()


def cache_dir() -> Path:
    """Where features, samples and trained proxy models are cached (``MCDO_CACHE_DIR``)."""
    value = os.environ.get("MCDO_CACHE_DIR")
    path = Path(value).expanduser() if value else Path.home() / ".cache" / "mcdo"
    path.mkdir(parents=True, exist_ok=True)
    return path


def device() -> str:
    """Torch device: ``MCDO_DEVICE`` or CUDA when available, else CPU."""
    value = os.environ.get("MCDO_DEVICE")
    if value:
        return value
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=1)
def git_commit() -> str:
    """Short commit of the checkout (with '+dirty' for uncommitted changes), or 'unknown'."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
