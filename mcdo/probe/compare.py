"""Is one model's probe better than another's across the same folds?

Folds of one cross-validation share most of their training data, so their scores are correlated and the plain
paired t-test across folds is too liberal (Dietterich 1998). The Nadeau-Bengio corrected resampled t-test (2003)
inflates the variance of the mean difference from ``s^2 / k`` to ``(1/k + n_test/n_train) s^2``; it is the one a
verdict uses here. Both are reported.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class PairedTest:
    """The difference b - a of a metric over folds, its CI and two-sided p-value."""

    test: str
    mean: float
    ci: tuple[float, float]
    t: float
    p: float
    df: int
    note: str = ""  # what a reader must know about this interval (a difference with no spread across folds)

    def describe(self) -> str:
        return (f"{self.mean:+.4f} [{self.ci[0]:+.4f}, {self.ci[1]:+.4f}], t={self.t:.2f}, p={self.p:.3g} ({self.test})"
                + (f"; {self.note}" if self.note else ""))


def _t(diff: np.ndarray, variance_of_mean: float, test: str, level: float) -> PairedTest:
    k = len(diff)
    bad = np.flatnonzero(~np.isfinite(diff))
    if bad.size:
        raise ValueError(f"{test}: the fold differences are not finite in fold(s) {bad.tolist()} (a probe failed "
                         "there): fix the features or the probe before comparing")
    mean = float(diff.mean())
    se = float(np.sqrt(variance_of_mean))
    df = k - 1
    if se == 0:  # every fold differs by the same amount: the interval has no width
        note = ("zero variance across folds: every fold differs by exactly this amount, so the interval has no "
                "width; it says the folds agree, not how a new sample would differ") if mean else \
            "zero variance across folds: the two are identical in every fold"
        return PairedTest(test, mean, (mean, mean), float("inf") if mean else 0.0, 0.0 if mean else 1.0, df, note)
    t = mean / se
    h = stats.t.ppf(0.5 + level / 2, df) * se
    return PairedTest(test, mean, (mean - h, mean + h), float(t), float(2 * stats.t.sf(abs(t), df)), df)


def paired_t(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> PairedTest:
    """The ordinary paired t-test of b - a across folds (as ``scipy.stats.ttest_rel``)."""
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if len(d) < 2:
        raise ValueError("a paired test across folds needs at least two folds")
    return _t(d, d.var(ddof=1) / len(d), "paired t", level)


def corrected_t(a: np.ndarray, b: np.ndarray, n_train: np.ndarray | float, n_test: np.ndarray | float,
                level: float = 0.95) -> PairedTest:
    """Nadeau-Bengio corrected resampled t-test of b - a: variance of the mean ``(1/k + n_test/n_train) s^2``
    (the ratio averaged over folds when fold sizes differ by a few images), k - 1 degrees of freedom."""
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if len(d) < 2:
        raise ValueError("a paired test across folds needs at least two folds")
    ratio = float(np.mean(np.asarray(n_test, dtype=np.float64) / np.asarray(n_train, dtype=np.float64)))
    return _t(d, (1 / len(d) + ratio) * d.var(ddof=1), "Nadeau-Bengio corrected t", level)
