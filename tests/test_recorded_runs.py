"""The recorded tier on recorded runs other than the published one: models and T found in the folder, a bad
file skipping only what needs it, and MCD-15's predictions with their intervals."""
from __future__ import annotations

import numpy as np
import pytest

from mcdo.data import recorded as R
from mcdo.testing import make_recorded_run
from mcdo.verify import engine
from mcdo.stats import pooled_spearman
from mcdo.verify.mcd.recorded import gate_prediction, predicted_figures
from mcdo.verify.records import INCONCLUSIVE, REPRODUCED, SKIPPED

pytestmark = pytest.mark.math

# noise -> SNR(T) = 0.01 T / noise: clip_b32 fails the gate at T=64 (SNR 0.8), siglip_b16 passes (SNR 32),
# vit_x (no family in MCD-07) sits between
MODELS = {"clip_b32": 0.8, "siglip_b16": 0.02, "vit_x": 0.1}


@pytest.fixture
def run(tmp_path, monkeypatch):
    root = make_recorded_run(tmp_path / "rec", MODELS)
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(root))
    return root


def _by_model(claim_id: str) -> dict:
    """Records by recorded folder (a record names the model by its registry name, the folder as its variant)."""
    return {(r.variant.removeprefix("recorded folder ") or r.model): r
            for r in engine.evaluate(claim_id, "recorded", engine.Context(n_boot=200, progress=False))}


def test_models_and_T_are_discovered(run):
    assert R.models() == sorted(MODELS)
    assert R.available_T("vit_x") == (16, 64)
    t = R.nested_trials("vit_x", 64)
    assert t.pre.shape == (6, 200) and t.paths.shape == (200,)


def test_gate_14_and_15_for_every_model_found(run):
    gate, m14, m15 = _by_model("MCD-07"), _by_model("MCD-14"), _by_model("MCD-15")
    assert set(gate) == set(m14) == set(m15) == set(MODELS)
    assert gate["clip_b32"].verdict == REPRODUCED and not gate["clip_b32"].details["gate_passed"]
    assert gate["siglip_b16"].verdict == REPRODUCED and gate["siglip_b16"].details["gate_passed"]
    assert gate["vit_x"].verdict == INCONCLUSIVE and "no expected outcome" in gate["vit_x"].reason
    for r in m15.values():
        assert r.config["T"] == [16, 64] and r.config["trials"] == 6 and r.config["n_images"] == 200
        # the 1/T law holds by construction: the predicted SNR matches the measured one
        assert r.ci[0] < 1.0 < r.ci[1], r.reason


def test_a_bad_file_skips_only_the_records_that_need_it(run):
    folder = run / "exp0_nested_mc/vit_x"
    z = dict(np.load(folder / "exp0_trials_T64.npz"))
    np.savez(folder / "exp0_trials_T64.npz", trial_pre=z["trial_pre"], paths=z["paths"])  # no trial_post
    m15 = _by_model("MCD-15")
    assert m15["vit_x"].verdict == SKIPPED
    assert "exp0_trials_T64.npz" in m15["vit_x"].reason and "no trial_post" in m15["vit_x"].reason
    assert m15["clip_b32"].verdict != SKIPPED and m15["siglip_b16"].verdict != SKIPPED


@pytest.mark.parametrize("damage,problem", [
    (lambda z: z["trial_pre"].__setitem__((0, 3), np.nan), "non-finite"),
    (lambda z: z.__setitem__("trial_pre", z["trial_pre"][:1]), "shapes"),
    (lambda z: z.update(trial_pre=z["trial_pre"][:1], trial_post=z["trial_post"][:1]), "1 trial"),
    (lambda z: z.__setitem__("paths", z["paths"][:-1]), "shapes"),
], ids=["nan", "mismatched-shapes", "one-trial", "short-paths"])
def test_malformed_files_are_named(run, damage, problem):
    path = run / "exp0_nested_mc/clip_b32/exp0_trials_T64.npz"
    z = dict(np.load(path))
    damage(z)
    np.savez(path, **z)
    with pytest.raises(R.BadRecordedFile, match=problem) as e:
        R.nested_trials("clip_b32", 64)
    assert str(path) in str(e.value)


def test_truncated_file_is_named(run):
    path = run / "exp0_nested_mc/clip_b32/exp0_trials_T64.npz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(R.BadRecordedFile, match="unreadable"):
        R.nested_trials("clip_b32", 64)
    assert _by_model("MCD-14")["clip_b32"].verdict == SKIPPED


