"""Frozen-feature probes under k-fold stratified cross-validation (seed 004's protocol).

Ridge regression (alpha = 6.0) and an SVC (scikit-learn's defaults: RBF kernel, C = 1, gamma 'scale') on frozen
image features, with the same folds for every model. Ordinal labels (every class name an integer, such as an age)
are regressed by Ridge and its prediction rounded to the nearest integer and clipped to the labels' range, as an
age reader is scored; accuracy, +-1 accuracy and RMSE are computed on the integer predictions (the seed's figures,
e.g. 50% / 94% / 0.85, fit rounded predictions). Nominal labels get scikit-learn's RidgeClassifier (same alpha)
and the SVC, scored by accuracy and macro-F1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROBES = ("ridge", "svc")  # the seed's probes (PRB-04's verdicts)
# Ridge with its alpha chosen inside each training fold (efficient leave-one-out CV over this grid, so nothing is
# fitted on the test fold): one alpha on unit-norm features regularises models of different widths differently
RIDGECV_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))
ALL_PROBES = PROBES + ("ridgecv",)
ORDINAL_METRICS = ("accuracy", "within1", "rmse")
NOMINAL_METRICS = ("accuracy", "macro_f1")
HIGHER_IS_BETTER = {"accuracy": True, "within1": True, "rmse": False, "macro_f1": True}
RIDGE_ALPHA = 6.0


class ProbeDataError(ValueError):
    """A data set the protocol cannot run on (one class, a class smaller than the number of folds)."""


def ordinal_values(classnames: list[str]) -> np.ndarray | None:
    """The integer value of each class name when every name is an integer (ages), else None (nominal classes)."""
    try:
        return np.array([int(str(c).strip()) for c in classnames], dtype=np.int64)
    except ValueError:
        return None


def check_labels(labels: np.ndarray, folds: int, classnames: list[str] | None = None) -> None:
    """Raise a ``ProbeDataError`` saying what to change when stratified k-fold CV cannot run on these labels."""
    values, counts = np.unique(labels, return_counts=True)
    name = (lambda v: classnames[v]) if classnames else str
    if len(values) < 2:
        raise ProbeDataError(f"only one class ({name(values[0]) if len(values) else 'none'}) among {len(labels)} "
                             "images: a probe needs at least two class folders (DIR/<label>/*.jpg)")
    small = [(name(v), int(c)) for v, c in zip(values, counts) if c < folds]
    if small:
        raise ProbeDataError(f"{len(small)} classes have fewer images than the {folds} folds (stratified CV needs one "
                             "per fold): " + ", ".join(f"{n}: {c}" for n, c in small[:10])
                             + f"; add images, merge those classes or lower --folds to {min(c for _, c in small)}")


def folds(labels: np.ndarray, k: int = 10, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold (train, test) index pairs, shuffled once with ``seed``: the same for every model."""
    from sklearn.model_selection import StratifiedKFold

    check_labels(labels, k)
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))


def _estimator(kind: str, ordinal: bool, alpha: float):
    from sklearn.linear_model import Ridge, RidgeClassifier
    from sklearn.svm import SVC

    if kind not in ALL_PROBES:
        raise ValueError(f"unknown probe {kind!r}; choose from {ALL_PROBES}")
    if kind == "svc":
        return SVC()
    if kind == "ridgecv":
        from sklearn.linear_model import RidgeClassifierCV, RidgeCV

        return RidgeCV(alphas=RIDGECV_ALPHAS) if ordinal else RidgeClassifierCV(alphas=RIDGECV_ALPHAS)
    return Ridge(alpha=alpha) if ordinal else RidgeClassifier(alpha=alpha)


def scores(y_true: np.ndarray, y_pred: np.ndarray, ordinal: bool) -> dict[str, float]:
    """The protocol's metrics for one fold (integer predictions for ordinal labels)."""
    if ordinal:
        err = np.asarray(y_pred, dtype=np.float64) - y_true
        return {"accuracy": float(np.mean(err == 0)), "within1": float(np.mean(np.abs(err) <= 1)),
                "rmse": float(np.sqrt(np.mean(err**2)))}
    from sklearn.metrics import f1_score

    return {"accuracy": float(np.mean(y_pred == y_true)), "macro_f1": float(f1_score(y_true, y_pred, average="macro"))}


@dataclass
class ProbeResult:
    """Per-fold metrics of one probe on one model's features."""

    model: str
    probe: str
    per_fold: dict[str, np.ndarray]  # metric -> [k]
    n_train: np.ndarray  # [k]
    n_test: np.ndarray  # [k]

    def mean(self, metric: str) -> float:
        return float(self.per_fold[metric].mean())

    def sd(self, metric: str) -> float:
        return float(self.per_fold[metric].std(ddof=1))


def cross_validate(model: str, features: np.ndarray, y: np.ndarray, splits, kind: str, ordinal: bool,
                   alpha: float = RIDGE_ALPHA) -> ProbeResult:
    """Fit the probe on each fold's training part and score it on its test part. ``y`` holds the label values
    (ages for ordinal data, class indices otherwise)."""
    metrics = ORDINAL_METRICS if ordinal else NOMINAL_METRICS
    per = {m: [] for m in metrics}
    lo, hi = int(y.min()), int(y.max())
    for train, test in splits:
        est = _estimator(kind, ordinal, alpha).fit(features[train], y[train])
        pred = est.predict(features[test])
        if ordinal and kind in ("ridge", "ridgecv"):
            pred = np.clip(np.rint(pred), lo, hi).astype(np.int64)
        for m, v in scores(y[test], pred, ordinal).items():
            per[m].append(v)
    return ProbeResult(model, kind, {m: np.asarray(v) for m, v in per.items()},
                       np.array([len(t) for t, _ in splits]), np.array([len(t) for _, t in splits]))


BASELINES = {"majority": "the most common label of the training folds",
             "mean": "the training folds' mean label, rounded"}  # the second for ordinal labels only


def baseline(y: np.ndarray, splits, kind: str, ordinal: bool) -> ProbeResult:
    """What a probe must beat, on the same folds and metrics: ``majority`` always answers the training folds' most
    common label; ``mean`` (ordinal labels) their mean label, rounded, which is where a heavily regularised Ridge
    collapses to."""
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r}; choose from {tuple(BASELINES)}")
    metrics = ORDINAL_METRICS if ordinal else NOMINAL_METRICS
    per = {m: [] for m in metrics}
    for train, test in splits:
        if kind == "majority":
            values, counts = np.unique(y[train], return_counts=True)
            guess = values[np.argmax(counts)]
        else:
            guess = int(np.rint(y[train].mean()))
        for m, v in scores(y[test], np.full(len(test), guess), ordinal).items():
            per[m].append(v)
    return ProbeResult(f"baseline: {kind}", kind, {m: np.asarray(v) for m, v in per.items()},
                       np.array([len(t) for t, _ in splits]), np.array([len(t) for _, t in splits]))
