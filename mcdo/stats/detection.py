"""Detection metrics for a score that should be higher on positives.

Conventions: ``scores`` [N] float, ``labels`` [N] in {0, 1} with 1 = positive
(an error, an out-of-distribution image, ...). Ties count one half, as in the
Mann-Whitney definition of AUROC.
"""
from __future__ import annotations

import numpy as np
from scipy import stats as _st


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.shape} vs {y.shape}")
    if y.all() or not y.any():
        raise ValueError("need at least one positive and one negative label")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or inf")
    return s, y


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count 1/2)."""
    s, y = _check(scores, labels)
    ranks = _st.rankdata(s)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def fpr_at_tpr(scores: np.ndarray, labels: np.ndarray, tpr: float = 0.95) -> float:
    """False positive rate at the largest threshold that keeps at least ``tpr`` of positives (FPR95)."""
    s, y = _check(scores, labels)
    pos = np.sort(s[y])[::-1]
    k = int(np.ceil(tpr * pos.size))  # need the top-k positives above or at the threshold
    threshold = pos[k - 1]
    return float(np.mean(s[~y] >= threshold))


def fpr_at_tpr_closest(scores: np.ndarray, labels: np.ndarray, tpr: float = 0.95) -> float:
    """False positive rate at the threshold whose true positive rate is closest to ``tpr`` (the MCM paper's code,
    after Hendrycks et al.): thresholds are the distinct scores, from the highest down to the first that keeps
    every positive; on a tie in distance the lower threshold (more positives kept) wins."""
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], s.size - 1]  # last index of each distinct score
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    rates = tp / y.sum()
    stop = int(np.argmax(tp == y.sum())) + 1  # lower thresholds keep no more positives, only more negatives
    tp, fp, rates = tp[:stop], fp[:stop], rates[:stop]
    best = np.flatnonzero(np.abs(rates - tpr) == np.abs(rates - tpr).min())[-1]
    return float(fp[best] / (~y).sum())


def aupr(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under precision-recall as average precision (step interpolation, as scikit-learn)."""
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # one point per distinct threshold
    distinct = np.r_[np.nonzero(np.diff(s_sorted))[0], s.size - 1]
    tp = np.cumsum(y_sorted)[distinct]
    fp = (distinct + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / y.sum()
    recall_prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - recall_prev) * precision))


def detection_summary(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """AUROC, FPR95 and AUPR together."""
    return {"auroc": auroc(scores, labels), "fpr95": fpr_at_tpr(scores, labels), "aupr": aupr(scores, labels)}
