"""Root pytest configuration: markers are declared in pyproject.toml; this file gates tiers.

Every tier runs when it can. What cannot run is skipped with a reason naming the missing
piece and how to supply it (the evaluators raise ``MissingResource`` with that text).
"""
import os

import pytest

pytest_plugins = ["pytester"]  # tests run throwaway projects (tests/test_judge.py: parametrize_with_claims)

# the suite never reaches the network: Hugging Face in offline mode for every test (mcdo's own loads set it
# themselves; this covers what a test calls directly)
if os.environ.get("MCDO_ALLOW_DOWNLOAD") != "1":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_report_header(config):
    rec = os.environ.get("MCDO_RECORDED_DIR") or "unset (recorded tier skipped)"
    data = os.environ.get("MCDO_DATA_ROOT") or "unset (gpu-tier data sets skipped)"
    return [f"mcdo: MCDO_RECORDED_DIR={rec}", f"mcdo: MCDO_DATA_ROOT={data}",
            f"mcdo: MCDO_CACHE_DIR={os.environ.get('MCDO_CACHE_DIR') or '~/.cache/mcdo'}"]


def pytest_collection_modifyitems(config, items):
    """Skip gpu-marked items up front when there is no CUDA device (the reason says so)."""
    # claim tests report their own precise reason (not implemented / no GPU / missing weights)
    gpu_items = [i for i in items if i.get_closest_marker("gpu") and not i.nodeid.startswith("claims/")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="gpu tier: no CUDA device here; run `pytest claims -m gpu` on a GPU machine "
                                   "with the pretrained weights in the open_clip / Hugging Face cache")
    for item in gpu_items:
        item.add_marker(skip)
