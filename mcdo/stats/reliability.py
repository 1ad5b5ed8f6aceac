"""Reliability of a per-image score measured in K repeated MC-dropout trials.

Layout: ``trials`` is ``[K trials, N images]`` (float). Images are the subjects
of the reliability analysis, trials the repeated measurements. Definitions follow
the recorded research code (see ``recorded/PROVENANCE.md``):

* SNR = var(per-image mean over trials, ddof=1) / mean(per-image variance over trials, ddof=1)
* ICC(1,1) = one-way random effects, single measurement (Shrout & Fleiss 1979)
* pairwise Spearman = Spearman correlation of every pair of trials; median and IQR

Useful identity (exact for these estimators):
``ICC(1,1) = (SNR - 1/K) / (1 + SNR - 1/K)``, because the variance of the
K-trial mean still carries noise/K.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st

GATE_SPEARMAN = 0.80
GATE_ICC = 0.75
GATE_SNR = 2.0


def _check_trials(trials: np.ndarray) -> np.ndarray:
    x = np.asarray(trials, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"trials must be [K trials, N images], got shape {x.shape}")
    if x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"need at least 2 trials and 2 images, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("trials contain NaN or inf")
    return x


def signal_noise(trials: np.ndarray) -> tuple[float, float]:
    """(signal, noise): variance across images of the trial-mean, and the mean within-image variance."""
    x = _check_trials(trials)
    signal = float(np.var(x.mean(axis=0), ddof=1))
    noise = float(np.mean(np.var(x, axis=0, ddof=1)))
    return signal, noise


def snr(trials: np.ndarray) -> float:
    """Signal-to-noise ratio of a per-image score across trials (inf when trials agree exactly)."""
    signal, noise = signal_noise(trials)
    if noise == 0.0:
        return float("inf") if signal > 0 else float("nan")
    return signal / noise


def _mean_squares(x: np.ndarray) -> tuple[float, float, float, float]:
    """ANOVA mean squares with images as rows: (MS_rows, MS_cols, MS_error, MS_within)."""
    k, n = x.shape
    grand = x.mean()
    row_means = x.mean(axis=0)  # per image
    col_means = x.mean(axis=1)  # per trial
    ss_rows = k * np.sum((row_means - grand) ** 2)
    ss_cols = n * np.sum((col_means - grand) ** 2)
    ss_within = np.sum((x - row_means[None, :]) ** 2)
    ss_error = ss_within - ss_cols
    ms_rows = ss_rows / (n - 1)
    ms_cols = ss_cols / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    ms_within = ss_within / (n * (k - 1))
    return ms_rows, ms_cols, ms_error, ms_within


def icc(trials: np.ndarray, kind: str = "1,1") -> float:
    """Intraclass correlation of a single trial.

    kind ``"1,1"``: one-way random effects (what the seed gates on);
    ``"2,1"``: two-way random effects, absolute agreement;
    ``"3,1"``: two-way mixed effects, consistency (trial offsets removed).
    """
    x = _check_trials(trials)
    k, n = x.shape
    msr, msc, mse, msw = _mean_squares(x)
    if kind == "1,1":
        num, den = msr - msw, msr + (k - 1) * msw
    elif kind == "2,1":
        num, den = msr - mse, msr + (k - 1) * mse + k * (msc - mse) / n
    elif kind == "3,1":
        num, den = msr - mse, msr + (k - 1) * mse
    else:
        raise ValueError(f"unknown ICC kind {kind!r}; choose '1,1', '2,1' or '3,1'")
    if den == 0.0:
        return float("nan")
    return float(num / den)


@dataclass(frozen=True)
class PairwiseSpearman:
    """Spearman correlation of every pair of trials (upper triangle, row-major)."""

    median: float
    q25: float
    q75: float
    pairs: np.ndarray

    @property
    def iqr(self) -> float:
        return self.q75 - self.q25


def pairwise_spearman(trials: np.ndarray) -> PairwiseSpearman:
    """Rank agreement between trials: median, quartiles and all K(K-1)/2 pair values."""
    x = _check_trials(trials)
    ranks = _st.rankdata(x, axis=1)
    r = np.corrcoef(ranks)
    iu = np.triu_indices(x.shape[0], k=1)
    pairs = r[iu]
    q25, med, q75 = np.percentile(pairs, [25, 50, 75])
    return PairwiseSpearman(float(med), float(q25), float(q75), pairs)


def spearman_brown(reliability: float | np.ndarray, factor: float | np.ndarray) -> float | np.ndarray:
    """Predicted reliability when the measurement is lengthened ``factor`` times (Spearman-Brown)."""
    r = np.asarray(reliability, dtype=np.float64)
    m = np.asarray(factor, dtype=np.float64)
    out = m * r / (1.0 + (m - 1.0) * r)
    return float(out) if out.ndim == 0 else out


def spearman_from_pearson(rho: float | np.ndarray) -> float | np.ndarray:
    """Spearman correlation implied by a Pearson correlation for bivariate normal scores: (6/pi) asin(rho/2)."""
    out = (6.0 / np.pi) * np.arcsin(np.asarray(rho, dtype=np.float64) / 2.0)
    return float(out) if np.ndim(out) == 0 else out


def icc_from_snr(snr_value: float, k: int) -> float:
    """ICC(1,1) implied by the recorded SNR estimator over k trials (an exact identity, see module doc)."""
    s = snr_value - 1.0 / k
    return s / (1.0 + s)


@dataclass(frozen=True)
class GateResult:
    """The seed's reliability gate: every figure, its threshold and whether it passes."""

    snr: float
    icc: float
    spearman_median: float
    snr_pass: bool
    icc_pass: bool
    spearman_pass: bool

    @property
    def passed(self) -> bool:
        return self.snr_pass and self.icc_pass and self.spearman_pass

    def as_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        return d


