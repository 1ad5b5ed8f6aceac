"""Confidence intervals by resampling images (bootstrap) or trials (jackknife).

Images are exchangeable draws from a population, so the percentile bootstrap
over images is the natural CI for a figure computed on ``[K, N]`` trial scores.
Trials are few (often 10) and several figures (pairwise Spearman, SNR) are
undefined or biased when a trial is duplicated, so "over trials" uses the
delete-one jackknife, which never repeats a trial.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats as _st

Statistic = Callable[..., float]


def bootstrap_ci(
    statistic: Statistic,
    *arrays: np.ndarray,
    axis: int = -1,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    strata: np.ndarray | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic(*arrays)``, resampling jointly along ``axis``.

    All arrays share the resampled axis (images), so paired data stay paired. With ``strata`` (one label
    per image), images are resampled within each stratum, so every group keeps its size (e.g. the ID set
    and each OOD set of a detection benchmark, whose sizes are fixed by design).
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    n = np.shape(arrays[0])[axis]
    if any(np.shape(a)[axis] != n for a in arrays):
        raise ValueError("all arrays must have the same length along the resampled axis")
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(strata == g) for g in np.unique(strata)]
    values = np.empty(n_boot)
    for b in range(n_boot):
        idx = np.concatenate([g[rng.integers(0, g.size, size=g.size)] for g in groups])
        values[b] = statistic(*(np.take(a, idx, axis=axis) for a in arrays))
    values = values[np.isfinite(values)]
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def jackknife_ci_trials(
    statistic: Callable[[np.ndarray], float], trials: np.ndarray, level: float = 0.95
) -> tuple[float, float]:
    """Delete-one-trial jackknife CI (normal, t with K-1 df) of a statistic of ``[K, N]`` trials."""
    x = np.asarray(trials, dtype=np.float64)
    k = x.shape[0]
    if k < 3:
        raise ValueError("the trial jackknife needs at least 3 trials")
    full = statistic(x)
    loo = np.array([statistic(np.delete(x, i, axis=0)) for i in range(k)])
    se = np.sqrt((k - 1) / k * np.sum((loo - loo.mean()) ** 2))
    bias = (k - 1) * (loo.mean() - full)
    t = _st.t.ppf(0.5 + level / 2.0, df=k - 1)
    centre = full - bias
    return float(centre - t * se), float(centre + t * se)


def mean_t_ci(values, level: float = 0.95) -> tuple[float, float]:
    """Student-t CI of the mean of a few independent figures (e.g. one per proxy seed), n - 1 degrees of freedom."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        raise ValueError("a t interval needs at least two values")
    h = _st.t.ppf(0.5 + level / 2.0, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean() - h), float(v.mean() + h)


def binomial_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) CI of a proportion."""
    ci = _st.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def auroc_ci_hanley_mcneil(auc: float, n_pos: int, n_neg: int, level: float = 0.95) -> tuple[float, float]:
    """Normal CI of an AUROC from its value and class counts alone (Hanley & McNeil 1982).

    For published summaries where the per-image scores are not available.
    """
    q1 = auc / (2.0 - auc)
    q2 = 2.0 * auc**2 / (1.0 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    z = _st.norm.ppf(0.5 + level / 2.0)
    se = float(np.sqrt(var))
    return float(auc - z * se), float(auc + z * se)


def spearman_ci_fisher(rho: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """CI of a Spearman correlation by Fisher's z with the Bonett-Wright variance (1 + rho^2/2)/(n - 3)."""
    z = np.arctanh(rho)
    se = np.sqrt((1.0 + rho**2 / 2.0) / (n - 3))
    q = _st.norm.ppf(0.5 + level / 2.0)
    return float(np.tanh(z - q * se)), float(np.tanh(z + q * se))
