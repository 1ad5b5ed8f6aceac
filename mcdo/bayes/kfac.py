"""Kronecker factors of the generalised Gauss-Newton (GGN) of a contrastive loss over a projection layer.

A projection maps a pooled pre-projection activation ``a [P]`` (with a trailing 1 when the layer has a bias) to
an embedding ``e = W a [D]``. With column-major ``vec(W)``, one datum's GGN is ``(a a') kron B(e)``, where
``B(e) = J' H J`` is the GGN of the loss with respect to the (unnormalised) embedding: ``H`` the Hessian of the loss
in the logits and ``J`` the Jacobian of the logits in ``e``, which passes through the L2 normalisation,
``d e_hat / d e = (I - e_hat e_hat') / |e|``. KFAC approximates ``sum_i (a_i a_i') kron B_i`` by
``n * mean(a a') kron mean(B)``, exact for one datum (tested against a dense autograd GGN).

As in BayesVLM, the other modality's embeddings act as the classes: for an image, the captions of its class
batch (CLIP's softmax InfoNCE: ``p = softmax(s cos(e, y_c))``; SigLIP's pairwise sigmoid: one Bernoulli per
caption with logit ``s cos(e, y_c) + b``, whose GGN does not depend on the label). ``gaussian`` is the
linear-Gaussian likelihood on the raw embedding (no normalisation), where the Laplace is exact (BVL-02).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

LIKELIHOODS = ("infonce", "sigmoid", "gaussian")


def check_likelihood(likelihood: str) -> str:
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {likelihood!r}; choose from {LIKELIHOODS}")
    return likelihood


def likelihood_of(loss: str) -> str:
    """The likelihood of a model trained with ``loss`` (the registry's softmax / sigmoid)."""
    return {"softmax": "infonce", "sigmoid": "sigmoid"}[loss]


def normalisation_jacobian(e: torch.Tensor) -> torch.Tensor:
    """``d (e / |e|) / d e = (I - e_hat e_hat') / |e|`` per row: ``[N, D, D]`` (symmetric)."""
    norm = e.norm(dim=-1, keepdim=True)
    u = e / norm
    eye = torch.eye(e.shape[-1], dtype=e.dtype, device=e.device)
    return (eye - u[:, :, None] * u[:, None, :]) / norm[:, :, None]


def _weighted_gram(w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``Y' diag(w_n) Y`` for each row ``w_n`` of ``w [N, C]``: ``[N, D, D]`` (one batched matmul)."""
    return (w.unsqueeze(-1) * y).transpose(1, 2) @ y


def logit_hessian(e: torch.Tensor, targets: torch.Tensor, likelihood: str, scale: float,
                  bias: float | None = None) -> torch.Tensor:
    """The GGN of the loss in the normalised embedding, ``s^2 Y' H Y`` per datum ``[N, D, D]`` (``Y``: the classes'
    normalised embeddings ``[C, D]``)."""
    y = targets / targets.norm(dim=-1, keepdim=True)
    logits = scale * (e / e.norm(dim=-1, keepdim=True)) @ y.T
    if likelihood == "infonce":
        p = torch.softmax(logits, dim=-1)
        yp = p @ y  # [N, D]
        return scale**2 * (_weighted_gram(p, y) - yp[:, :, None] * yp[:, None, :])
    if likelihood == "sigmoid":
        sig = torch.sigmoid(logits + (bias or 0.0))
        return scale**2 * _weighted_gram(sig * (1 - sig), y)
    raise ValueError(f"logit_hessian is for the contrastive likelihoods, not {likelihood!r}")


def embedding_ggn(e: torch.Tensor, targets: torch.Tensor | None, likelihood: str, scale: float = 1.0,
                  bias: float | None = None, noise: float = 1.0) -> torch.Tensor:
    """Per-datum GGN of the loss with respect to the unnormalised embedding, ``[N, D, D]``."""
    check_likelihood(likelihood)
    if likelihood == "gaussian":
        eye = torch.eye(e.shape[-1], dtype=e.dtype, device=e.device)
        return eye.expand(e.shape[0], -1, -1) / noise**2
    j = normalisation_jacobian(e)
    return j @ logit_hessian(e, targets, likelihood, scale, bias) @ j


@dataclass
class Factors:
    """Sums of the Kronecker factors over ``n`` data: ``A = sum a a'`` ``[P, P]``, ``B = sum B_i`` ``[D, D]``."""

    A: torch.Tensor
    B: torch.Tensor
    n: int

    def __add__(self, other: "Factors") -> "Factors":
        return Factors(self.A + other.A, self.B + other.B, self.n + other.n)

    def means(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.A / self.n, self.B / self.n


def kfac_factors(activations: torch.Tensor, embeddings: torch.Tensor, targets: torch.Tensor | None,
                 likelihood: str, scale: float = 1.0, bias: float | None = None, class_batch: int | None = None,
                 chunk: int = 64, noise: float = 1.0) -> Factors:
    """The KFAC factors of one projection from its data.

    ``activations [N, P]`` (bias column included), ``embeddings [N, D]`` its outputs, ``targets [N, D]`` the
    other modality's embeddings of the same pairs. Data are split into consecutive class batches of
    ``class_batch`` pairs (BayesVLM: 32768); within a batch, the batch's targets are the classes. The last
    incomplete batch is kept (BayesVLM drops it). Sums are accumulated in float64, ``chunk`` data at a time.
    """
    check_likelihood(likelihood)
    a = activations.double()
    e = embeddings.double()
    n = a.shape[0]
    if e.shape[0] != n or (targets is not None and targets.shape[0] != n):
        raise ValueError(f"activations, embeddings and targets need one row per pair; got {a.shape[0]}, "
                         f"{e.shape[0]}, {None if targets is None else targets.shape[0]}")
    if n == 0:
        raise ValueError("no data to estimate the Hessian from")
    B = torch.zeros(e.shape[1], e.shape[1], dtype=torch.float64)
    cb = class_batch or n
    for start in range(0, n, cb):
        t = targets[start:start + cb].double() if targets is not None else None
        for s in range(start, min(start + cb, n), chunk):
            stop = min(s + chunk, start + cb, n)
            B += embedding_ggn(e[s:stop], t, likelihood, scale, bias, noise).sum(0)
    return Factors(a.T @ a, B, n)