def reliability_gate(
    trials: np.ndarray,
    spearman_min: float = GATE_SPEARMAN,
    icc_min: float = GATE_ICC,
    snr_min: float = GATE_SNR,
) -> GateResult:
    """Apply the seed's gate (Spearman >= 0.80, ICC(1,1) >= 0.75, SNR >= 2.0) to trial scores."""
    s, i, sp = snr(trials), icc(trials), pairwise_spearman(trials).median
    return GateResult(s, i, sp, bool(s >= snr_min), bool(i >= icc_min), bool(sp >= spearman_min))


# --- MCD-15: the 1/T law. Trial noise of a T-pass trace falls as 1/T, so the population SNR grows linearly in T;
# the recorded SNR estimator over K trials reads that SNR + 1/K (the K-trial mean still carries noise/K).


def snr_per_pass(snr_estimate: float, T: int, k: int) -> float:
    """The population SNR one pass would have, from an SNR estimated over ``k`` trials of ``T`` passes: the
    estimator's +1/K bias removed, then divided by T."""
    return (snr_estimate - 1.0 / k) / T


def predicted_snr(snr_estimate: float, T: int, k: int, T_target: int, k_target: int | None = None) -> float:
    """The SNR the recorded estimator would read at ``T_target`` passes over ``k_target`` trials (default ``k``),
    from its reading at ``T`` passes over ``k`` trials, under the 1/T law."""
    return snr_per_pass(snr_estimate, T, k) * T_target + 1.0 / (k_target or k)


def _spearman_gate_pearson(spearman: float) -> float:
    return float(2.0 * np.sin(np.pi * spearman / 6.0))  # the Pearson giving this Spearman for Gaussian scores


def passes_needed(snr_estimate: float, T: int, k: int, gate: dict | None = None) -> dict[str, float]:
    """The passes each gate figure needs (judged over the same ``k`` trials) under the 1/T law: the SNR estimate
    reaching its threshold (the true SNR reaching threshold - 1/K), ICC(1,1) by its exact identity with the
    corrected SNR, pairwise Spearman by the Gaussian mapping from ICC. ``gate``: thresholds by figure name
    (``snr``, ``icc``, ``spearman``; default the seed's). Infinite when no signal is left after the correction."""
    gate = gate or {"snr": GATE_SNR, "icc": GATE_ICC, "spearman": GATE_SPEARMAN}
    per_pass = snr_per_pass(snr_estimate, T, k)
    rho = _spearman_gate_pearson(gate["spearman"])
    targets = {"snr": gate["snr"] - 1.0 / k, "icc": gate["icc"] / (1 - gate["icc"]), "spearman": rho / (1 - rho)}
    return {g: float(v / per_pass) if per_pass > 0 else float("inf") for g, v in targets.items()}


def predicted_gate_figures(snr_estimate: float, T: int, k: int, T_target: int) -> dict[str, float]:
    """SNR, ICC(1,1) and pairwise Spearman at ``T_target`` from the SNR at ``T`` (same ``k``): SNR by the 1/T law,
    ICC by its exact identity, Spearman by the Gaussian mapping from ICC (whose own error is not in this figure:
    see ``mcdo.verify.mcd.recorded`` for the interval that carries it)."""
    snr_t = predicted_snr(snr_estimate, T, k, T_target)
    icc_t = icc_from_snr(snr_t, k)
    return {"snr": float(snr_t), "icc": float(icc_t), "spearman": float(spearman_from_pearson(icc_t))}


def spearman_mapping_error(trials: np.ndarray) -> float:
    """Measured median pairwise Spearman minus what the Gaussian mapping gives from the measured ICC(1,1): how far
    the trials are from the bivariate-normal case the mapping assumes (on the published CLIP run, +0.19 at T=16)."""
    return float(pairwise_spearman(trials).median - spearman_from_pearson(icc(trials)))


def pooled_spearman(short: np.ndarray, m: int, partitions: int = 8, seed: int = 0) -> float:
    """Median pairwise Spearman of trials of ``m`` times the passes, predicted directly from short trials with no
    distributional assumption: the mean of ``m`` short trials' traces is (to O(1/T)) a trace of m times the passes,
    so disjoint groups of ``m`` trials are long trials; median over ``partitions`` fixed random partitions.
    Needs K >= 2m trials."""
    x = _check_trials(short)
    k = x.shape[0]
    if k < 2 * m:
        raise ValueError(f"pooling groups of {m} trials into long trials needs at least {2 * m} trials, got {k}")
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(partitions):
        perm = rng.permutation(k)
        groups = np.stack([x[perm[i * m:(i + 1) * m]].mean(axis=0) for i in range(k // m)])
        vals.append(pairwise_spearman(groups).median)
    return float(np.median(vals))
