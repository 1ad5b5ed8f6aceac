"""Per-image uncertainty scores from T MC samples (``MCResult``)."""
from __future__ import annotations

import numpy as np

from . import stats as S
from .sampling import MCResult

UNCERTAINTY_SCORES = ("trace_pre", "trace_post", "angular_var", "top_eigenvalue", "effective_rank", "participation_ratio",
          "centroid_distance")


def _needs_two_passes(r: MCResult, name: str) -> None:
    if r.T < 2:
        raise ValueError(f"{name} needs at least 2 MC passes (T >= 2) to measure a spread; this result has T = {r.T}")


def trace_pre(r: MCResult) -> np.ndarray:
    """Mean per-dimension variance of the unnormalised features (the seed's uncertainty); NaN for T = 1, where a
    variance is undefined."""
    return r.var_pre.mean(axis=1)


def trace_post(r: MCResult) -> np.ndarray:
    """Mean per-dimension variance after L2 normalisation."""
    return r.var_post.mean(axis=1)


def angular_var(r: MCResult) -> np.ndarray:
    """1 - length of the mean unit vector: 0 when every pass points the same way (needs T >= 2)."""
    _needs_two_passes(r, "angular_var")
    return 1.0 - np.linalg.norm(r.mean_post, axis=1)


def covariance_eigenvalues(r: MCResult) -> np.ndarray:
    """Eigenvalues ``[N, T]`` of each image's ``[D, D]`` dropout covariance, through the T x T Gram matrix."""
    if r.samples is None:
        raise ValueError("covariance scores need the full samples: run mc_sample(..., keep_samples=True)")
    _needs_two_passes(r, "a dropout covariance (top_eigenvalue, effective_rank, participation_ratio)")
    x = r.samples.astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    gram = np.einsum("ntd,nsd->nts", x, x) / (x.shape[1] - 1)
    return np.clip(np.linalg.eigvalsh(gram)[:, ::-1], 0.0, None)


def top_eigenvalue(r: MCResult) -> np.ndarray:
    return covariance_eigenvalues(r)[:, 0]


def effective_rank(r: MCResult) -> np.ndarray:
    return np.array([S.effective_rank(lam) for lam in covariance_eigenvalues(r)])


def participation_ratio(r: MCResult) -> np.ndarray:
    return np.array([S.participation_ratio(lam) for lam in covariance_eigenvalues(r)])


def centroid_distance(r: MCResult) -> np.ndarray:
    """1 - cos(image's MC-mean feature, centroid of all images' unit features)."""
    f = r.mean_pre / np.linalg.norm(r.mean_pre, axis=1, keepdims=True)
    c = f.mean(axis=0)
    return 1.0 - f @ c / np.linalg.norm(c)


def score(r: MCResult, name: str) -> np.ndarray:
    """A score by name (see ``UNCERTAINTY_SCORES``)."""
    if name not in UNCERTAINTY_SCORES:
        raise ValueError(f"unknown score {name!r}; choose from {UNCERTAINTY_SCORES}")
    return globals()[name](r)
