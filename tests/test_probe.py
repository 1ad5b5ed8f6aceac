"""Frozen-feature probes: folds, metrics and tests against direct scikit-learn / scipy computations, the corrected
t-test against baycomp's correlated t-test and a simulation, and ``mcdo probe`` on a generated folder."""
import json

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.linear_model import Ridge
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import SVC

from mcdo.probe import compare, cv, pipeline


def _data(n=120, d=8, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(3, 8, n)
    x = rng.normal(size=(n, d)) + 0.6 * y[:, None] * rng.normal(size=(1, d))
    return x, y


def test_ordinal_cross_validation_is_the_direct_sklearn_computation():
    x, y = _data()
    splits = cv.folds(y, 10, seed=3)
    ref = list(StratifiedKFold(10, shuffle=True, random_state=3).split(x, y))
    assert all((a[0] == b[0]).all() and (a[1] == b[1]).all() for a, b in zip(splits, ref))
    r = cv.cross_validate("m", x, y, splits, "ridge", ordinal=True)
    s = cv.cross_validate("m", x, y, splits, "svc", ordinal=True)
    for i, (tr, te) in enumerate(ref):
        pred = np.clip(np.rint(Ridge(alpha=6.0).fit(x[tr], y[tr]).predict(x[te])), y.min(), y.max())
        assert r.per_fold["accuracy"][i] == pytest.approx(np.mean(pred == y[te]))
        assert r.per_fold["within1"][i] == pytest.approx(np.mean(np.abs(pred - y[te]) <= 1))
        assert r.per_fold["rmse"][i] == pytest.approx(np.sqrt(np.mean((pred - y[te]) ** 2)))
        svc = SVC().fit(x[tr], y[tr]).predict(x[te])
        assert s.per_fold["accuracy"][i] == pytest.approx(np.mean(svc == y[te]))
    assert list(r.n_test) == [len(te) for _, te in ref]


def test_nominal_labels_use_accuracy_and_macro_f1():
    x, y = _data(seed=1)
    splits = cv.folds(y, 5)
    r = cv.cross_validate("m", x, y, splits, "svc", ordinal=False)
    assert set(r.per_fold) == {"accuracy", "macro_f1"}
    tr, te = splits[0]
    pred = SVC().fit(x[tr], y[tr]).predict(x[te])
    assert r.per_fold["macro_f1"][0] == pytest.approx(f1_score(y[te], pred, average="macro"))
    assert cv.ordinal_values(["3", "10", "4"]).tolist() == [3, 10, 4] and cv.ordinal_values(["cat", "3"]) is None


def test_bad_label_sets_say_what_to_do():
    with pytest.raises(cv.ProbeDataError, match="only one class"):
        cv.check_labels(np.zeros(20, int), 10)
    with pytest.raises(cv.ProbeDataError, match=r"fewer images than the 10 folds.*b: 4.*--folds to 4"):
        cv.check_labels(np.r_[np.zeros(20, int), np.ones(4, int)], 10, ["a", "b"])


def test_paired_t_is_scipys():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.5, 0.05, 10), rng.normal(0.53, 0.05, 10)
    t = compare.paired_t(a, b)
    ref = sps.ttest_rel(b, a)
    assert t.t == pytest.approx(ref.statistic) and t.p == pytest.approx(ref.pvalue)


def test_corrected_t_is_baycomps_correlated_t_test():
    from baycomp.single import CorrelatedTTest

    rng = np.random.default_rng(3)
    a, b = rng.normal(0.5, 0.05, 10), rng.normal(0.52, 0.05, 10)
    t = compare.corrected_t(a, b, n_train=np.full(10, 900), n_test=np.full(10, 100))  # ratio 1/(k-1), baycomp's
    mean, var, df = CorrelatedTTest.compute_statistics(a, b)
    assert t.mean == pytest.approx(mean) and t.df == df
    post = sps.t(df, mean, np.sqrt(var))
    assert t.ci[0] == pytest.approx(post.ppf(0.025)) and t.ci[1] == pytest.approx(post.ppf(0.975))
    p_left, p_right = CorrelatedTTest.probs(a, b, rope=0)  # posterior P(b - a < 0), P(b - a > 0)
    assert t.p / 2 == pytest.approx(min(p_left, p_right))


def test_corrected_t_holds_its_level_where_the_paired_t_does_not():
    """Two equally good probes on overlapping CV folds: the corrected test rejects about 5% of the time, the
    naive paired t-test far more (Nadeau & Bengio 2003)."""
    rng = np.random.default_rng(4)
    n, k, rej_paired, rej_corrected, runs = 200, 10, 0, 0, 200
    for _ in range(runs):
        x = rng.normal(size=(n, 5))
        y = (x[:, 0] + rng.normal(size=n) > 0).astype(int)
        splits = cv.folds(y, k, seed=int(rng.integers(1 << 30)))
        # the same probe on two equally informative noisy copies of the features: equal true accuracy
        accs = []
        for f in (x + rng.normal(scale=1.0, size=x.shape), x + rng.normal(scale=1.0, size=x.shape)):
            accs.append(np.array([np.mean((f[te] @ np.linalg.lstsq(f[tr], y[tr] - 0.5, rcond=None)[0] > 0) == y[te])
                                  for tr, te in splits]))
        rej_paired += compare.paired_t(*accs).p < 0.05
        rej_corrected += compare.corrected_t(*accs, n_train=0.9 * n, n_test=0.1 * n).p < 0.05
    assert rej_corrected / runs <= 0.09
    assert rej_paired > rej_corrected


