"""Issue 24.4: the fast paths as a GPU runs them, checked on a CPU. On CUDA the masks are drawn without reading
anything back to the host (``MCDropout.exact`` off): here that path runs with every host read-back made to raise,
and gives the exact path's features. ``compile`` runs the passes under ``torch.compile``: the same features to
rounding, and the compiler really ran."""
from __future__ import annotations

import functools

import pytest
import torch

from mcdo.dropout import inject_uniform_linear_dropout, mc_mode
from mcdo.fastpath import CLIPViTRunner
from mcdo.fastpath_timm import TimmViTRunner
from mcdo.masks import image_keys, row_keys
from mcdo.sampling import make_runner, mc_sample
from mcdo.testing import random_encoder

RUNNERS = {"tiny-clip": CLIPViTRunner, "tiny-siglip": TimmViTRunner}
HOST_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__")


@functools.lru_cache(maxsize=None)
def _encoder(name: str):
    return random_encoder(name)


def _passes(name: str, t: int, exact: bool | None, compile: str = "off", host_reads_raise: bool = False,
            monkeypatch=None) -> torch.Tensor:
    """t keyed MC passes (p = 0.2, faithful: every site drops) of two random images through ``name``'s fast path."""
    enc = _encoder(name)
    tower = enc.vision_tower
    torch.manual_seed(1)
    x = torch.randn(2, 3, enc.spec.image_size, enc.spec.image_size)
    ctl = inject_uniform_linear_dropout(tower, 0.2, "faithful")
    ctl.exact = exact
    try:
        runner = make_runner(tower, ctl, torch.float32, compile)
        assert type(runner) is RUNNERS[name]
        with torch.no_grad(), mc_mode(ctl):
            state = runner.prefix(x)
            keys = row_keys(image_keys(x, 0), torch.arange(t))
            if host_reads_raise:
                def refuse(self, *args, **kwargs):
                    raise AssertionError("a host read-back inside the T loop")

                for method in HOST_READS:
                    monkeypatch.setattr(torch.Tensor, method, refuse)
            ctl.row_keys = keys
            out = runner.suffix(state, t)
            if host_reads_raise:
                monkeypatch.undo()
            return out.clone()
    finally:
        ctl.row_keys = None
        ctl.remove()


@pytest.mark.parametrize("name", list(RUNNERS))
def test_the_no_sync_path_reads_nothing_back_and_draws_the_exact_masks(name, monkeypatch):
    exact = _passes(name, 6, exact=True)
    no_sync = _passes(name, 6, exact=False, host_reads_raise=True, monkeypatch=monkeypatch)
    assert torch.equal(no_sync, exact)
    assert not torch.allclose(exact[:2], exact[2:4])  # passes differ: dropout fired (p = 0.2)
    with pytest.raises(AssertionError, match="host read-back"):  # the exact path does read back, and is caught
        _passes(name, 6, exact=True, host_reads_raise=True, monkeypatch=monkeypatch)
    monkeypatch.undo()


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNNERS))
def test_the_compiled_path_equals_the_eager_one(name):
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    eager = _passes(name, 4, exact=False)
    compiled = _passes(name, 4, exact=False, compile="default")
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert graphs == 1  # the compiler ran (not a silent eager call), as one graph: no break for CUDA graphs to stop at
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)  # fused float32 kernels: rounding only
    again = _passes(name, 4, exact=False, compile="default")  # a new runner, as each mc_sample call makes
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs  # reused, not compiled again
    assert torch.equal(again, compiled)
    assert not torch.allclose(eager[:2], eager[2:4], rtol=1e-3, atol=1e-4)  # and the passes differ
    torch._dynamo.reset()


def test_compile_modes_are_checked_and_recorded():
    enc = random_encoder("tiny-clip")
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match="unknown compile mode 'fast'.*reduce-overhead"):
        mc_sample(enc.vision_tower, x, T=2, compile="fast", progress=False)
    assert "compile" not in mc_sample(enc.vision_tower, x, T=2, progress=False).config  # eager keeps its cache key
