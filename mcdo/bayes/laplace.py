"""The Laplace posterior of one projection layer with a Kronecker-factored precision, in two configurations.

A projection ``W [D, P]`` (column-major ``vec(W)``, bias as the last column) with KFAC factors ``A`` (``[P, P]``,
inputs) and ``B`` (``[D, D]``, the GGN in the embedding) from ``n`` pairs; ``A``, ``B`` below are the factor means
(sums / n), ``N`` the pseudo-data count and ``lambda`` the prior precision. ``POSTERIORS`` holds both as data:

* ``bayesvlm``, the authors' (AaltoML/BayesVLM, ``bayesvlm/hessians.py``, ``notebooks/zeroshot.ipynb``): ``N = 10 n``
  (the stored factors are sums / sqrt(n), scaled by sqrt(10) each); damping on each factor,
  precision ``(sqrt(N) A + sqrt(lambda) I) kron (sqrt(N) B + sqrt(lambda) I)``; ``lambda`` by Adam on
  ``log lambda`` (300 steps, lr 1e-2, from 1500) of their evidence ``-lambda/2 |W|^2 + d/2 log lambda
  - (P log|A~| + D log|B~|)``, whose log-determinant has no 1/2 and weighs each factor by its own size (the
  Kronecker identity gives ``D log|A~| + P log|B~|``).
* ``laplace``, mcdo's exact-prior posterior: ``N = n``, precision ``N A kron B + lambda I`` (the stated isotropic
  prior, entered exactly through the eigenbases), ``lambda`` maximising the Laplace marginal likelihood
  ``log p(D|W*) + log N(W*; 0, I/lambda) + d/2 log 2 pi - 1/2 log|P|`` by bounded search in ``log lambda``.

Both share the eigenbases ``A = Qa diag(alpha) Qa'``, ``B = Qb diag(beta) Qb'``: the precision is
``(Qa kron Qb) diag(p_ij) (Qa kron Qb)'`` with ``p_ij = N alpha_i beta_j + lambda`` (laplace) or
``(sqrt(N) alpha_i + sqrt(lambda)) (sqrt(N) beta_j + sqrt(lambda))`` (bayesvlm), so covariances, samples and
embedding covariances are one code path. An embedding's covariance is kept whole, ``Cov(W a) = Qb diag(c) Qb'``
with ``c_j = sum_i (Qa' a)_i^2 / p_ij`` (BayesVLM keeps its diagonal: ``covariance="diagonal"`` in ProbCosine).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .kfac import Factors


def add_bias_column(activations: torch.Tensor) -> torch.Tensor:
    """Activations with a trailing 1: the input of a layer with a bias, written as one matrix ``[W | b]``."""
    return torch.cat([activations, torch.ones_like(activations[:, :1])], dim=1)


@dataclass(frozen=True)
class PosteriorConfig:
    """How a posterior is built from the factors: the pseudo-data count as a multiple of the pairs, where the prior
    enters (``exact``: ``+ lambda I``; ``per-factor``: ``+ sqrt(lambda) I`` on each factor), the evidence that
    chooses lambda and how it is maximised."""

    name: str
    multiplier: float
    damping: str
    evidence: str
    optimiser: str
    adam: dict = field(default_factory=dict)  # steps, lr, init (the notebook's)
    probit_bias: bool = True  # SigLIP's logit bias inside the probit (the authors leave it out)
    covariance: str = "full"  # ProbCosine with whole embedding covariances, or their diagonal (the authors')
    text: str = ""


POSTERIORS: dict[str, PosteriorConfig] = {
    "bayesvlm": PosteriorConfig("bayesvlm", 10.0, "per-factor", "bayesvlm", "adam",
                                dict(steps=300, lr=1e-2, init=1500.0), False, "diagonal",
                                "BayesVLM's notebook: N = 10 n, sqrt(lambda) I on each factor, their evidence by "
                                "300 Adam steps on log lambda, no bias in the probit, diagonal embedding covariances"),
    "laplace": PosteriorConfig("laplace", 1.0, "exact", "laplace", "bounded", {}, True, "full",
                               "mcdo's exact-prior Laplace: N = n, N A kron B + lambda I, the Laplace evidence "
                               "maximised in log lambda"),
}


def posterior_config(name: str) -> PosteriorConfig:
    if name not in POSTERIORS:
        raise ValueError(f"unknown posterior {name!r}; choose from {', '.join(POSTERIORS)}")
    return POSTERIORS[name]


@dataclass
class KFACPosterior:
    """Gaussian posterior over one projection ``W [D, P]`` (bias as the last column), around the trained weights.

    ``posterior`` names its configuration (``POSTERIORS``); ``N`` is ``multiplier`` (default: the
    configuration's, BayesVLM's 10) times the factors' pairs, or ``pseudo_count`` pairs when that is given."""

    weight: torch.Tensor
    factors: Factors
    prior_precision: float = 1.0
    pseudo_count: float | None = None
    posterior: str = "laplace"
    multiplier: float | None = None
    _eig: tuple | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.config = posterior_config(self.posterior)

    @property
    def count(self) -> float:
        """``N``, the pseudo-data count that multiplies the mean factors."""
        if self.pseudo_count is not None:
            return float(self.pseudo_count)
        return float((self.multiplier if self.multiplier is not None else self.config.multiplier) * self.factors.n)

    def eig(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(alpha, Qa, beta, Qb)``: eigendecompositions of the mean factors (negative round-off clipped to 0)."""
        if self._eig is None:
            A, B = self.factors.means()
            alpha, qa = torch.linalg.eigh(A.double())
            beta, qb = torch.linalg.eigh(B.double())
            self._eig = (alpha.clamp_min(0), qa, beta.clamp_min(0), qb)
        return self._eig

    def precision_eigenvalues(self, prior_precision: float | None = None) -> torch.Tensor:
        """The precision's eigenvalues ``p_ij`` as ``[P, D]`` (see the module docstring for both dampings)."""
        lam = self.prior_precision if prior_precision is None else prior_precision
        alpha, _, beta, _ = self.eig()
        if self.config.damping == "per-factor":
            r, s = math.sqrt(self.count), torch.as_tensor(lam, dtype=torch.float64).sqrt()
            return (r * alpha[:, None] + s) * (r * beta[None, :] + s)
        return self.count * alpha[:, None] * beta[None, :] + lam

    def log_det_precision(self, prior_precision: float | None = None) -> float:
        return float(self.precision_eigenvalues(prior_precision).log().sum())

    def log_marglik(self, prior_precision: float | None = None, log_lik: float = 0.0) -> float:
        """The evidence the configuration maximises, at ``prior_precision`` (default: the current one).

        laplace: ``log p(D|W*) + log N(W*; 0, I/lambda) + d/2 log 2pi - 1/2 log|P|`` (``log_lik``: the data's log
        likelihood at the trained weights; it does not depend on lambda). bayesvlm: their
        ``-lambda/2 |W|^2 + d/2 log lambda - (P log|A~| + D log|B~|)``."""
        lam = self.prior_precision if prior_precision is None else prior_precision
        return float(self._evidence(torch.tensor(float(lam), dtype=torch.float64))) + log_lik

    def _evidence(self, lam: torch.Tensor) -> torch.Tensor:
        d = self.weight.numel()
        w2 = float((self.weight.double() ** 2).sum())
        if self.config.evidence == "bayesvlm":
            alpha, _, beta, _ = self.eig()
            r = math.sqrt(self.count)
            log_det = alpha.numel() * torch.log(r * alpha + lam.sqrt()).sum() \
                + beta.numel() * torch.log(r * beta + lam.sqrt()).sum()
            return -0.5 * lam * w2 + 0.5 * d * torch.log(lam) - log_det
        log_prior = -0.5 * lam * w2 + 0.5 * d * torch.log(lam) - 0.5 * d * math.log(2 * math.pi)
        return log_prior + 0.5 * d * math.log(2 * math.pi) - 0.5 * self.precision_eigenvalues(lam).log().sum()

    def fit_prior_precision(self, bounds: tuple[float, float] = (1e-6, 1e10)) -> float:
        """Set ``lambda`` by the configuration's optimiser: a bounded search in ``log lambda`` (laplace), or the
        authors' Adam on ``log lambda`` with their steps, learning rate and start (bayesvlm)."""
        if self.config.optimiser == "adam":
            self.prior_precision = adam_prior_precision(self._evidence, **self.config.adam)
            return self.prior_precision
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

    def precision_quadratic(self, delta: torch.Tensor) -> torch.Tensor:
        """``vec(delta)' P vec(delta)`` for a weight change ``delta [D, P]`` (differentiable): the prior term of a
        refit around ``weight`` under this posterior."""
        _, qa, _, qb = self.eig()
        rot = qb.T @ delta.double() @ qa  # [D, P]
        return (rot**2 * self.precision_eigenvalues().T).sum()

    def sample(self, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``k`` weight matrices ``[k, D, P]`` from the posterior: ``W* + Qb (Z * S) Qa'`` with
        ``S_ji = 1 / sqrt(p_ij)``."""
        _, qa, _, qb = self.eig()
        s = self.precision_eigenvalues().rsqrt().T  # [D, P]
        z = torch.randn((k, *s.shape), dtype=torch.float64, generator=generator)
        return self.weight.double() + qb @ (z * s) @ qa.T

    def updated(self, extra: Factors, weight: torch.Tensor | None = None) -> "KFACPosterior":
        """The posterior after more data (KFAC: factor sums add), same prior and count rule (a set count grows by
        the new pairs; a multiple of the pairs stays that multiple, BayesVLM's N = 10 n)."""
        count = None if self.pseudo_count is None else self.pseudo_count + extra.n
        return KFACPosterior(self.weight if weight is None else weight, self.factors + extra, self.prior_precision,
                             count, self.posterior, self.multiplier)


def adam_prior_precision(evidence, steps: int, lr: float, init: float) -> float:
    """BayesVLM's prior-precision search: Adam (torch's defaults otherwise) maximising ``evidence(lambda)`` in
    ``log lambda`` from ``init`` for ``steps`` steps at learning rate ``lr``; the last iterate, as theirs."""
    log_lam = torch.nn.Parameter(torch.tensor(math.log(init), dtype=torch.float64))
    opt = torch.optim.Adam([log_lam], lr=lr, maximize=True)
    for _ in range(steps):
        opt.zero_grad()
        evidence(log_lam.exp()).backward()
        opt.step()
    return float(log_lam.detach().exp())


def kron_logdet(A: torch.Tensor, B: torch.Tensor) -> float:
    """``log|A kron B| = q log|A| + p log|B|`` for ``A`` p x p and ``B`` q x q (both positive definite)."""
    p, q = A.shape[0], B.shape[0]
    return float(q * torch.logdet(A.double()) + p * torch.logdet(B.double()))
