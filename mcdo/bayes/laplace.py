"""The Laplace posterior of one projection layer with a Kronecker-factored precision.

Precision ``P = N * mean(a a') kron mean(B) + lambda I`` (column-major ``vec(W)``, ``W [D, P]``): ``N`` the
pseudo-data count (default: the number of Hessian pairs, which is what BayesVLM's ``A / sqrt(n)``,
``B / sqrt(n)`` scaling amounts to), ``lambda`` the prior precision of an isotropic Gaussian prior centred at
zero, fitted by maximising the Laplace marginal likelihood.

Departures from BayesVLM's public code, on purpose:
- The prior enters exactly, through the eigendecompositions ``A = Qa diag(alpha) Qa'``, ``B = Qb diag(beta) Qb'``:
  ``P = (Qa kron Qb) diag(N alpha_i beta_j + lambda) (Qa kron Qb)'``. BayesVLM adds ``sqrt(lambda) I`` to each
  factor, which is ``N A kron B + sqrt(N lambda)(A kron I + I kron B) + lambda I``, not the stated prior.
- The log-determinant is the sum of ``log(N alpha_i beta_j + lambda)``, and so obeys
  ``log|A kron B| = q log|A| + p log|B|`` for ``A`` p x p and ``B`` q x q. BayesVLM's ``compute_log_det_kfac``
  computes ``p log|A| + q log|B|``, which differs whenever p != q (CLIP ViT-B/32: 768 inputs, 512 outputs).
- ``lambda`` is found by a bounded 1-D maximisation in ``log lambda`` (BayesVLM: 300 Adam steps).
- An embedding's covariance is kept whole: ``Cov(W a) = Qb diag(c) Qb'`` with
  ``c_j = sum_i (Qa' a)_i^2 / (N alpha_i beta_j + lambda)``, exact for the Kronecker posterior (BayesVLM keeps
  ``diag`` of it, available as ``covariance="diagonal"`` in ProbCosine).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .kfac import Factors


def add_bias_column(activations: torch.Tensor) -> torch.Tensor:
    """Activations with a trailing 1: the input of a layer with a bias, written as one matrix ``[W | b]``."""
    return torch.cat([activations, torch.ones_like(activations[:, :1])], dim=1)


@dataclass
class KFACPosterior:
    """Gaussian posterior over one projection ``W [D, P]`` (bias as the last column), around the trained weights."""

    weight: torch.Tensor
    factors: Factors
    prior_precision: float = 1.0
    pseudo_count: float | None = None
    _eig: tuple | None = field(default=None, repr=False)

    @property
    def count(self) -> float:
        return float(self.pseudo_count if self.pseudo_count is not None else self.factors.n)

    def eig(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(alpha, Qa, beta, Qb)``: eigendecompositions of the mean factors (negative round-off clipped to 0)."""
        if self._eig is None:
            A, B = self.factors.means()
            alpha, qa = torch.linalg.eigh(A.double())
            beta, qb = torch.linalg.eigh(B.double())
            self._eig = (alpha.clamp_min(0), qa, beta.clamp_min(0), qb)
        return self._eig

    def precision_eigenvalues(self, prior_precision: float | None = None) -> torch.Tensor:
        """``N alpha_i beta_j + lambda`` as ``[P, D]``."""
        lam = self.prior_precision if prior_precision is None else prior_precision
        alpha, _, beta, _ = self.eig()
        return self.count * alpha[:, None] * beta[None, :] + lam

    def log_det_precision(self, prior_precision: float | None = None) -> float:
        return float(self.precision_eigenvalues(prior_precision).log().sum())

    def log_marglik(self, prior_precision: float | None = None, log_lik: float = 0.0) -> float:
        """Laplace log marginal likelihood ``log p(D|W*) + log N(W*; 0, I/lambda) + d/2 log 2pi - 1/2 log|P|``
        (``log_lik``: the data's log likelihood at the trained weights; it does not depend on lambda)."""
        lam = self.prior_precision if prior_precision is None else prior_precision
        d = self.weight.numel()
        w2 = float((self.weight.double() ** 2).sum())
        log_prior = -0.5 * lam * w2 + 0.5 * d * math.log(lam) - 0.5 * d * math.log(2 * math.pi)
        return log_lik + log_prior + 0.5 * d * math.log(2 * math.pi) - 0.5 * self.log_det_precision(lam)

    def fit_prior_precision(self, bounds: tuple[float, float] = (1e-6, 1e10)) -> float:
        """Set ``lambda`` to the maximiser of the marginal likelihood (bounded search in ``log lambda``)."""
        from scipy.optimize import minimize_scalar

        res = minimize_scalar(lambda t: -self.log_marglik(math.exp(t)), bounds=tuple(map(math.log, bounds)),
                              method="bounded", options=dict(xatol=1e-6))
        self.prior_precision = float(math.exp(res.x))
        return self.prior_precision

    def embedding_covariance(self, activations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The covariance of each embedding ``W a`` under the posterior: ``(Qb [D, D], c [N, D])`` with
        ``Cov = Qb diag(c) Qb'``; ``activations [N, P]`` include the bias column when the layer has one."""
        _, qa, _, qb = self.eig()
        proj = (activations.double() @ qa) ** 2  # [N, P]
        return qb, proj @ (1.0 / self.precision_eigenvalues())

    def dense_covariance(self) -> torch.Tensor:
        """The full ``[P*D, P*D]`` posterior covariance (column-major vec): for tests on small layers."""
        alpha, qa, beta, qb = self.eig()
        q = torch.kron(qa, qb)
        return q @ torch.diag(1.0 / self.precision_eigenvalues().reshape(-1)) @ q.T

    def sample(self, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``k`` weight matrices ``[k, D, P]`` from the posterior: ``W* + Qb (Z * S) Qa'`` with
        ``S_ji = 1 / sqrt(N alpha_i beta_j + lambda)``."""
        _, qa, _, qb = self.eig()
        s = self.precision_eigenvalues().rsqrt().T  # [D, P]
        z = torch.randn((k, *s.shape), dtype=torch.float64, generator=generator)
        return self.weight.double() + qb @ (z * s) @ qa.T

    def updated(self, extra: Factors) -> "KFACPosterior":
        """The posterior after more data (KFAC: factor sums add), same weights, prior and count rule."""
        count = None if self.pseudo_count is None else self.pseudo_count + extra.n
        return KFACPosterior(self.weight, self.factors + extra, self.prior_precision, count)


def kron_logdet(A: torch.Tensor, B: torch.Tensor) -> float:
    """``log|A kron B| = q log|A| + p log|B|`` for ``A`` p x p and ``B`` q x q (both positive definite)."""
    p, q = A.shape[0], B.shape[0]
    return float(q * torch.logdet(A.double()) + p * torch.logdet(B.double()))