def test_files_of_one_model_are_aligned_by_path(run):
    folder = run / "exp0_nested_mc/clip_b32"
    z = dict(np.load(folder / "exp0_trials_T64.npz"))
    order = np.random.default_rng(3).permutation(200)
    np.savez(folder / "exp0_trials_T64.npz", **{k: (v[order] if k == "paths" else v[:, order]) for k, v in z.items()})
    got = R.nested_trials("clip_b32", 64)
    np.testing.assert_array_equal(got.paths, R.nested_trials("clip_b32", 16).paths)
    np.testing.assert_array_equal(got.pre, z["trial_pre"].astype(np.float64))
    z["paths"] = z["paths"].copy()
    z["paths"][0] = "/elsewhere/n0/ILSVRC2012_val_99999999.JPEG"
    np.savez(folder / "exp0_trials_T64.npz", **z)
    with pytest.raises(R.BadRecordedFile, match="not the 200"):
        R.nested_trials("clip_b32", 64)


def test_gate_prediction_is_inconclusive_when_its_interval_straddles():
    assert gate_prediction((0.81, 0.9), 0.80) == "pass"
    assert gate_prediction((0.5, 0.79), 0.80) == "fail"
    assert gate_prediction((0.78, 0.83), 0.80) == "inconclusive"


def test_mcd15_near_a_threshold_is_not_called(tmp_path, monkeypatch):
    """Noise set so that the predicted SNR at T=64 sits on the gate (2.0): the prediction must not be decisive."""
    root = make_recorded_run(tmp_path / "rec", {"siglip_edge": 0.01 * 64 / 2.0}, n_images=300)
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(root))
    r = _by_model("MCD-15")["siglip_edge"]
    lo, hi = r.details["predicted_figures_ci"]["snr"]
    assert lo < 2.0 < hi
    assert r.details["predicted_gate"]["snr"] == INCONCLUSIVE
    need_lo, need_hi = r.details["passes_needed_ci"]["snr"]
    assert need_lo < 64 < need_hi


def test_predicted_figures_match_a_direct_simulation():
    """SNR predicted from T=8 for T=32 against SNR measured on independent T=32 trials of the same images."""
    rng = np.random.default_rng(0)
    signal = rng.normal(1.0, 0.1, 4000)
    short = signal + rng.normal(0, np.sqrt(0.05 / 8), (10, 4000))
    long_ = signal + rng.normal(0, np.sqrt(0.05 / 32), (10, 4000))
    from mcdo import stats as S

    pred = predicted_figures(short, 8, 32)
    assert pred["snr"] == pytest.approx(S.snr(long_), rel=0.05)
    assert pred["icc"] == pytest.approx(S.icc(long_), abs=0.01)


def test_figure_ci_resamples_images(rng):
    """The recorded figures' CI (figure_record) is a bootstrap over images, the columns of [K, N]: it equals a
    naive loop that resamples image indices with the same generator (resampling trials would not)."""
    from mcdo import stats as S
    from mcdo.verify.builders import figure_record

    x = rng.normal(1.0, 0.3, 120)[None, :] + rng.normal(0, 0.2, (8, 120))
    rec = figure_record("MCD-03", "recorded", "m", x, "snr", "SNR", S.snr, engine.Context(n_boot=200, seed=4), {})
    r = np.random.default_rng(4)
    naive = [S.snr(x[:, r.integers(0, 120, 120)]) for _ in range(200)]
    assert rec.ci == pytest.approx(tuple(np.quantile(naive, [0.025, 0.975])))


# --- issue 19: the recorded tier judged at the source's configuration, with unbiased figures


def test_mcd14_gap_removes_the_snr_estimators_bias(tmp_path, monkeypatch):
    """Five trials, population SNR 0.4 at T=64: ICC ~ SNRc/(1+SNRc) ~ 0.29; the uncorrected SNR/(1+SNR) reads
    ~0.375 (bias +1/K = 0.2) and alone made a gap outside the claim's 0.05."""
    root = make_recorded_run(tmp_path / "rec", {"clip_k5": 1.6}, trials=5, n_images=3000)
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(root))
    r = _by_model("MCD-14")["clip_k5"]
    d = r.details
    assert d["snr_corrected"] == pytest.approx(d["snr"] - 1 / 5)
    assert d["snrc_over_1_plus_snrc"] == pytest.approx(d["icc"], abs=1e-12)  # the exact identity
    assert d["snr_over_1_plus_snr"] - d["icc"] > 0.05  # what the biased figure alone would have made of the gap
    assert r.verdict == REPRODUCED and r.ci[1] < 0.05, r.reason


