"""Paired comparisons of a per-image score before and after a change (e.g. blur)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st


@dataclass(frozen=True)
class PairedChange:
    """How a score moves from ``before`` to ``after`` on the same images."""

    n: int
    frac_increased: float
    frac_decreased: float
    mean_relative_change: float  # mean(after) / mean(before) - 1, as the seed reports it
    median_diff: float
    wilcoxon_statistic: float
    p_two_sided: float
    p_greater: float  # alternative: after > before
    p_less: float

    def as_dict(self) -> dict:
        return asdict(self)


def paired_change(before: np.ndarray, after: np.ndarray) -> PairedChange:
    """Fractions up / down, relative change of the mean, and the Wilcoxon signed-rank test."""
    b = np.asarray(before, dtype=np.float64).ravel()
    a = np.asarray(after, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size < 2:
        raise ValueError("before and after must be paired arrays of at least 2 images")
    d = a - b
    if np.all(d == 0):
        raise ValueError("before and after are identical: the signed-rank test is undefined")
    two = _st.wilcoxon(a, b, alternative="two-sided")
    return PairedChange(
        n=int(b.size),
        frac_increased=float(np.mean(d > 0)),
        frac_decreased=float(np.mean(d < 0)),
        mean_relative_change=float(a.mean() / b.mean() - 1.0),
        median_diff=float(np.median(d)),
        wilcoxon_statistic=float(two.statistic),
        p_two_sided=float(two.pvalue),
        p_greater=float(_st.wilcoxon(a, b, alternative="greater").pvalue),
        p_less=float(_st.wilcoxon(a, b, alternative="less").pvalue),
    )
