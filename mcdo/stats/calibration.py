"""Calibration of probabilistic classifiers.

``probs`` is ``[N, C]`` (rows sum to 1), ``labels`` ``[N]`` integer classes.
"""
from __future__ import annotations

import numpy as np


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64).ravel()
    if p.ndim != 2 or p.shape[0] != y.size:
        raise ValueError(f"probs must be [N, C] with N = len(labels); got {p.shape} and {y.size}")
    if np.any(y < 0) or np.any(y >= p.shape[1]):
        raise ValueError("labels out of range of the class axis")
    if not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("rows of probs must sum to 1")
    return p, y


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error of the top-1 confidence with equal-width bins over (0, 1].

    A confidence exactly on a bin edge goes to the lower bin (bins are (lo, hi]).
    """
    p, y = _check(probs, labels)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bin_idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bin_idx == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def nll(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the true class (natural log)."""
    p, y = _check(probs, labels)
    return float(-np.mean(np.log(np.clip(p[np.arange(y.size), y], eps, None))))


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Multi-class Brier score: mean over images of the squared distance to the one-hot label."""
    p, y = _check(probs, labels)
    onehot = np.zeros_like(p)
    onehot[np.arange(y.size), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def entropy(probs: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Predictive entropy per row (nats)."""
    p = np.asarray(probs, dtype=np.float64)
    return -np.sum(p * np.log(np.clip(p, eps, None)), axis=-1)
