"""ProbCosine: the cosine similarity between two independent Gaussian embeddings, in closed form, and the class
probabilities it implies (BayesVLM, Baumann et al. 2024, arXiv 2412.06014).

For ``x ~ N(mu_x, S_x)`` (an image embedding) and ``y ~ N(mu_y, S_y)`` (a text embedding), independent:

    E[x.y]   = mu_x.mu_y
    Var[x.y] = mu_x' S_y mu_x + mu_y' S_x mu_y + tr(S_x S_y)            (exact)
    E|x|^2   = |mu_x|^2 + tr S_x

and ProbCosine approximates the cosine's moments by the ratios E[cos] ~ E[x.y] / sqrt(E|x|^2 E|y|^2) and
Var[cos] ~ Var[x.y] / (E|x|^2 E|y|^2). BayesVLM's code keeps only the diagonals of ``S_x`` and ``S_y``
(``covariance="diagonal"`` here gives exactly that); the default keeps the full covariances, which the Kronecker
posterior gives in closed form (``mcdo.bayes.laplace``), at the same cost order. The Monte Carlo functions are the
reference the closed forms are tested against (BVL-01).
"""
from __future__ import annotations

import math

import numpy as np
import torch

COVARIANCES = ("full", "diagonal")


def cosine_moments(mu_x: torch.Tensor, cov_x: torch.Tensor, mu_y: torch.Tensor,
                   cov_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ProbCosine mean and variance ``[N, C]`` for embeddings ``mu_x [N, D]`` and ``mu_y [C, D]`` with dense
    covariances ``[N, D, D]`` / ``[C, D, D]``, or diagonal variances ``[N, D]`` / ``[C, D]`` (BayesVLM's form)."""
    if cov_x.ndim == 2 and cov_y.ndim == 2:  # diagonal: BayesVLM's ProbCosine as published
        ex2 = (mu_x**2 + cov_x).sum(-1, keepdim=True)
        ey2 = (mu_y**2 + cov_y).sum(-1, keepdim=True)
        dot_var = (mu_x**2 + cov_x) @ cov_y.T + cov_x @ (mu_y**2).T
    else:
        cov_x = torch.diag_embed(cov_x) if cov_x.ndim == 2 else cov_x
        cov_y = torch.diag_embed(cov_y) if cov_y.ndim == 2 else cov_y
        ex2 = (mu_x**2).sum(-1, keepdim=True) + cov_x.diagonal(dim1=-2, dim2=-1).sum(-1, keepdim=True)
        ey2 = (mu_y**2).sum(-1, keepdim=True) + cov_y.diagonal(dim1=-2, dim2=-1).sum(-1, keepdim=True)
        dot_var = (torch.einsum("nd,cde,ne->nc", mu_x, cov_y, mu_x) + torch.einsum("ce,nde,cd->nc", mu_y, cov_x, mu_y)
                   + torch.einsum("nde,ced->nc", cov_x, cov_y))
    norm2 = ex2 * ey2.T
    return (mu_x @ mu_y.T) / norm2.sqrt(), dot_var.clamp_min(0) / norm2


def cosine_moments_eigen(mu_x: torch.Tensor, basis_x: torch.Tensor, eig_x: torch.Tensor, mu_y: torch.Tensor,
                         basis_y: torch.Tensor, eig_y: torch.Tensor,
                         covariance: str = "full") -> tuple[torch.Tensor, torch.Tensor]:
    """ProbCosine for covariances sharing one eigenbasis per modality, ``S_x[n] = Q_x diag(eig_x[n]) Q_x'``, as a
    Kronecker-factored Laplace gives them: the full-covariance moments cost O((N + C) D^2 + N C D), never a
    ``[N, C, D, D]`` tensor. ``covariance="diagonal"`` keeps only the diagonal of each covariance (BayesVLM)."""
    if covariance not in COVARIANCES:
        raise ValueError(f"unknown covariance {covariance!r}; choose from {COVARIANCES}")
    if covariance == "diagonal":
        return cosine_moments(mu_x, eig_x @ (basis_x**2).T, mu_y, eig_y @ (basis_y**2).T)
    ex2 = (mu_x**2).sum(-1, keepdim=True) + eig_x.sum(-1, keepdim=True)
    ey2 = (mu_y**2).sum(-1, keepdim=True) + eig_y.sum(-1, keepdim=True)
    overlap = (basis_x.T @ basis_y) ** 2  # [D, D]: tr(Q_x a Q_x' Q_y b Q_y') = a' overlap b
    dot_var = ((mu_x @ basis_y) ** 2) @ eig_y.T + eig_x @ ((mu_y @ basis_x) ** 2).T + eig_x @ overlap @ eig_y.T
    norm2 = ex2 * ey2.T
    return (mu_x @ mu_y.T) / norm2.sqrt(), dot_var.clamp_min(0) / norm2


def logit_moments(cos_mean: torch.Tensor, cos_var: torch.Tensor, scale: float,
                  bias: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the logits ``scale * cos + bias`` (bias: SigLIP's; a constant that cancels in a plain
    softmax, not under the probit, which scales each class's logit by its own variance)."""
    return scale * cos_mean + (bias or 0.0), scale**2 * cos_var


def probit_probs(logit_mean: torch.Tensor, logit_var: torch.Tensor) -> torch.Tensor:
    """Class probabilities by the probit approximation: softmax of ``mean / sqrt(1 + pi/8 var)`` per logit."""
    return torch.softmax(logit_mean / torch.sqrt(1 + math.pi / 8 * logit_var), dim=-1)


def cosine_mc(mu_x: np.ndarray, cov_x: np.ndarray, mu_y: np.ndarray, cov_y: np.ndarray, n_samples: int,
              seed: int = 0) -> dict[str, float]:
    """Monte Carlo reference for one pair: the cosine's mean and variance from ``n_samples`` draws, with their
    standard errors (the mean's s/sqrt(M); the variance's from the fourth central moment)."""
    rng = np.random.default_rng(seed)

    def root(cov):
        w, v = np.linalg.eigh(cov)
        return v * np.sqrt(np.clip(w, 0, None))

    rx, ry = root(np.asarray(cov_x, float)), root(np.asarray(cov_y, float))
    parts = []
    for start in range(0, n_samples, 20_000):  # chunks: [M, D] draws never all at once
        m = min(20_000, n_samples - start)
        x = mu_x + rng.standard_normal((m, len(mu_x))) @ rx.T
        y = mu_y + rng.standard_normal((m, len(mu_y))) @ ry.T
        parts.append(np.sum(x * y, axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)))
    c = np.concatenate(parts)
    m, v = c.mean(), c.var(ddof=1)
    m4 = np.mean((c - m) ** 4)
    return dict(mean=float(m), var=float(v), se_mean=float(np.sqrt(v / n_samples)),
                se_var=float(np.sqrt(max(m4 - v**2 * (n_samples - 3) / (n_samples - 1), 0.0) / n_samples)))