def test_pipeline_tests_every_pair_on_the_same_folds():
    x, y = _data(n=100)
    data = pipeline.ProbeData("toy", y - 3, [str(v) for v in range(3, 8)], None)
    feats = {"a": x, "b": x[:, ::-1] + 0.1, "c": x * 2}
    comp = pipeline.run(feats, data, np.arange(100), k=5)
    assert len(comp.tests) == 2 * 3 * 3  # probes x pairs x metrics
    t = comp.test("ridge", "accuracy", "a", "c")
    d = comp.results[("c", "ridge")].per_fold["accuracy"] - comp.results[("a", "ridge")].per_fold["accuracy"]
    assert t["corrected"].mean == pytest.approx(d.mean())
    assert "| a | ridge |" in pipeline.table(comp)
    json.dumps(pipeline.as_dict(comp), default=float)


def test_world_size_is_an_ordinal_task():
    d = pipeline.world_size(300, 13)
    assert d.ordinal and d.classnames[0] == "5" and set(d.values) <= set(range(5, 12))


def test_mcdo_probe_on_a_generated_folder(tmp_path, monkeypatch, capsys):
    from mcdo.cli import main
    from mcdo.testing import make_probe_folder

    monkeypatch.setenv("MCDO_CACHE_DIR", str(tmp_path / "cache"))
    folder = make_probe_folder(tmp_path / "otoliths", per_class=10)
    rc = main(["probe", "--models", "tiny-clip,tiny-siglip", "--random-weights", "--data", str(folder), "--quiet",
               "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "40 images (1 unreadable, skipped)" in out and "| tiny-siglip | svc |" in out
    rec = json.loads(next((tmp_path / "out").glob("otoliths-random-*.json")).read_text())
    assert rec["ordinal"] and rec["n_unreadable"] == 1 and len(rec["results"][0]["per_fold"]["accuracy"]) == 10
    assert len(list((tmp_path / "out").glob("otoliths-random-*-accuracy.png"))) == 1


@pytest.mark.parametrize("per_class,ages,message", [(10, (4,), "only one class"), (3, (4, 5), "fewer images than")])
def test_mcdo_probe_refuses_unusable_folders(tmp_path, monkeypatch, capsys, per_class, ages, message):
    from mcdo.cli import main
    from mcdo.testing import make_probe_folder

    monkeypatch.setenv("MCDO_CACHE_DIR", str(tmp_path / "cache"))
    folder = make_probe_folder(tmp_path / "d", ages=ages, per_class=per_class, broken=False)
    rc = main(["probe", "--models", "tiny-clip", "--random-weights", "--data", str(folder), "--quiet",
               "--out", str(tmp_path / "out")])
    assert rc == 2 and message in capsys.readouterr().err


def test_baselines_on_the_same_folds_match_a_naive_loop(rng):
    """Issue 22: every table and record carries what a probe must beat: the majority class and (ordinal) the
    rounded mean label, on the same folds, checked against a direct loop."""
    from mcdo.probe import cv

    y = rng.integers(1, 6, 200)
    splits = cv.folds(y, 5, seed=0)
    maj, mean = cv.baseline(y, splits, "majority", True), cv.baseline(y, splits, "mean", True)
    for i, (train, test) in enumerate(splits):
        vals, counts = np.unique(y[train], return_counts=True)
        assert maj.per_fold["accuracy"][i] == pytest.approx(np.mean(y[test] == vals[np.argmax(counts)]))
        guess = int(np.rint(y[train].mean()))
        assert mean.per_fold["rmse"][i] == pytest.approx(np.sqrt(np.mean((y[test] - guess) ** 2)))
    # a split whose training and test parts have different majorities: the baseline may only know the training part
    y2 = np.array([1] * 60 + [5] * 40 + [5] * 30 + [1] * 10)
    split = [(np.arange(100), np.arange(100, 140))]
    assert cv.baseline(y2, split, "majority", True).per_fold["accuracy"][0] == pytest.approx(10 / 40)


def test_degenerate_fold_differences_are_flagged_or_refused():
    """Issue 22: constant non-zero fold differences gave a zero-width CI and p = 0 with no word; NaN in a fold
    became 'inconclusive' silently."""
    from mcdo.probe import compare

    a, b = np.full(10, 0.5), np.full(10, 0.6)
    t = compare.corrected_t(a, b, 90, 10)
    assert t.ci == (pytest.approx(0.1), pytest.approx(0.1)) and "zero variance" in t.describe()
    bad = b.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match=r"fold\(s\) \[3\]"):
        compare.corrected_t(a, bad, 90, 10)


def test_ridgecv_chooses_its_alpha_inside_the_training_fold_as_a_naive_loo_loop(rng):
    """Issue 22: the second Ridge arm picks alpha by leave-one-out CV on the training fold alone; the alpha it
    picks equals the argmin of an explicit leave-one-out loop over the same grid."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import LeaveOneOut, cross_val_score

    from mcdo.probe import cv

    x = rng.normal(size=(40, 6))
    y = (x @ rng.normal(size=6) + rng.normal(scale=0.5, size=40)).round()
    est = cv._estimator("ridgecv", True, cv.RIDGE_ALPHA).fit(x, y)
    loo = [-cross_val_score(Ridge(alpha=a), x, y, cv=LeaveOneOut(), scoring="neg_mean_squared_error").mean()
           for a in cv.RIDGECV_ALPHAS]
    assert est.alpha_ == pytest.approx(cv.RIDGECV_ALPHAS[int(np.argmin(loo))])
    res = cv.cross_validate("m", x, y.astype(int), cv.folds(y.astype(int) % 2, 4), "ridgecv", True)
    assert set(res.per_fold) == set(cv.ORDINAL_METRICS)


def test_models_of_known_strength_on_shared_folds_match_a_direct_loop():
    """Issue 22: stand-ins that carry the label with a known, different strength per model (b's signal twice a's),
    so the comparison is not 0 against 0; every model's per-fold accuracy is the direct scikit-learn loop on ONE
    set of folds (re-drawn folds per model would break it), b beats a and both beat the majority baseline."""
    rng = np.random.default_rng(7)
    n, classes = 300, 5
    y = np.repeat(np.arange(classes), n // classes)
    basis = rng.normal(size=(classes, 16))

    def model(strength):
        x = strength * basis[y] + rng.normal(size=(n, 16))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    feats = {"a": model(0.5), "b": model(1.5)}
    data = pipeline.ProbeData("known", y, [str(v) for v in range(classes)], None)
    comp = pipeline.run(feats, data, np.arange(n), k=10, seed=0, probes=("ridge",), alpha=0.01)
    ref = list(StratifiedKFold(10, shuffle=True, random_state=0).split(np.zeros(n), y))
    acc = {}
    for m, x in feats.items():
        direct = [np.mean(np.clip(np.rint(Ridge(alpha=0.01).fit(x[tr], y[tr]).predict(x[te])), 0, classes - 1) == y[te])
                  for tr, te in ref]
        np.testing.assert_allclose(comp.results[(m, "ridge")].per_fold["accuracy"], direct)
        acc[m] = np.mean(direct)
    majority = comp.baselines["majority"].mean("accuracy")
    assert acc["b"] > acc["a"] + 0.1 and acc["a"] > majority + 0.05
    t = comp.test("ridge", "accuracy", "a", "b")
    assert t["corrected"].mean == pytest.approx(acc["b"] - acc["a"]) and t["corrected"].ci[0] > 0


def test_mcdo_probe_limit_keeps_the_folds_and_says_it_is_a_smoke_run(tmp_path, monkeypatch, capsys):
    """``mcdo probe --limit N`` (issue 33): at most N images, but --folds of each label so the stratified CV runs;
    the console and the record say it is a smoke run."""
    from mcdo.cli import main
    from mcdo.testing import make_probe_folder

    monkeypatch.setenv("MCDO_CACHE_DIR", str(tmp_path / "cache"))
    folder = make_probe_folder(tmp_path / "otoliths", per_class=10, broken=False)
    rc = main(["probe", "--models", "tiny-clip,tiny-siglip", "--random-weights", "--data", str(folder), "--quiet",
               "--folds", "3", "--limit", "5", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.startswith("smoke run (--limit 5)")
    rec = json.loads(next((tmp_path / "out").glob("otoliths-random-*.json")).read_text())
    assert rec["config"]["limit"] == 5 and rec["n_images"] == 3 * 4  # 3 folds x the folder's 4 ages


def test_a_difference_with_zero_spread_is_said_in_the_table():
    """Issue 36.8: two models with the same features differ by 0 in every fold; the JSON said so, the console
    table showed only 'p=1'. Now the table carries the note."""
    x, y = _data(n=100)
    data = pipeline.ProbeData("toy", y - 3, [str(v) for v in range(3, 8)], None)
    comp = pipeline.run({"a": x, "b": x.copy()}, data, np.arange(100), k=5, probes=("ridge",))
    text = pipeline.table(comp)
    assert "zero variance across folds: the two are identical in every fold" in text
    assert "- ridge accuracy b - a: zero variance" in text
    noisy = x * 2 + 0.3 * np.random.default_rng(1).normal(size=x.shape)
    other = pipeline.table(pipeline.run({"a": x, "b": noisy}, data, np.arange(100), k=5, probes=("ridge",)))
    assert "- ridge accuracy b - a: zero variance" not in other  # a difference that varies has no such note
