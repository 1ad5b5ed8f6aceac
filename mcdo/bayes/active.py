"""Active learning on BayesVLM's uncertainty, mcdo's own batch procedure (the acquisition functions BALD and EPIG
are shared with ``mcdo.bayes.online``, which runs the authors' procedure, what BVL-06 is judged on).

The image projection's Laplace posterior (from the Hessian data) is the prior of a downstream classifier whose
classes are the class prompts' embeddings (held at their means). Each round acquires ``per_round`` labels from a
pool, then (1) the MAP of the projection is refitted on every label so far under that prior,
``sum_i CE(s cos(W a_i + r_i, y_c), label_i) + 1/2 vec(W - W0)' P0 vec(W - W0)`` (L-BFGS), and (2) the precision
gains the labelled data's GGN (KFAC: factor sums add), so the next acquisition sees the updated posterior.
BayesVLM fine-tunes the projection with AdamW on the selected subset instead; the acquisition functions are the
same quantities, computed from posterior samples:

    BALD(x) = H[E_w p(y|x,w)] - E_w H[p(y|x,w)]
    EPIG(x) = E_{x* ~ target} I(y; y* | x, x*)   (Smith et al. 2023), target = unlabelled test-distribution inputs
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..models.heads import ProjectionFeatures
from .kfac import Factors
from .laplace import KFACPosterior

STRATEGIES = ("random", "bald", "epig")


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * p.clamp_min(1e-12).log()).sum(-1)


def bald(samples: torch.Tensor) -> torch.Tensor:
    """Mutual information between the label and the weights, from class probabilities ``[S, N, C]``."""
    return _entropy(samples.mean(0)) - _entropy(samples).mean(0)


def epig(pool: torch.Tensor, target: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Expected predictive information gain of each pool input about the labels of ``target`` inputs, from
    probabilities ``[S, N, C]`` and ``[S, M, C]`` drawn with the same weight samples.

    ``I(y; y*) = sum p(y, y*) log p(y, y*) + H[p(y)] + H[p(y*)]`` with the joint ``(1/S) sum_s p_s(y) p_s(y*)`` (its
    marginals are the mean probabilities exactly), one ``[N C, m C*]`` product per chunk of ``chunk`` targets."""
    s, n, c = pool.shape
    m, d = target.shape[1:]
    h_pool, h_targ = _entropy(pool.mean(0)), _entropy(target.mean(0))  # [N], [M]
    left = pool.permute(1, 2, 0).reshape(n * c, s) / s
    total = torch.zeros(n, dtype=pool.dtype)
    for start in range(0, m, chunk):
        right = target[:, start:start + chunk].reshape(s, -1)  # [S, m d]
        joint = left @ right  # [N c, m d]
        total += torch.xlogy(joint, joint).reshape(n, -1).sum(1)
    return (total + m * h_pool + h_targ.sum()) / m


def class_probs(weights: torch.Tensor, feats: ProjectionFeatures, classes: torch.Tensor, scale: float,
                chunk: int = 128) -> torch.Tensor:
    """Softmax over classes of ``scale * cos(W a + r, class)`` for weights ``[S, D, P]``: ``[S, N, C]`` (``chunk``
    inputs at a time, so no ``[S, N, D]`` embedding tensor is ever whole)."""
    cls = F.normalize(classes.double(), dim=-1).T
    w = weights.double()
    a, r = feats.activations.double(), feats.residual.double()
    out = torch.empty(w.shape[0], a.shape[0], cls.shape[1], dtype=torch.float64)
    for start in range(0, a.shape[0], chunk):
        e = torch.einsum("sdp,np->snd", w, a[start:start + chunk]) + r[start:start + chunk]
        out[:, start:start + chunk] = torch.softmax(scale * F.normalize(e, dim=-1) @ cls, dim=-1)
    return out


def classification_factors(feats: ProjectionFeatures, weight: torch.Tensor, classes: torch.Tensor,
                           scale: float) -> Factors:
    """KFAC factors of the softmax classification likelihood over the class prompts (label-free GGN)."""
    from .kfac import embedding_ggn

    a = feats.activations.double()
    e = a @ weight.T + feats.residual.double()
    return Factors(a.T @ a, embedding_ggn(e, classes.double(), "infonce", scale).sum(0), a.shape[0])


def refit_map(prior: KFACPosterior, feats: ProjectionFeatures, labels: torch.Tensor, classes: torch.Tensor,
              scale: float, iters: int = 60) -> torch.Tensor:
    """The projection's MAP on the labelled data under the Gaussian prior ``N(W0, P0^-1)`` of ``prior``."""
    w0 = prior.weight.double()
    w = w0.clone(memory_format=torch.contiguous_format).requires_grad_(True)
    a, r, y = feats.activations.double(), feats.residual.double(), labels.long()
    cls = F.normalize(classes.double(), dim=-1)
    opt = torch.optim.LBFGS([w], max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        d = w - w0
        logits = scale * F.normalize(a @ w.T + r, dim=-1) @ cls.T
        loss = F.cross_entropy(logits, y, reduction="sum") + 0.5 * prior.precision_quadratic(d)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


@dataclass
class Curve:
    strategy: str
    labels: list[int]
    accuracy: list[float]


def run(strategy: str, prior: KFACPosterior, pool: ProjectionFeatures, pool_labels: np.ndarray,
        test: ProjectionFeatures, test_labels: np.ndarray, classes: torch.Tensor, scale: float, rounds: int = 10,
        per_round: int = 4, samples: int = 64, targets: int = 100, seed: int = 0) -> Curve:
    """One learning curve: test accuracy of the MAP after 0, per_round, 2 per_round, ... labels."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {STRATEGIES}")
    if rounds * per_round > len(pool_labels):
        raise ValueError(f"a budget of {rounds} rounds x {per_round} labels exceeds the pool ({len(pool_labels)})")
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    chosen: list[int] = []
    post, w = prior, prior.weight.double()
    target_idx = torch.as_tensor(rng.choice(len(test_labels), min(targets, len(test_labels)), replace=False))
    acc, n_labels = [], []
    test_y = np.asarray(test_labels)

    def accuracy(weight):
        return float((class_probs(weight[None], test, classes, scale)[0].argmax(1).numpy() == test_y).mean())

    for r in range(rounds + 1):
        acc.append(accuracy(w))
        n_labels.append(len(chosen))
        if r == rounds:
            break
        free = np.setdiff1d(np.arange(len(pool_labels)), chosen)
        if strategy == "random":
            pick = rng.choice(free, per_round, replace=False)
        else:
            ws = post.sample(samples, gen)
            sub = pool[torch.as_tensor(free)]
            p_pool = class_probs(ws, sub, classes, scale)
            if strategy == "bald":
                score = bald(p_pool)
            else:
                score = epig(p_pool, class_probs(ws, test[target_idx], classes, scale))
            pick = free[torch.topk(score, per_round).indices.numpy()]
        chosen += [int(i) for i in pick]
        idx = torch.as_tensor(chosen)
        lab = pool[idx]
        w = refit_map(prior, lab, torch.as_tensor(np.asarray(pool_labels)[chosen]), classes, scale)
        extra = classification_factors(lab, w, classes, scale)
        post = prior.updated(extra, w)
    return Curve(strategy, n_labels, acc)


def area_between(curve: Curve, baseline: Curve) -> float:
    """Mean accuracy difference over the acquisition rounds (the labelled budgets after round 0)."""
    a, b = np.asarray(curve.accuracy[1:]), np.asarray(baseline.accuracy[1:])
    return float(np.mean(a - b))
