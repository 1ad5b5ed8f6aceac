"""Keyed dropout masks: exact in distribution (against the Binomial and Geometric laws), and per-image results
that do not depend on batch size, chunking, shards or the runner (fast path against generic hooks)."""
import numpy as np
import pytest
import torch
from scipy import stats as sps

from mcdo import masks, sampling
from mcdo.models import load
from mcdo.sampling import mc_sample

# differently shaped matrix products reorder fp32 sums: what remains between two batchings of the same image is
# within 1e-5 relative plus 1e-5 of the array's largest magnitude (measured: ~2e-7 absolute on tiny-clip features of
# scale ~1); one different mask moves a feature by O(its scale)
RTOL, ATOL_OF_MAX = 1e-5, 1e-5


def test_uniform_is_uniform_and_keys_are_distinct():
    u = masks.uniform(torch.arange(200_000, dtype=torch.int64)).numpy()
    assert u.min() > 0 and u.max() <= 1
    assert sps.kstest(u, "uniform").pvalue > 1e-3
    assert len(np.unique(masks.mix(torch.arange(100_000)).numpy())) == 100_000  # a bijection
    for lag in (1, 2, 64):  # consecutive counters (one stream's draws) are uncorrelated: |r| < 4 / sqrt(n)
        assert abs(np.corrcoef(u[:-lag], u[lag:])[0, 1]) < 4 / np.sqrt(len(u))


def test_drops_are_bernoulli_per_row():
    n_row, p, rows = 3000, 0.02, 4000
    keys = masks.mix(torch.arange(rows, dtype=torch.int64) + 77)
    r, pos = masks.drop_positions(keys, site=5, n_row=n_row, p=p)
    assert (pos >= 0).all() and (pos < n_row).all()
    counts = np.bincount(r.numpy(), minlength=rows)
    # per-row counts ~ Binomial(n_row, p): chi-square over the count histogram
    k = np.arange(counts.max() + 1)
    expected = rows * sps.binom.pmf(k, n_row, p)
    lo, hi = sps.binom.ppf([0.005, 0.995], n_row, p).astype(int)
    obs = [counts[counts <= lo].size, *[(counts == v).sum() for v in range(lo + 1, hi)], counts[counts >= hi].size]
    exp = [expected[: lo + 1].sum(), *expected[lo + 1: hi], rows - expected[: hi].sum()]
    assert sps.chisquare(obs, np.array(exp) * sum(obs) / sum(exp)).pvalue > 1e-3
    # each row's positions are distinct; every element is dropped with probability p, whatever its place
    assert len(set(zip(r.tolist(), pos.tolist()))) == len(r)
    per_position = np.bincount(pos.numpy(), minlength=n_row)
    assert abs(per_position[: n_row // 2].mean() - per_position[n_row // 2:].mean()) < 6 * np.sqrt(rows * p / (n_row / 2))


def test_extension_and_the_cuda_form_give_the_same_drops(monkeypatch):
    keys = masks.mix(torch.arange(50, dtype=torch.int64))
    r, pos = masks.drop_positions(keys, 3, 500, 0.05)
    monkeypatch.setattr(masks, "draws", lambda n_row, p, exact=False: 4)  # many short rounds: counter-based streams
    r2, pos2 = masks.drop_positions(keys, 3, 500, 0.05)
    assert torch.equal(r, r2) and torch.equal(pos, pos2)
    monkeypatch.undo()
    a, b = torch.ones(50, 500), torch.ones(50, 500)
    masks.zero_sparse(a, r, pos)
    rc, posc = masks.drop_positions(keys, 3, 500, 0.05, exact=False)  # what CUDA does, without the host check
    masks.zero_dense(b, rc, posc)
    assert torch.equal(a, b)


@pytest.mark.parametrize("rows,n_row,p", [(6, 500, 0.05), (40, 30, 0.01), (3, 20, 0.6)],
                         ids=["every-row-drops", "rows-without-drops", "dense"])
def test_flat_drop_index_zeroes_exactly_the_listed_drops(rows, n_row, p):
    """``drop_index`` (the CPU form: draws past a row's end repeat the row's first drop) zeroes the same elements as
    the (row, position) pairs, whether every row has a drop or some have none (the filtered fallback)."""
    keys = masks.mix(torch.arange(rows, dtype=torch.int64) + 11)
    r, pos = masks.drop_positions(keys, 9, n_row, p)
    idx = masks.drop_index(keys, 9, n_row, p)
    assert ((idx >= 0) & (idx < rows * n_row)).all()
    assert set(idx.tolist()) == set((r * n_row + pos).tolist())
    a, b = torch.ones(rows, n_row), torch.ones(rows, n_row)
    masks.zero_sparse(a, r, pos)
    masks.apply_drops(b, keys, 9, p, exact=True)
    assert torch.equal(a, b) and (a == 0).any()
    if n_row == 30:  # 0.99^30: about 30 of 40 rows have no drop, so the fallback ran
        assert (a == 1).all(dim=1).any()


def test_masks_depend_on_seed_image_pass_and_site():
    img = masks.image_keys(torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)), seed=1)
    assert len(set(img.tolist())) == 3
    dup = torch.zeros(2, 3, 8, 8)
    assert masks.image_keys(dup, 1)[0] == masks.image_keys(dup, 1)[1] != masks.image_keys(dup, 2)[0]
    rows = masks.row_keys(img, torch.arange(4))
    assert rows.numel() == 12 and len(set(rows.tolist())) == 12
    assert torch.equal(masks.row_keys(img, torch.arange(2, 4)), rows[6:])  # pass 2 of image i, whatever the chunk
    assert masks.site_key("a.mlp.c_fc") != masks.site_key("a.mlp.c_proj")


