"""Dropout sites: p=0 is exact, p>0 samples, each site drops at rate p, norms untouched, state restored."""
import numpy as np
import pytest
import torch
from torch import nn

from mcdo.dropout import MODES, audit, inject_uniform_linear_dropout, mc_mode, sparse_drop_positions
from mcdo.models import load


@pytest.fixture(scope="module")
def tiny_clip():
    return load("tiny-clip", pretrained=False)


@pytest.fixture(scope="module")
def tiny_siglip():
    return load("tiny-siglip", pretrained=False)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("which", ["tiny_clip", "tiny_siglip"])
def test_p0_is_bitwise_deterministic_and_p_positive_samples(which, mode, request):
    enc = request.getfixturevalue(which)
    tower, x = enc.vision_tower, torch.randn(2, 3, enc.spec.image_size, enc.spec.image_size)
    with torch.no_grad():
        ref = tower(x)
        ctl = inject_uniform_linear_dropout(tower, 0.0, mode)
        with mc_mode(ctl):
            assert torch.equal(tower(x), ref)
        with mc_mode(ctl, p=0.2):
            a, b = tower(x), tower(x)
        assert not torch.equal(a, b) and not torch.equal(a, ref)
        ctl.remove()
        assert torch.equal(tower(x), ref)  # removal restores the tower exactly


def test_mc_mode_restores_the_previous_state(tiny_clip):
    ctl = inject_uniform_linear_dropout(tiny_clip.vision_tower, 0.1)
    try:
        ctl.only = "x"
        with mc_mode(ctl, p=0.3):
            assert ctl.active and ctl.p == 0.3
            with pytest.raises(RuntimeError):
                with mc_mode(ctl, p=0.5):
                    raise RuntimeError
            assert ctl.active and ctl.p == 0.3
        assert (ctl.active, ctl.p, ctl.only) == (False, 0.1, "x")
    finally:
        ctl.remove()


@pytest.mark.parametrize("sampler", ["sparse", "dense"])
@pytest.mark.parametrize("mode", MODES)
def test_each_site_drops_at_rate_p_within_binomial_error(tiny_clip, mode, sampler):
    tower, p = tiny_clip.vision_tower, 0.1
    ctl = inject_uniform_linear_dropout(tower, p, mode)
    ctl.record_rates, ctl.sampler = True, sampler
    with torch.no_grad(), mc_mode(ctl):
        for _ in range(20):
            tower(torch.randn(4, 3, 32, 32))
    ctl.remove()
    fired = [n for n in ctl.names if ctl.seen[n] > 0]
    assert fired
    for name in fired:
        n = ctl.seen[name]
        rate = ctl.dropped[name] / n
        assert abs(rate - p) < 4.5 * np.sqrt(p * (1 - p) / n), (name, rate, n)  # ~1e-5 two-sided per site


def test_normalisation_layers_are_untouched(tiny_siglip):
    tower = tiny_siglip.vision_tower
    norms = {n: (m, {k: v.clone() for k, v in m.state_dict().items()}) for n, m in tower.named_modules()
             if isinstance(m, nn.LayerNorm)}
    ctl = inject_uniform_linear_dropout(tower, 0.2, "faithful")
    assert not any(n in ctl.names for n in norms)
    with torch.no_grad(), mc_mode(ctl):
        tower(torch.randn(2, 3, 32, 32))
    ctl.remove()
    for name, (mod, before) in norms.items():
        assert not mod._forward_hooks and not mod.training
        for k, v in mod.state_dict().items():
            assert torch.equal(v, before[k]), name


def test_audit_counts_silent_wrappers_on_multihead_attention(tiny_clip):
    x = torch.randn(1, 3, 32, 32)
    ctl = inject_uniform_linear_dropout(tiny_clip.vision_tower, 0.01, "as_published")
    a = audit(ctl, x)
    ctl.remove()
    blocks = len(tiny_clip.vision_tower.transformer.resblocks)
    assert a["wrapped"] == 3 * blocks  # out_proj, c_fc, c_proj are nn.Linear modules
    assert a["firing"] == a["changes_output"] == 2 * blocks  # out_proj is called functionally by MHA
    assert all(s.endswith("attn.out_proj") for s in a["silent"])
    ctl = inject_uniform_linear_dropout(tiny_clip.vision_tower, 0.01, "faithful")
    f = audit(ctl, x)
    ctl.remove()
    assert f["wrapped"] == f["firing"] == f["changes_output"] == 4 * blocks + 1  # + the final projection


def test_double_injection_and_bad_options_are_refused(tiny_clip):
    ctl = inject_uniform_linear_dropout(tiny_clip.vision_tower, 0.01)
    with pytest.raises(RuntimeError, match="already has"):
        inject_uniform_linear_dropout(tiny_clip.vision_tower, 0.01)
    ctl.remove()
    with pytest.raises(ValueError, match="mode"):
        inject_uniform_linear_dropout(tiny_clip.vision_tower, 0.01, "everywhere")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        inject_uniform_linear_dropout(tiny_clip.vision_tower, 1.0)


def test_sparse_positions_are_iid_bernoulli():
    """Geometric-gap sampling against the Bernoulli law: counts, uniform positions, no repeats."""
    torch.manual_seed(0)
    n, p, reps = 5000, 0.01, 2000
    counts = np.array([sparse_drop_positions(n, p).numel() for _ in range(reps)])
    assert counts.mean() == pytest.approx(n * p, abs=4 * np.sqrt(n * p * (1 - p) / reps))
    assert counts.var() == pytest.approx(n * p * (1 - p), rel=0.15)
    pos = torch.cat([sparse_drop_positions(n, p) for _ in range(reps)]).numpy()
    hist = np.bincount(pos * 10 // n, minlength=10)
    from scipy.stats import chisquare

    assert chisquare(hist).pvalue > 1e-4  # positions uniform over the tensor
    one = sparse_drop_positions(n, 0.3)
    assert torch.unique(one).numel() == one.numel() and int(one.max()) < n
