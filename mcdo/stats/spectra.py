"""Shape of activations and of covariance spectra."""
from __future__ import annotations

import numpy as np


def kurtosis(x: np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Pearson kurtosis E[(x-mu)^4] / sigma^4 (population moments); a normal gives 3."""
    a = np.asarray(x, dtype=np.float64)
    mu = a.mean(axis=axis, keepdims=True)
    d = a - mu
    m2 = np.mean(d**2, axis=axis)
    m4 = np.mean(d**4, axis=axis)
    out = m4 / m2**2
    return float(out) if np.ndim(out) == 0 else out


def _eigenvalues(eigvals: np.ndarray) -> np.ndarray:
    lam = np.asarray(eigvals, dtype=np.float64)
    if np.any(lam < -1e-12 * max(1.0, float(np.abs(lam).max(initial=0.0)))):
        raise ValueError("eigenvalues of a covariance must be non-negative")
    return np.clip(lam, 0.0, None)


def effective_rank(eigvals: np.ndarray) -> float:
    """Entropy effective rank exp(H(lambda / sum lambda)) (Roy & Vetterli 2007); 0 for an all-zero spectrum."""
    lam = _eigenvalues(eigvals)
    total = lam.sum()
    if total == 0.0:
        return 0.0
    p = lam[lam > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def participation_ratio(eigvals: np.ndarray) -> float:
    """(sum lambda)^2 / sum lambda^2: the number of equally strong directions with the same spread."""
    lam = _eigenvalues(eigvals)
    denom = np.sum(lam**2)
    return 0.0 if denom == 0.0 else float(lam.sum() ** 2 / denom)