@pytest.fixture(scope="module")
def tower():
    torch.manual_seed(0)
    return load("tiny-clip", pretrained=False, progress=False).vision_tower


@pytest.fixture(scope="module")
def images():
    return torch.randn(7, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _run(tower, x, **kw):
    kw = dict(dict(T=16, p=0.1, seed=3, progress=False, keep_samples=True), **kw)
    return mc_sample(tower, x, **kw)


def _same(a, b):
    for k in ("mean_pre", "var_pre", "mean_post", "var_post", "samples"):
        x, y = getattr(a, k), getattr(b, k)
        np.testing.assert_allclose(x, y, rtol=RTOL, atol=ATOL_OF_MAX * np.abs(y).max(), err_msg=k)


@pytest.mark.parametrize("mode", ["as_published", "faithful"])
def test_per_image_results_do_not_depend_on_batching_chunking_or_shards(tower, images, mode):
    ref = _run(tower, images, batch_size=1, max_rows=64, mode=mode)
    for batch_size, max_rows in ((7, 64), (3, 5), (2, 112), (4, 1)):
        _same(ref, _run(tower, images, batch_size=batch_size, max_rows=max_rows, mode=mode))
    a, b = _run(tower, images[:4], batch_size=2, mode=mode), _run(tower, images[4:], batch_size=3, mode=mode)
    _same(ref, sampling.MCResult(16, *(np.concatenate([getattr(a, k), getattr(b, k)])
                                       for k in ("mean_pre", "var_pre", "mean_post", "var_post", "samples"))))
    assert not np.allclose(ref.samples, _run(tower, images, seed=4, mode=mode).samples)  # the seed matters


@pytest.mark.parametrize("mode", ["as_published", "faithful"])
def test_fast_path_and_generic_hooks_draw_the_same_masks(tower, images, mode, monkeypatch):
    fast = _run(tower, images, batch_size=3, max_rows=16, mode=mode)
    assert fast.config["runner"] == "CLIPViTRunner"
    monkeypatch.setattr(sampling, "supports", lambda t: False)
    generic = _run(tower, images, batch_size=3, max_rows=16, mode=mode)
    assert generic.config["runner"] == "_GenericRunner"
    _same(fast, generic)


def test_a_resumed_run_with_other_chunks_finds_its_cached_batches(tower, images, tmp_path):
    a = _run(tower, images, batch_size=2, max_rows=8, cache_dir=tmp_path)
    files = sorted(tmp_path.iterdir())
    b = _run(tower, images, batch_size=2, max_rows=64, cache_dir=tmp_path)
    assert sorted(tmp_path.iterdir()) == files  # every batch read back, none recomputed
    _same(a, b)


def test_chunking_defaults_and_the_cuda_arithmetic(monkeypatch, tower, images):
    from mcdo import chunking

    assert chunking.rows_for(8 * 2**30, 2**20) == 4915 and chunking.rows_for(10, 2**20) == 1
    assert chunking.rows_for(2**50, 1) == chunking.MAX_ROWS
    assert chunking.batch_for(4915) == chunking.CUDA_BATCH and chunking.batch_for(10) == 10
    assert chunking.choose(tower, None, 64, None, None)[:2] == chunking.CPU_DEFAULT
    assert chunking.choose(tower, None, 64, 3, None)[:2] == (3, 64)

    class OnCuda:  # a tower whose parameters say cuda: the free-memory branch, with the measurement faked
        def parameters(self):
            yield type("P", (), {"device": torch.device("cuda")})()

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (8 * 2**30, 80 * 2**30))
    monkeypatch.setattr(chunking, "measure_row_bytes", lambda run, rows=8: 2**20)
    b, rows, why = chunking.choose(OnCuda(), None, 64, None, None, run_rows=lambda r: None)
    monkeypatch.undo()
    assert (b, rows) == (chunking.CUDA_BATCH, 4915) and "8.0 GiB free" in why
    r = mc_sample(tower, images[:2], T=4, progress=False)
    assert r.config["batch_size"] == 1 and r.config["max_rows"] == 64 and r.config["chunking"] == "cpu defaults"


def test_pass_flops_counts_every_matrix_product():
    """The counter against a closed form: ViT-B-32 at 224 px, 50 tokens, 12 blocks of width 768 (2 FLOPs per
    multiply-add: the qkv, output and MLP products, attention's two token-token products, the patch convolution
    and the final projection)."""
    from mcdo.flops import achieved, pass_flops

    tower = load("clip-vit-b-32", pretrained=False).vision_tower
    n, w, blocks = 50, 768, 12
    per_block = n * w * (3 * w + w + 2 * 4 * w) + 2 * n * n * w
    closed = 2 * (blocks * per_block + 49 * 3 * 32 * 32 * w + w * 512)
    assert pass_flops(tower, 224) == closed
    assert achieved(2.0, 64, closed) == 128 * closed
