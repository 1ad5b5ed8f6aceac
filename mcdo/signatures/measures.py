"""Robustness signatures of a representation space (Crabbé et al. 2023, arXiv 2310.13040), as pure functions.

``acts`` are activation vectors ``[N, d]``: a model's image representation, the input of its classification head
(for a zero-shot model: the image embedding; for a fine-tuned one: the features its linear head reads).

- **Kurtosis.** The paper's Eq. 2 takes the kurtosis of each activation vector across its ``d`` components and
  averages it over the images (``axis="vector"``, what ICL-01 uses; a Gaussian vector gives 3, a vector with a few
  components orders of magnitude above the rest gives ~d). The per-dimension kurtosis across images
  (``axis="dimension"``, averaged over dimensions) is reported beside it: it measures heavy-tailed units, not
  outlier units, and the paper does not use it.
- **Outlier features.** Per dimension the mean |activation| over images; the max/median ratio and the dimensions
  above ``threshold`` x the median (ICL-02: max/median >= 100). The paper's words, "activations ... several orders
  of magnitude above average", also read per input: ``per_input_outlier_ratio``, each vector's largest |component|
  over its mean |component| (one spike 100x in 512 dims gives 84), reported beside it.
- **Privileged directions.** The SVD of the head ``W [K, d] = U S V^T``; direction ``i`` contributes
  ``S_i <v_i, h>`` along ``u_i`` to the logits, so its importance is ``S_i E|<v_i, h>|`` (normalised to sum 1):
  our reading of the paper's Eq. 4 (a direction's contribution to the logits on data, ``reading="mean-abs"``).
  The equation's text was not at hand offline (the seed's notes name it, not its form), so the other reading,
  ``S_i |E<v_i, h>|`` (``"abs-mean"``: the mean contribution, which cancels for directions used with both
  signs), is computed beside it and every ICL-03 record reports both; on the proxies they decide differently
  (issue 22: -0.005 against -0.075 top-1 at 20%). Pruning keeps the top-k directions by importance and classifies
  ``W V_k V_k^T h``.
- **Concepts.** Per direction and concept, the average precision of the direction's score for the concept's
  presence (ties as scikit-learn counts them); a concept is encoded when some direction reaches AP >= 0.9 and
  beats the concept's prevalence (chance AP) by 0.1; along canonical dimensions the positive sign only, along SVD
  directions either sign (theirs is arbitrary); the count of unique concepts is ICL-04's figure.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AXES = ("vector", "dimension")


def activation_kurtosis(acts: np.ndarray, axis: str = "vector") -> np.ndarray:
    """Pearson kurtosis (population moments; 3 for a Gaussian) of each activation vector across its components
    (``axis="vector"``: one value per image) or of each dimension across images (``axis="dimension"``)."""
    if axis not in AXES:
        raise ValueError(f"unknown kurtosis axis {axis!r}; choose from {AXES}")
    a = np.asarray(acts, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"activations must be [N, d], got shape {a.shape}")
    ax = 1 if axis == "vector" else 0
    c = a - a.mean(axis=ax, keepdims=True)
    m2 = (c**2).mean(axis=ax)
    m4 = (c**4).mean(axis=ax)
    return m4 / np.where(m2 > 0, m2, np.nan) ** 2


@dataclass(frozen=True)
class OutlierProfile:
    """Mean |activation| per dimension and what stands out of it."""

    mean_abs: np.ndarray  # [d]
    ratio: float  # max / median of mean_abs
    threshold: float
    outliers: np.ndarray  # dimensions with mean_abs > threshold * median, largest first

    def summary(self) -> str:
        top = ", ".join(f"{int(j)} ({self.mean_abs[j] / np.median(self.mean_abs):.1f}x)" for j in self.outliers[:5])
        return (f"max/median mean|activation| {self.ratio:.1f}; {len(self.outliers)} of {len(self.mean_abs)} "
                f"dimensions above {self.threshold:g}x the median" + (f": {top}" if top else ""))


def outlier_profile(acts: np.ndarray, threshold: float = 10.0) -> OutlierProfile:
    """The outlier-feature profile: per-dimension mean |activation| against its median over dimensions."""
    m = np.abs(np.asarray(acts, dtype=np.float64)).mean(axis=0)
    med = float(np.median(m))
    ratio = float(m.max() / med) if med > 0 else float("inf")
    above = np.flatnonzero(m > threshold * med)
    return OutlierProfile(m, ratio, threshold, above[np.argsort(-m[above])])


@dataclass(frozen=True)
class Directions:
    """The head's SVD directions in representation space, most important first."""

    vectors: np.ndarray  # [r, d] right singular vectors v_i (rows)
    singular_values: np.ndarray  # [r]
    importance: np.ndarray  # [r], sums to 1

    def top(self, k: int) -> np.ndarray:
        return self.vectors[:k]