def test_a_run_without_the_sources_T_is_skipped_or_judged_at_its_own_when_asked(tmp_path, monkeypatch):
    root = make_recorded_run(tmp_path / "rec", {"clip_b32": 0.8, "siglip_b16": 0.02}, Ts=(8, 32))
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(root))
    for claim in ("MCD-07", "MCD-14", "MCD-15"):
        for r in _by_model(claim).values():
            assert r.verdict == SKIPPED and "no T = 64" in r.reason or "no T = 16, 64" in r.reason, r.reason
    ctx = engine.Context(n_boot=200, progress=False, recorded_own_T=True)
    gate = {(r.variant.removeprefix("recorded folder ") or r.model): r
            for r in engine.evaluate("MCD-07", "recorded", ctx)}
    assert gate["siglip_b16"].config["T"] == 32 and gate["siglip_b16"].verdict == REPRODUCED
    assert "own largest T = 32" in gate["siglip_b16"].departures["T"]["reason"]


def test_configuration_is_what_the_files_hold(tmp_path, monkeypatch):
    root = make_recorded_run(tmp_path / "rec", {"clip_a": 0.8, "clip_b": 0.8},
                             summaries={"clip_b": {"dropout": 0.05, "dataset": "CIFAR-100 test"}})
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(root))
    gate = _by_model("MCD-07")
    a, b = gate["clip_a"].config, gate["clip_b"].config
    assert "p" not in a and "ImageNet-1k val (500" not in str(a) and a["n_images"] == 200 and a["trials"] == 6
    assert b["p"] == 0.05 and b["data"] == "CIFAR-100 test"
    assert gate["clip_b"].departures["p"]["source"] == 0.01  # a declared departure of the recorded tier


def test_family_is_read_from_anywhere_in_the_name_or_the_summary(tmp_path, monkeypatch):
    root = make_recorded_run(tmp_path / "rec", {"ViT-SO400M-14-SigLIP2": 0.02, "my_run": 0.02},
                             summaries={"my_run": {"loss": "sigmoid"}})
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(root))
    assert R.family("ViT-SO400M-14-SigLIP2") == "sigmoid" and R.family("openai-CLIP-b32") == "softmax"
    gate = _by_model("MCD-07")
    assert gate["ViT-SO400M-14-SigLIP2"].expected == "pass" and gate["ViT-SO400M-14-SigLIP2"].verdict == REPRODUCED
    assert gate["my_run"].expected == "pass"


def test_a_damaged_file_mcd15_does_not_use_skips_nothing(tmp_path, monkeypatch):
    """One NaN in the T=4 file: the 16 -> 64 prediction does not use it, so MCD-15 is still judged, naming it."""
    root = make_recorded_run(tmp_path / "rec", {"siglip_b16": 0.02}, Ts=(4, 16, 64))
    path = root / "exp0_nested_mc/siglip_b16/exp0_trials_T4.npz"
    z = dict(np.load(path))
    z["trial_pre"][0, 0] = np.nan
    np.savez(path, **z)
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(root))
    r = _by_model("MCD-15")["siglip_b16"]
    assert r.verdict != SKIPPED and "T = 4" in r.reason and "non-finite" in r.reason


def test_unequal_trial_counts_are_stated_and_predicted_for(tmp_path, monkeypatch):
    root = make_recorded_run(tmp_path / "rec", {"siglip_b16": 0.05}, trials={16: 4, 64: 12}, n_images=2000)
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(root))
    r = _by_model("MCD-15")["siglip_b16"]
    assert r.config["trials"] == [4, 12] and "4 trials" in r.reason and "12" in r.reason
    assert r.ci[0] < 1.0 < r.ci[1], r.reason  # predicted for 12 trials, so the ratio is unbiased


def test_pooled_spearman_predicts_where_the_gaussian_mapping_does_not(rng):
    """Multiplicative trial noise on a skewed signal (traces are variances): the Gaussian ICC -> Spearman mapping
    is off by several points; pooling short trials predicts the long-T Spearman directly."""
    from mcdo import stats as S
    from mcdo.verify.builders import spearman_median

    n = 3000
    signal = rng.lognormal(0.0, 1.0, n)
    short = signal * (1 + rng.normal(0, np.sqrt(4.0 / 16), (10, n)))
    long_ = signal * (1 + rng.normal(0, np.sqrt(4.0 / 64), (10, n)))
    measured = spearman_median(long_)
    gauss = predicted_figures(short, 16, 64)["spearman"]
    pooled = pooled_spearman(short, 4)
    assert abs(pooled - measured) < 0.01 and abs(gauss - measured) > 0.015
    assert abs(pooled - measured) < abs(gauss - measured) / 3
    assert S.snr(long_) > 0
