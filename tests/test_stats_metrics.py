"""Detection, calibration, spectra, paired tests and CIs against independent references."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sst
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from mcdo import stats as S


def _scores_labels(rng, n=300, ties=False):
    y = rng.integers(0, 2, size=n)
    s = rng.normal(size=n) + 0.8 * y
    if ties:
        s = np.round(s, 1)
    return s, y


@pytest.mark.parametrize("ties", [False, True])
def test_auroc_and_aupr_against_sklearn(rng, ties):
    s, y = _scores_labels(rng, ties=ties)
    assert S.auroc(s, y) == pytest.approx(roc_auc_score(y, s), rel=1e-12)
    assert S.aupr(s, y) == pytest.approx(average_precision_score(y, s), rel=1e-12)


def naive_fpr95(s, y):
    """Scan thresholds from high to low; first one whose TPR reaches 95%."""
    for t in sorted(set(s), reverse=True):
        tpr = np.mean(s[y == 1] >= t)
        if tpr >= 0.95:
            return np.mean(s[y == 0] >= t)


@pytest.mark.parametrize("ties", [False, True])
def test_fpr95_against_naive_scan_and_roc_curve(rng, ties):
    s, y = _scores_labels(rng, ties=ties)
    got = S.fpr_at_tpr(s, y)
    assert got == pytest.approx(naive_fpr95(s, y))
    fpr, tpr, _ = roc_curve(y, s)
    assert got == pytest.approx(fpr[np.searchsorted(tpr, 0.95, side="left")])


@given(st.lists(st.integers(-100, 100), min_size=4, max_size=40), st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_detection_properties(values, seed):
    s = np.array(values) / 10.0  # a grid: ties are exact and monotone maps keep them
    y = np.random.default_rng(seed).integers(0, 2, size=s.size)
    if y.all() or not y.any():
        return
    a = S.auroc(s, y)
    assert 0.0 <= a <= 1.0
    assert S.auroc(-s, y) == pytest.approx(1.0 - a)  # flipping the score flips the AUROC
    assert S.auroc(np.exp(s / 10), y) == pytest.approx(a)  # monotone maps keep ranks
    assert 0.0 <= S.fpr_at_tpr(s, y) <= 1.0 and 0.0 < S.aupr(s, y) <= 1.0


def test_detection_rejects_one_class():
    with pytest.raises(ValueError, match="positive and one negative"):
        S.auroc(np.arange(3.0), np.ones(3))


def naive_ece(p, y, bins):
    conf, pred = p.max(1), p.argmax(1)
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i in range(len(y)) if (lo < conf[i] <= hi) or (b == 0 and conf[i] == 0)]
        if idx:
            acc = np.mean([pred[i] == y[i] for i in idx])
            total += len(idx) / len(y) * abs(acc - np.mean(conf[idx]))
    return total


def test_calibration_against_naive_loops(rng):
    logits = rng.normal(size=(400, 5)) * 2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 5, size=400)
    assert S.ece(p, y, 15) == pytest.approx(naive_ece(p, y, 15), abs=1e-12)
    assert S.nll(p, y) == pytest.approx(-np.mean([np.log(p[i, y[i]]) for i in range(400)]))
    assert S.brier(p, y) == pytest.approx(np.mean([sum((p[i, c] - (c == y[i])) ** 2 for c in range(5)) for i in range(400)]))
    np.testing.assert_allclose(S.entropy(p), sst.entropy(p, axis=1))


def test_ece_of_a_calibrated_simulation_is_small(rng):
    conf = rng.uniform(0.2, 1.0, size=50000)
    correct = rng.uniform(size=conf.size) < conf  # calibrated by construction
    p = np.stack([conf, 1 - conf], 1)
    y = np.where(correct, 0, 1)
    assert S.ece(p, y) < 0.01
    assert S.ece(np.stack([np.ones(10), np.zeros(10)], 1), np.ones(10, int)) == pytest.approx(1.0)


def test_kurtosis_against_scipy(rng):
    x = rng.standard_t(5, size=(3, 2000))
    np.testing.assert_allclose(S.kurtosis(x, axis=1), sst.kurtosis(x, axis=1, fisher=False))
    assert S.kurtosis(rng.normal(size=400000)) == pytest.approx(3.0, abs=0.05)


@given(st.integers(1, 30), st.floats(1e-3, 1e3))
def test_effective_rank_closed_forms(d, scale):
    flat = np.full(d, scale)
    assert S.effective_rank(flat) == pytest.approx(d)
    assert S.participation_ratio(flat) == pytest.approx(d)
    one = np.r_[scale, np.zeros(d)]
    assert S.effective_rank(one) == pytest.approx(1.0)
    assert S.participation_ratio(one) == pytest.approx(1.0)


def test_effective_rank_naive_entropy(rng):
    lam = rng.exponential(size=20)
    p = lam / lam.sum()
    assert S.effective_rank(lam) == pytest.approx(np.exp(sst.entropy(p)))
    assert 1.0 <= S.participation_ratio(lam) <= S.effective_rank(lam) <= 20  # PR <= erank always
    with pytest.raises(ValueError, match="non-negative"):
        S.effective_rank(np.array([1.0, -1.0]))


def test_paired_change_against_loops_and_normal_approximation(rng):
    before = rng.gamma(3.0, size=500)
    after = before * rng.lognormal(0.1, 0.3, size=500)
    r = S.paired_change(before, after)
    assert r.frac_increased == sum(a > b for a, b in zip(after, before)) / 500
    assert r.frac_decreased == sum(a < b for a, b in zip(after, before)) / 500
    assert r.mean_relative_change == pytest.approx(after.mean() / before.mean() - 1)
    # large-sample normal approximation of the signed-rank statistic, by hand
    d = after - before
    ranks = sst.rankdata(np.abs(d))
    w_plus = ranks[d > 0].sum()
    mu, sd = 500 * 501 / 4, np.sqrt(500 * 501 * 1001 / 24)
    p_greater = sst.norm.sf((w_plus - mu) / sd)
    assert r.p_greater == pytest.approx(p_greater, rel=0.05)
    assert r.p_two_sided == pytest.approx(min(1.0, 2 * min(p_greater, 1 - p_greater)), rel=0.05)


def test_paired_change_identical_is_an_error():
    with pytest.raises(ValueError, match="identical"):
        S.paired_change(np.ones(5), np.ones(5))


def test_bootstrap_ci_coverage_of_a_mean(rng):
    # the 95% percentile CI of the mean covers the true mean in ~95% of repeats
    hits = 0
    for rep in range(200):
        x = rng.normal(loc=1.0, size=60)
        lo, hi = S.bootstrap_ci(np.mean, x, n_boot=400, seed=rep)
        hits += lo <= 1.0 <= hi
    assert 0.89 <= hits / 200 <= 0.99


def test_bootstrap_ci_matches_scipy_percentile(rng):
    x = rng.exponential(size=200)
    lo, hi = S.bootstrap_ci(np.median, x, n_boot=4000, seed=3)
    ref = sst.bootstrap((x,), np.median, n_resamples=4000, method="percentile", random_state=3).confidence_interval
    assert lo == pytest.approx(ref.low, rel=0.05) and hi == pytest.approx(ref.high, rel=0.05)


def test_bootstrap_keeps_pairs_together(rng):
    a = rng.normal(size=100)
    lo, hi = S.bootstrap_ci(lambda u, v: float(np.mean(u - v)), a, a.copy(), n_boot=100)
    assert lo == hi == 0.0


def test_jackknife_over_trials_covers_icc_given_the_images(rng):
    # the trial jackknife conditions on the images: hold them fixed, redraw only trial noise
    b = rng.normal(scale=np.sqrt(3), size=200)
    truth = np.var(b, ddof=1) / (np.var(b, ddof=1) + 1.0)
    hits = 0
    for rep in range(200):
        x = b[None, :] + rng.normal(size=(10, 200))
        lo, hi = S.jackknife_ci_trials(S.icc, x)
        hits += lo <= truth <= hi
    assert 0.88 <= hits / 200 <= 0.995


def test_binomial_and_hanley_mcneil_cis(rng):
    lo, hi = S.binomial_ci(401, 500)
    assert lo < 0.802 < hi and hi - lo == pytest.approx(2 * 1.96 * np.sqrt(0.802 * 0.198 / 500), rel=0.05)
    # Hanley-McNeil SE vs the spread of AUROC in simulation
    aucs = []
    for _ in range(400):
        s, y = rng.normal(size=300), np.r_[np.ones(100), np.zeros(200)]
        s[y == 1] += 0.5
        aucs.append(S.auroc(s, y))
    lo, hi = S.auroc_ci_hanley_mcneil(float(np.mean(aucs)), 100, 200)
    assert (hi - lo) / (2 * 1.96) == pytest.approx(np.std(aucs), rel=0.15)


def test_spearman_fisher_ci_coverage(rng):
    hits = 0
    for _ in range(300):
        z = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], size=150)
        lo, hi = S.spearman_ci_fisher(sst.spearmanr(z[:, 0], z[:, 1]).statistic, 150)
        hits += lo <= S.spearman_from_pearson(0.5) <= hi
    assert 0.9 <= hits / 300 <= 0.99


def test_stratified_bootstrap_keeps_group_sizes_and_matches_scipy_two_sample(rng):
    # resampling within strata = scipy's independent resampling of each sample (paired=False)
    x0, x1 = rng.exponential(size=300), rng.exponential(scale=1.5, size=40)
    values, sid = np.r_[x0, x1], np.r_[np.zeros(300, int), np.ones(40, int)]
    sizes = set()

    def diff(v, k):
        sizes.add(((k == 0).sum(), (k == 1).sum()))
        return float(v[k == 1].mean() - v[k == 0].mean())

    lo, hi = S.bootstrap_ci(diff, values, sid, n_boot=4000, seed=5, strata=sid)
    assert sizes == {(300, 40)}
    ref = sst.bootstrap((x1, x0), lambda a, b: a.mean() - b.mean(), n_resamples=4000, method="percentile",
                        random_state=5, vectorized=False).confidence_interval
    assert lo == pytest.approx(ref.low, abs=0.05) and hi == pytest.approx(ref.high, abs=0.05)
    se = np.sqrt(x0.var(ddof=1) / 300 + x1.var(ddof=1) / 40)  # normal approximation
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)


def _fpr_closest_naive(s, y, tpr=0.95):
    """The MCM paper's FPR95 by brute force: every distinct score as a threshold (score >= t counts positive), from
    the highest down to the first that keeps every positive, the one whose TPR is closest to ``tpr``; on a tie the
    lower threshold."""
    best = None
    for t in sorted(set(s.tolist()), reverse=True):
        rate = np.mean(s[y == 1] >= t)
        fpr = np.mean(s[y == 0] >= t)
        if best is None or abs(rate - tpr) <= best[0]:
            best = (abs(rate - tpr), fpr)
        if rate == 1.0:
            break
    return best[1]


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 60), st.integers(2, 60), st.integers(0, 2**31 - 1), st.booleans())
def test_fpr_at_tpr_closest_matches_brute_force(n_pos, n_neg, seed, ties):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=n_pos + n_neg) + np.r_[np.ones(n_pos), np.zeros(n_neg)]
    if ties:
        s = np.round(s, 1)
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)].astype(int)
    assert S.fpr_at_tpr_closest(s, y) == pytest.approx(_fpr_closest_naive(s, y))


def test_fpr_at_tpr_closest_differs_from_at_least_rule():
    """The two FPR95 rules on few positives, where TPR moves in steps: they agree or the closest rule keeps fewer."""
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(7), np.zeros(200)].astype(int)
    s = rng.normal(size=207) + 2 * y
    # 7 positives: TPR 6/7 = 0.857 (distance 0.093) against 7/7 = 1.0 (distance 0.05): both rules take 7/7
    assert S.fpr_at_tpr_closest(s, y) == S.fpr_at_tpr(s, y)
    y = np.r_[np.ones(11), np.zeros(200)].astype(int)
    s = rng.normal(size=211) + 2 * y
    # 11 positives: 10/11 = 0.909 (distance 0.041) beats 11/11 (0.05): the closest rule keeps fewer positives
    assert S.fpr_at_tpr_closest(s, y) <= S.fpr_at_tpr(s, y)
    assert S.fpr_at_tpr_closest(s, y) == pytest.approx(_fpr_closest_naive(s, y))


def _ece_naive(conf, correct, n_bins):
    """Equal-width bins (lo, hi] over (0, 1], one sample at a time: bin = ceil(conf * n_bins) - 1."""
    sums = {}
    for c, k in zip(conf, correct):
        b = min(max(int(np.ceil(c * n_bins)) - 1, 0), n_bins - 1)
        s = sums.setdefault(b, [0, 0.0, 0.0])
        s[0] += 1
        s[1] += c
        s[2] += k
    n = len(conf)
    return sum(m / n * abs(acc / m - cs / m) for m, cs, acc in sums.values())


def test_ece_bins_matter_and_match_a_naive_loop(rng):
    """Four clusters of confidence, alternately under- and over-confident: 15 equal-width bins see each cluster's
    error, while one bin or two let neighbouring clusters cancel, so a binning bug cannot hide. The confidence = 1.0
    edge goes to the last bin (bins are (lo, hi]; torchmetrics puts 1.0 in a bin of its own past the last edge):
    stated here because it is a convention."""
    k, per = 20, 600  # the other classes share 1 - conf, so class 0 stays the top-1 even at 0.12
    centres, accs = (0.15, 0.35, 0.65, 0.85), (0.45, 0.05, 0.95, 0.55)
    conf = np.concatenate([rng.uniform(c - 0.03, c + 0.03, per) for c in centres] + [np.ones(20)])
    correct = np.concatenate([rng.random(per) < a for a in accs] + [np.ones(20, bool)]).astype(int)
    probs = np.empty((conf.size, k))
    probs[:, 0] = conf
    probs[:, 1:] = ((1 - conf) / (k - 1))[:, None]
    labels = np.where(correct == 1, 0, 1 + rng.integers(0, k - 1, conf.size))
    got = S.ece(probs, labels, n_bins=15)
    assert got == pytest.approx(_ece_naive(conf, correct, 15), abs=1e-12)
    assert got > 0.25  # every cluster is off by 0.3
    assert S.ece(probs, labels, n_bins=1) < 0.05 and S.ece(probs, labels, n_bins=2) < 0.05  # they cancel
    # the 20 images at confidence exactly 1.0 (all correct) sit in the last bin with the 0.85 cluster's top edge
    last = (conf > 14 / 15)
    assert S.ece(probs[last], labels[last], n_bins=15) == pytest.approx(_ece_naive(conf[last], correct[last], 15))


def test_ece_edges_go_to_the_lower_bin(rng):
    """A confidence exactly on a bin edge belongs to the bin below ((lo, hi]): 20 bins and confidences 0.25, 0.5,
    0.75 (exact in binary), mixed with others on both sides of each edge, against the naive loop."""
    k, n = 20, 900
    conf = rng.choice([0.25, 0.5, 0.75], n)
    conf[::3] += rng.choice([-0.02, 0.02], conf[::3].size)
    correct = (rng.random(n) < np.where(conf > 0.5, 0.9, 0.1)).astype(int)
    correct[np.isin(conf, (0.25, 0.5, 0.75))] = 1  # the edge images are all right: their bin decides the error
    probs = np.empty((n, k))
    probs[:, 0] = conf
    probs[:, 1:] = ((1 - conf) / (k - 1))[:, None]
    labels = np.where(correct == 1, 0, 1 + rng.integers(0, k - 1, n))
    assert S.ece(probs, labels, n_bins=20) == pytest.approx(_ece_naive(conf, correct, 20), abs=1e-12)


def test_mean_t_ci_is_scipys_t_interval():
    from scipy import stats as sps

    from mcdo.stats import mean_t_ci

    v = np.array([0.012, -0.004, 0.031])
    ref = sps.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=sps.sem(v))
    assert mean_t_ci(v) == pytest.approx(ref)
    with pytest.raises(ValueError):
        mean_t_ci([1.0])
