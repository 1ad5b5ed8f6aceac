"""mcdo.stats reliability figures against naive loops, scipy and simulations with known answers."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats as sst

from mcdo import stats as S


def naive_icc(x: np.ndarray, kind: str) -> float:
    """Shrout & Fleiss mean squares by explicit loops (images = targets, trials = judges)."""
    k, n = x.shape
    grand = sum(x[j, i] for j in range(k) for i in range(n)) / (k * n)
    img = [sum(x[j, i] for j in range(k)) / k for i in range(n)]
    trl = [sum(x[j, i] for i in range(n)) / n for j in range(k)]
    bms = k * sum((m - grand) ** 2 for m in img) / (n - 1)
    wms = sum((x[j, i] - img[i]) ** 2 for j in range(k) for i in range(n)) / (n * (k - 1))
    jms = n * sum((m - grand) ** 2 for m in trl) / (k - 1)
    ems = sum((x[j, i] - img[i] - trl[j] + grand) ** 2 for j in range(k) for i in range(n)) / ((n - 1) * (k - 1))
    if kind == "1,1":
        return (bms - wms) / (bms + (k - 1) * wms)
    if kind == "2,1":
        return (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)
    return (bms - ems) / (bms + (k - 1) * ems)


@pytest.mark.parametrize("kind", ["1,1", "2,1", "3,1"])
def test_icc_matches_naive_mean_squares(kind, rng):
    x = rng.normal(size=(4, 30)) + rng.normal(size=30)[None, :] + rng.normal(size=(4, 1))
    assert S.icc(x, kind) == pytest.approx(naive_icc(x, kind), rel=1e-10)


def test_icc_recovers_known_population_value(rng):
    # between-image variance 3, within 1 -> ICC = 3 / 4
    n, k = 20000, 5
    x = rng.normal(scale=np.sqrt(3.0), size=n)[None, :] + rng.normal(size=(k, n))
    assert S.icc(x) == pytest.approx(0.75, abs=0.01)
    # the population SNR of the recorded estimator is 3 + 1/k
    assert S.snr(x) == pytest.approx(3.0 + 1.0 / k, rel=0.03)


def test_snr_is_the_documented_ratio_by_loops(rng):
    x = rng.gamma(2.0, size=(6, 40))
    means = [np.mean(x[:, i]) for i in range(40)]
    mu = sum(means) / 40
    signal = sum((m - mu) ** 2 for m in means) / 39
    noise = sum(sum((x[j, i] - means[i]) ** 2 for j in range(6)) / 5 for i in range(40)) / 40
    assert S.snr(x) == pytest.approx(signal / noise, rel=1e-12)


@given(arrays(np.float64, st.tuples(st.integers(2, 6), st.integers(3, 25)),
              elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)),
       st.floats(0.1, 100), st.floats(-50, 50))
@settings(max_examples=60, deadline=None)
def test_icc_snr_identity_and_affine_invariance(x, scale, shift):
    _, noise = S.signal_noise(x)
    if noise < 1e-9:
        return
    # exact identity between the two recorded estimators
    assert S.icc(x) == pytest.approx(S.icc_from_snr(S.snr(x), x.shape[0]), abs=1e-9)
    # reliability does not depend on the units of the score
    assert S.snr(scale * x + shift) == pytest.approx(S.snr(x), rel=1e-6, abs=1e-9)
    assert S.icc(scale * x + shift) == pytest.approx(S.icc(x), rel=1e-6, abs=1e-9)
    assert -1.0 / (x.shape[0] - 1) - 1e-9 <= S.icc(x) <= 1.0 + 1e-9


def test_pairwise_spearman_against_scipy_with_ties(rng):
    x = rng.integers(0, 5, size=(4, 50)).astype(float)  # many ties
    got = S.pairwise_spearman(x)
    ref = [sst.spearmanr(x[a], x[b]).statistic for a in range(4) for b in range(a + 1, 4)]
    np.testing.assert_allclose(got.pairs, ref, rtol=1e-12)
    assert got.median == pytest.approx(np.median(ref))
    assert got.iqr == pytest.approx(np.percentile(ref, 75) - np.percentile(ref, 25))


def test_two_trials_give_one_pair(rng):
    x = rng.normal(size=(2, 10))
    ps = S.pairwise_spearman(x)
    assert ps.pairs.shape == (1,) and ps.iqr == 0.0


def test_bad_shapes_and_constants_are_clear_errors():
    with pytest.raises(ValueError, match=r"\[K trials, N images\]"):
        S.snr(np.zeros(5))
    with pytest.raises(ValueError, match="at least 2 trials"):
        S.icc(np.zeros((1, 5)))
    with pytest.raises(ValueError, match="NaN"):
        S.snr(np.array([[1.0, np.nan], [1.0, 2.0]]))
    assert np.isnan(S.snr(np.ones((3, 4))))  # no signal, no noise
    assert S.snr(np.tile(np.arange(4.0), (3, 1))) == np.inf  # trials agree exactly


def test_spearman_brown_against_simulation(rng):
    # averaging m parallel measurements: reliability of the mean follows Spearman-Brown
    n, m = 40000, 4
    true = rng.normal(size=n)
    one = [true + rng.normal(scale=1.0, size=n) for _ in range(2)]
    r1 = np.corrcoef(one[0], one[1])[0, 1]
    mean_a = true + rng.normal(size=(m, n)).mean(axis=0)
    mean_b = true + rng.normal(size=(m, n)).mean(axis=0)
    rm = np.corrcoef(mean_a, mean_b)[0, 1]
    assert S.spearman_brown(r1, m) == pytest.approx(rm, abs=0.01)
    assert S.spearman_brown(0.5, 1) == pytest.approx(0.5)


def test_spearman_from_pearson_against_simulation(rng):
    rho = 0.6
    z = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=100000)
    assert S.spearman_from_pearson(rho) == pytest.approx(sst.spearmanr(z[:, 0], z[:, 1]).statistic, abs=0.006)


def test_gate_reports_every_figure():
    rng = np.random.default_rng(1)
    good = rng.normal(scale=3, size=300)[None, :] + rng.normal(size=(10, 300))
    bad = rng.normal(scale=0.5, size=300)[None, :] + rng.normal(size=(10, 300))
    g, b = S.reliability_gate(good), S.reliability_gate(bad)
    assert g.passed and g.snr_pass and g.icc_pass and g.spearman_pass
    assert not b.passed and not b.snr_pass and not b.icc_pass and not b.spearman_pass
    assert set(g.as_dict()) >= {"snr", "icc", "spearman_median", "passed"}
    # the gate is the conjunction of three thresholds applied to the published figures
    assert g.snr == S.snr(good) and g.icc == S.icc(good)