READINGS = ("mean-abs", "abs-mean")  # S_i E|<v_i, h>| (ours), S_i |E<v_i, h>| (the alternative)


def per_input_outlier_ratio(acts: np.ndarray) -> np.ndarray:
    """Per activation vector: its largest |component| over its mean |component| ``[N]``."""
    a = np.abs(np.asarray(acts, dtype=np.float64))
    return a.max(axis=1) / a.mean(axis=1)


def head_directions(head: np.ndarray, acts: np.ndarray, reading: str = "mean-abs") -> Directions:
    """SVD of the head ``[K, d]`` and each direction's importance on ``acts`` in the given ``reading``
    (``S_i E|<v_i, h>|`` or ``S_i |E<v_i, h>|``), sorted."""
    if reading not in READINGS:
        raise ValueError(f"unknown importance reading {reading!r}; choose from {READINGS}")
    w = np.asarray(head, dtype=np.float64)
    _, s, vt = np.linalg.svd(w, full_matrices=False)
    proj = np.asarray(acts, dtype=np.float64) @ vt.T
    imp = s * (np.abs(proj).mean(axis=0) if reading == "mean-abs" else np.abs(proj.mean(axis=0)))
    order = np.argsort(-imp, kind="stable")
    return Directions(vt[order], s[order], imp[order] / imp.sum())


def pruned_logits(head: np.ndarray, acts: np.ndarray, directions: Directions, k: int,
                  bias: np.ndarray | None = None) -> np.ndarray:
    """Logits of the head (with its ``bias``, when it has one) on the activations projected onto the ``k`` most
    important directions."""
    v = directions.top(k)
    logits = (np.asarray(acts, dtype=np.float64) @ v.T) @ (v @ np.asarray(head, dtype=np.float64).T)
    return logits if bias is None else logits + np.asarray(bias, dtype=np.float64)


def kept_directions(fraction: float, d: int) -> int:
    """How many of ``d`` representation directions 'the top ``fraction``' keeps (at least one)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"a fraction of directions must be in (0, 1], got {fraction}")
    return max(1, int(round(fraction * d)))


def pruning_curve(head: np.ndarray, acts: np.ndarray, labels: np.ndarray, fractions=(0.05, 0.1, 0.2, 0.4, 0.6, 1.0),
                  bias: np.ndarray | None = None, reading: str = "mean-abs") -> dict[float, np.ndarray]:
    """Per-image correctness ``[N]`` (bool) after keeping the top ``fraction`` of the representation's ``d``
    directions by importance (in ``reading``), for each fraction (a fraction beyond the head's rank keeps all of
    it); a classifier's ``bias`` is kept whole (it is no direction of the representation)."""
    dirs = head_directions(head, acts, reading)
    d = np.asarray(acts).shape[1]
    return {f: pruned_logits(head, acts, dirs, min(kept_directions(f, d), len(dirs.vectors)), bias).argmax(1) == labels
            for f in fractions}


