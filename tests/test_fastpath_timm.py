"""The timm ViT fast path (SigLIP, SigLIP2, timm's own ViTs) draws the generic hook runner's masks and gives its
features: the same (seed, image, pass, site) masks at the tower's own module names, so a site the fast path dropped
at the wrong place, forgot, or scaled twice moves a feature by O(its scale)."""
import numpy as np
import pytest
import torch

from mcdo import sampling
from mcdo.fastpath_timm import supports_timm
from mcdo.models import load
from mcdo.models.registry import REGISTRY
from mcdo.sampling import mc_sample

RTOL, ATOL_OF_MAX = 1e-5, 1e-5  # reordered fp32 sums only (as tests/test_masks.py)


def _both(tower, x, monkeypatch, **kw):
    kw = dict(dict(T=6, p=0.1, seed=3, progress=False, keep_samples=True, batch_size=2, max_rows=8), **kw)
    fast = mc_sample(tower, x, **kw)
    with monkeypatch.context() as m:
        m.setattr(sampling, "supports_timm", lambda t: False)
        generic = mc_sample(tower, x, **kw)
    return fast, generic


def _same(a, b):
    for k in ("mean_pre", "var_pre", "mean_post", "var_post", "samples"):
        x, y = getattr(a, k), getattr(b, k)
        np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL_OF_MAX * np.abs(y).max(), err_msg=k)


def _timm_vit(**kw):
    import timm

    torch.manual_seed(0)
    return timm.create_model("test_vit", pretrained=False, img_size=32, patch_size=8, **kw).eval()


TOWERS = {
    # open_clip's SigLIP layout at toy size: TimmModel around a class-token ViT with a MAP head, dynamic image size
    "open_clip-siglip-tiny": lambda: load("tiny-siglip", pretrained=False).vision_tower,
    # timm's own ViTs: class-token pooling (the last block for the class token only) with layer scale and a
    # classifier head; average pooling over the patch tokens
    "timm-token-layerscale-head": lambda: _timm_vit(global_pool="token", init_values=0.5, num_classes=7),
    "timm-avg": lambda: _timm_vit(global_pool="avg", class_token=False, num_classes=0),
    # SO400M SigLIP2's MLP activation: timm's GELUTanh
    "timm-map-gelu-tanh": lambda: _with_gelu_tanh(_timm_vit(global_pool="map", class_token=False, num_classes=0)),
}


def _with_gelu_tanh(tower):
    from timm.layers.activations import GELUTanh

    for m in tower.modules():
        if hasattr(m, "act") and isinstance(m.act, torch.nn.GELU):
            m.act = GELUTanh()
    return tower


@pytest.mark.parametrize("mode", ["as_published", "faithful"])
@pytest.mark.parametrize("name", list(TOWERS))
def test_timm_fast_path_equals_the_generic_runner(name, mode, monkeypatch):
    tower = TOWERS[name]()
    assert supports_timm(tower), name
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    fast, generic = _both(tower, x, monkeypatch, mode=mode)
    assert (fast.config["runner"], generic.config["runner"]) == ("TimmViTRunner", "_GenericRunner")
    assert float(generic.var_pre.mean()) > 1e-6  # the dropout moves the features: the comparison has signal
    _same(fast, generic)


def test_tiling_the_passes_changes_nothing(monkeypatch):
    """On a CPU the runner splits a chunk into tiles of passes (``fastpath.TILE_TOKENS``): one tile or many, each row
    keeps its mask keys."""
    from mcdo import fastpath

    tower = TOWERS["open_clip-siglip-tiny"]()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    kw = dict(T=12, p=0.1, seed=1, progress=False, keep_samples=True, batch_size=2, max_rows=24)
    monkeypatch.setattr(fastpath, "TILE_TOKENS", 10**9)
    whole = mc_sample(tower, x, **kw)
    monkeypatch.setattr(fastpath, "TILE_TOKENS", 17 * 2 * 3)  # 17 tokens x 2 images x 3 passes a tile
    _same(mc_sample(tower, x, **kw), whole)


def test_siglip2_b16_fast_path_equals_the_generic_runner(monkeypatch):
    """The real SigLIP2 ViT-B-16 architecture (open_clip, random weights): MAP head, 196 tokens, no class token."""
    tower = load("siglip2-vit-b-16", pretrained=False).vision_tower
    assert supports_timm(tower)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    fast, generic = _both(tower, x, monkeypatch, T=3, batch_size=1, max_rows=3)
    assert float(generic.var_pre.mean()) > 1e-8
    _same(fast, generic)


@pytest.mark.parametrize("name", [n for n, s in REGISTRY.items() if s.family != "proxy"])
def test_every_registered_vision_tower_takes_a_fast_path(name):
    """Built on torch's meta device (no memory, no weights): each registry entry's open_clip tower is one the CLIP or
    the timm fast path reproduces, so none of the seeds' models falls back to module hooks."""
    import open_clip

    from mcdo.fastpath import supports

    with torch.device("meta"):
        tower = open_clip.create_model(REGISTRY[name].arch_name, pretrained=None, device="meta").visual
    assert supports(tower) != supports_timm(tower), name  # exactly one of them


def test_other_towers_stay_on_their_runners():
    from mcdo.fastpath import supports

    clip = load("tiny-clip", pretrained=False).vision_tower
    assert supports(clip) and not supports_timm(clip)
    assert not supports_timm(torch.nn.Linear(3, 3))
    odd = _timm_vit(global_pool="token")
    odd.blocks[0].mlp.act = torch.nn.SiLU()  # a layout the fast path does not reproduce: generic hooks
    assert not supports_timm(odd)