def _positives(present: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (image, concept) pairs of a presence matrix ``[N, C]``, grouped by concept, and each concept's count."""
    img, con = np.nonzero(np.asarray(present, dtype=bool).T)[::-1]
    return img, con, np.bincount(con, minlength=np.shape(present)[1])


def _ap_from_ranks(rank: np.ndarray, img: np.ndarray, con: np.ndarray, n_pos: np.ndarray) -> np.ndarray:
    """AP per concept from each image's rank (the number of images scoring at least as high: tied images share the
    rank of the last of their group), as scikit-learn's ``average_precision_score``: a positive at rank r whose tie
    group ends with the k-th positive of its concept has precision k / r. Costs the number of positives, not
    images x concepts."""
    r = rank[img]
    order = np.lexsort((r, con))
    r, c = r[order], con[order]
    starts = np.concatenate([[0], np.cumsum(n_pos)[:-1]])
    key = c * (len(rank) + 2) + r  # sorted: by concept, then rank
    k = np.searchsorted(key, key, side="right") - starts[c]  # positives of the concept ranked at or above r
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(c, weights=k / r, minlength=len(n_pos)) / n_pos


def _ranks(scores: np.ndarray) -> np.ndarray:
    """Each image's rank for a score, higher first: the number of images scoring at least as high (ties share)."""
    s = np.asarray(scores, dtype=np.float64)
    return (len(s) - np.searchsorted(np.sort(s), s, side="left")).astype(np.float64)


def average_precision(scores: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Average precision of one score ``[N]`` for each concept ``present [N, C]`` (bool), equal to scikit-learn's
    ``average_precision_score`` (ties included). NaN for a concept with no positive."""
    return _ap_from_ranks(_ranks(scores), *_positives(present))


@dataclass(frozen=True)
class Concepts:
    """Which concepts each direction detects and how many unique concepts the representation encodes."""

    best_ap: np.ndarray  # [C] best AP over directions and signs
    detected: np.ndarray  # [n_directions, C] bool: AP >= threshold
    names: list[str]
    threshold: float

    @property
    def unique(self) -> int:
        return int(self.detected.any(axis=0).sum())

    def per_direction(self) -> np.ndarray:
        return self.detected.sum(axis=1)


def concepts(acts: np.ndarray, present: np.ndarray, names: list[str], basis: np.ndarray | None = None,
             threshold: float = 0.9, min_positives: int = 10, margin: float = 0.1) -> Concepts:
    """Concept probing: each direction (the rows of ``basis``; default the representation's own dimensions) scores
    every image; a concept counts for a direction when the AP of the score reaches ``threshold`` and exceeds the
    concept's prevalence (the AP of a score that knows nothing) by ``margin``, so a concept present in 95% of the
    images is not 'encoded' by noise. Along canonical dimensions only the positive sign counts (a unit's activation
    has a direction); along ``basis`` rows (SVD directions, whose sign is arbitrary) either sign does. Concepts with
    fewer than ``min_positives`` images are left out (an AP from a handful of positives says little)."""
    a = np.asarray(acts, dtype=np.float64)
    y = np.asarray(present, dtype=bool)
    keep = y.sum(axis=0) >= min_positives
    y, kept = y[:, keep], [n for n, k in zip(names, keep) if k]
    scores = a if basis is None else a @ np.asarray(basis, dtype=np.float64).T
    det = np.zeros((scores.shape[1], y.shape[1]), dtype=bool)
    best = np.zeros(y.shape[1])
    floor = np.maximum(threshold, y.mean(axis=0) + margin)
    pos = _positives(y)
    for j in range(scores.shape[1]):
        ap = _ap_from_ranks(_ranks(scores[:, j]), *pos)
        if basis is not None:
            ap = np.fmax(ap, _ap_from_ranks(_ranks(-scores[:, j]), *pos))
        det[j] = ap >= floor
        best = np.fmax(best, ap)
    return Concepts(best, det, kept, threshold)
