"""Active learning as BayesVLM runs it (AaltoML/BayesVLM ``scripts/activelearning.py``, ``bayesvlm/epig.py``,
``bayesvlm/knn.py``), with the acquisition estimator as a named option.

1. **Targeted pool** (``knn_pool``): each target input (unlabelled, from the test distribution) brings its nearest
   pool input by the squared 2-Wasserstein distance between the two embeddings' Gaussians with diagonal
   covariances, ``|mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2``; the pool is the set of those neighbours (k = 1).
2. **Online selection** (``select_online``), one label per step: score every pool input, label the best one not
   chosen yet, take one SGD step (lr 1e-4) on the image projection with the cross-entropy of its ProbCosine mean
   logits, add its KFAC factors counted ``update_scale`` (10) times to the Hessian (the pair count grows by one, so
   N = 10 n stays 10 n), and refit lambda by 20 Adam steps (lr 1e-3) of the authors' evidence from the last lambda.
3. **Evaluation** (``finetune``): the projection fine-tuned on the selected inputs from the zero-shot weights by
   AdamW (lr 1e-5, weight decay 0.05, 100 epochs, batches of 30), keeping the epoch of least validation loss; the
   prior does not enter. A curve is its test accuracy after 0, b1, b2, ... labels (prefixes of one selection).

Strategies (``STRATEGIES``): ``random`` (pool inputs drawn at random, their ``random_on_train``), ``bald`` (the
targets of highest BALD, each replaced by its nearest unused pool input, their ``bald_test``), ``epig`` and
``epig-published`` (the online selection with each estimator), and ``random-targeted`` (inputs drawn at random from
the targeted pool: what the acquisition adds beyond the pool, mcdo's addition).

Estimators (``ESTIMATORS``): ``weights`` draws the projection's weights and uses each draw for pool and target
alike, so the joint ``p(y, y*)`` carries the dependence that EPIG measures (Smith et al. 2023): the correct
estimator. ``published`` is the authors' ``epig_from_logits_using_matmul``: each input's logits drawn on their own
from its ProbCosine Gaussian, so pool and target draws share no weights, the joint factorises in expectation and
the score is the estimator's bias, which falls as 1/K in the K draws.

Where this differs from the authors' code (``DEPARTURES``, carried into every record that uses it):
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..models.heads import ProjectionFeatures
from .active import Curve, bald, class_probs, epig
from .kfac import Factors, embedding_ggn
from .laplace import KFACPosterior, adam_prior_precision
from .probcosine import cosine_moments

STRATEGIES = ("random", "random-targeted", "bald", "epig", "epig-published")
ESTIMATORS = ("weights", "published")
A_UPDATES = ("outer", "published")
DEPARTURES = {
    "a_update": "the new input's A factor is its outer product a a' (the authors' `a @ a.T` on a 1-D activation is "
                "the scalar |a|^2, added to every entry of A); `a_update='published'` runs theirs",
    "text_posterior": "class embeddings held at their means (the authors' logits also carry the text posterior)",
    "bald": "BALD from shared weight draws (the authors' from independent per-class logit draws)",
}
__doc__ += "".join(f"\n* ``{k}``: {v}." for k, v in DEPARTURES.items()) + "\n"


@dataclass(frozen=True)
class OnlineConfig:
    """The authors' settings (``activelearning.py``'s defaults and its call of ``select_epig_online``)."""

    lr: float = 1e-4  # epig_lr: the SGD step after each label
    update_scale: float = 10.0  # epig_hessian_update_scale: how many times a label counts in the Hessian
    samples: int = 100  # epig_num_samples
    lambda_steps: int = 20
    lambda_lr: float = 1e-3
    k_nearest: int = 1
    budget: int = 50  # subset_size
    target_max: int = 20_000
    finetune_lr: float = 1e-5
    finetune_wd: float = 5e-2
    finetune_epochs: int = 100
    finetune_batch: int = 30
    a_update: str = "outer"

    def __post_init__(self) -> None:
        if self.a_update not in A_UPDATES:
            raise ValueError(f"unknown a_update {self.a_update!r}; choose from {A_UPDATES}")

    def as_dict(self) -> dict:
        return asdict(self)


def embedding_variances(post: KFACPosterior, feats: ProjectionFeatures) -> torch.Tensor:
    """The diagonal of each embedding's posterior covariance ``[N, D]`` (for BayesVLM's Kronecker covariance
    ``A~^-1 kron B~^-1`` this is ``(a' A~^-1 a) diag(B~^-1)``, the authors' ``train_diag_cov``)."""
    qb, c = post.embedding_covariance(feats.activations)
    return c @ (qb**2).T


def wasserstein2(mu1: torch.Tensor, var1: torch.Tensor, mu2: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
    """Squared 2-Wasserstein distances ``[N1, N2]`` between Gaussians with diagonal covariances."""
    sq = torch.cdist(mu1, mu2) ** 2
    return sq + var1.sum(-1)[:, None] + var2.sum(-1)[None, :] - 2 * var1.sqrt() @ var2.sqrt().T


def _distances(post: KFACPosterior, pool: ProjectionFeatures, target: ProjectionFeatures) -> torch.Tensor:
    w = post.weight.double()
    mu_p = pool.activations.double() @ w.T + pool.residual.double()
    mu_t = target.activations.double() @ w.T + target.residual.double()
    return wasserstein2(mu_t, embedding_variances(post, target), mu_p, embedding_variances(post, pool))  # [T, P]


def knn_pool(post: KFACPosterior, pool: ProjectionFeatures, target: ProjectionFeatures, k: int = 1) -> np.ndarray:
    """The targeted pool: the indices (sorted, unique) of each target's ``k`` nearest pool inputs."""
    near = torch.topk(_distances(post, pool, target), k, dim=1, largest=False).indices
    return np.unique(near.numpy())


def draws(post: KFACPosterior, feats: ProjectionFeatures, classes: torch.Tensor, scale: float, k: int,
          gen: torch.Generator, estimator: str, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``k`` draws of the class probabilities ``[k, N, C]``: from shared weight draws (``weights``, pass the same
    ``weights`` for pool and target) or from each input's own ProbCosine logit Gaussian (``published``)."""
    if estimator == "weights":
        return class_probs(post.sample(k, gen) if weights is None else weights, feats, classes, scale)
    if estimator != "published":
        raise ValueError(f"unknown estimator {estimator!r}; choose from {ESTIMATORS}")
    mean, var = logit_moments(post, feats, classes, scale)
    z = torch.randn((k, *mean.shape), dtype=mean.dtype, generator=gen)
    return torch.softmax(mean + var.sqrt() * z, dim=-1)


def logit_moments(post: KFACPosterior, feats: ProjectionFeatures, classes: torch.Tensor,
                  scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """ProbCosine logit mean and variance ``[N, C]`` with the diagonal image covariance, classes at their means."""
    e = feats.activations.double() @ post.weight.double().T + feats.residual.double()
    cls = classes.double()
    mean, var = cosine_moments(e, embedding_variances(post, feats), cls, torch.zeros_like(cls))
    return scale * mean, scale**2 * var


def _sgd_step(post: KFACPosterior, one: ProjectionFeatures, label: int, classes: torch.Tensor, scale: float,
              lr: float) -> torch.Tensor:
    """The weights after one SGD step on the cross-entropy of one labelled input's ProbCosine mean logits."""
    w = post.weight.double().clone().requires_grad_(True)
    var = embedding_variances(post, one)
    e = one.activations.double() @ w.T + one.residual.double()
    cls = classes.double()
    mean, _ = cosine_moments(e, var, cls, torch.zeros_like(cls))
    F.cross_entropy(scale * mean, torch.tensor([label])).backward()
    return (w - lr * w.grad).detach()


def _label_factors(one: ProjectionFeatures, weight: torch.Tensor, classes: torch.Tensor, scale: float,
                   cfg: OnlineConfig) -> Factors:
    """One label's KFAC factors, counted ``update_scale`` times (at its embedding before the step, as theirs)."""
    a = one.activations.double()
    e = a @ weight.double().T + one.residual.double()
    A = a.T @ a if cfg.a_update == "outer" else (a * a).sum() * torch.ones(a.shape[1], a.shape[1], dtype=a.dtype)
    B = embedding_ggn(e, classes.double(), "infonce", scale).sum(0)
    return Factors(cfg.update_scale * A, cfg.update_scale * B, 1)


def select_online(post: KFACPosterior, pool: ProjectionFeatures, pool_labels, target: ProjectionFeatures,
                  classes: torch.Tensor, scale: float, estimator: str = "weights", cfg: OnlineConfig = OnlineConfig(),
                  seed: int = 0) -> tuple[list[int], list[float], list[float]]:
    """The authors' ``select_epig_online``: ``cfg.budget`` pool indices in the order chosen, each one's EPIG and the
    prior precision after it."""
    gen = torch.Generator().manual_seed(seed)
    cand = knn_pool(post, pool, target, cfg.k_nearest)
    if len(cand) < cfg.budget:
        raise ValueError(f"the targeted pool holds {len(cand)} inputs (the nearest pool input of each of "
                         f"{len(target.activations)} targets), fewer than the budget of {cfg.budget}")
    labels = np.asarray(pool_labels)
    sub = pool[torch.as_tensor(cand)]
    chosen, scores, lambdas = [], [], []
    for _ in range(cfg.budget):
        shared = post.sample(cfg.samples, gen) if estimator == "weights" else None
        p_pool = draws(post, sub, classes, scale, cfg.samples, gen, estimator, shared)
        p_targ = draws(post, target, classes, scale, cfg.samples, gen, estimator, shared)
        score = epig(p_pool, p_targ)
        taken = set(chosen)
        best = next(int(j) for j in torch.argsort(score, descending=True) if int(cand[int(j)]) not in taken)
        idx = int(cand[best])
        one = pool[idx:idx + 1]
        w = _sgd_step(post, one, int(labels[idx]), classes, scale, cfg.lr)
        extra = _label_factors(one, post.weight, classes, scale, cfg)
        post = post.updated(extra, w)
        post.prior_precision = adam_prior_precision(post._evidence, cfg.lambda_steps, cfg.lambda_lr,
                                                    post.prior_precision)
        chosen.append(idx)
        scores.append(float(score[best]))
        lambdas.append(post.prior_precision)
    return chosen, scores, lambdas


def select_bald(post: KFACPosterior, pool: ProjectionFeatures, target: ProjectionFeatures, classes: torch.Tensor,
                scale: float, cfg: OnlineConfig = OnlineConfig(), seed: int = 0) -> list[int]:
    """The authors' ``bald_test``: targets by BALD, highest first, each replaced by its nearest pool input not
    chosen yet."""
    gen = torch.Generator().manual_seed(seed)
    score = bald(draws(post, target, classes, scale, cfg.samples, gen, "weights"))
    dist = _distances(post, pool, target)
    chosen: list[int] = []
    for t in torch.argsort(score, descending=True).tolist():
        for j in torch.argsort(dist[t]).tolist():
            if j not in chosen:
                chosen.append(j)
                break
        if len(chosen) == cfg.budget:
            break
    return chosen


def _logits(weight: torch.Tensor, feats: ProjectionFeatures, cls: torch.Tensor, scale: float) -> torch.Tensor:
    return scale * F.normalize(feats.activations.double() @ weight.T + feats.residual.double(), dim=-1) @ cls.T


def finetune(weight: torch.Tensor, feats: ProjectionFeatures, labels, val: ProjectionFeatures, val_labels,
             classes: torch.Tensor, scale: float, cfg: OnlineConfig = OnlineConfig(), seed: int = 0) -> torch.Tensor:
    """The authors' ``finetune``: AdamW on the projection from ``weight`` over the labelled inputs, the weights of
    the epoch with the least validation cross-entropy (epochs 1..E, ties to the later, as theirs)."""
    torch.manual_seed(seed)
    w = weight.double().clone().requires_grad_(True)
    opt = torch.optim.AdamW([w], lr=cfg.finetune_lr, weight_decay=cfg.finetune_wd)
    y, vy = torch.as_tensor(np.asarray(labels)).long(), torch.as_tensor(np.asarray(val_labels)).long()
    cls = F.normalize(classes.double(), dim=-1)
    gen = torch.Generator().manual_seed(seed)
    best, best_loss = w.detach().clone(), float("inf")
    for _ in range(cfg.finetune_epochs):
        for batch in torch.randperm(len(y), generator=gen).split(cfg.finetune_batch):
            opt.zero_grad()
            F.cross_entropy(_logits(w, feats[batch], cls, scale), y[batch]).backward()
            opt.step()
        with torch.no_grad():
            loss = float(F.cross_entropy(_logits(w, val, cls, scale), vy))
        if loss <= best_loss:
            best, best_loss = w.detach().clone(), loss
    return best


def accuracy(weight: torch.Tensor, feats: ProjectionFeatures, labels, classes: torch.Tensor, scale: float) -> float:
    with torch.no_grad():
        pred = _logits(weight.double(), feats, F.normalize(classes.double(), dim=-1), scale).argmax(1)
    return float((pred.numpy() == np.asarray(labels)).mean())


def curves(post: KFACPosterior, pool: ProjectionFeatures, pool_labels, target: ProjectionFeatures, target_labels,
           val: ProjectionFeatures, val_labels, classes: torch.Tensor, scale: float, budgets: tuple[int, ...],
           cfg: OnlineConfig = OnlineConfig(), seed: int = 0,
           strategies: tuple[str, ...] = STRATEGIES) -> tuple[dict[str, Curve], dict]:
    """One seed's learning curves, ``strategy -> Curve`` (test accuracy of the fine-tuned projection after 0 and
    each of ``budgets`` labels), and what the selections saw (targeted pool size, EPIG scores, lambdas)."""
    cfg = replace(cfg, budget=max(budgets))
    labels = np.asarray(pool_labels)
    seen = target  # the targets the selection sees: at most target_max of the test inputs (theirs: 20,000)
    if target.activations.shape[0] > cfg.target_max:
        keep = torch.randperm(target.activations.shape[0], generator=torch.Generator().manual_seed(seed))
        seen = target[keep[:cfg.target_max]]
    cand = knn_pool(post, pool, seen, cfg.k_nearest)
    info = {"targeted_pool": int(len(cand)), "lambda0": float(post.prior_precision)}
    out = {}
    for strategy in strategies:
        if strategy == "random":
            chosen = np.random.default_rng(seed).permutation(len(labels))[:cfg.budget].tolist()
        elif strategy == "random-targeted":
            chosen = cand[np.random.default_rng(seed).permutation(len(cand))[:cfg.budget]].tolist()
        elif strategy == "bald":
            chosen = select_bald(post, pool, seen, classes, scale, cfg, seed)
        elif strategy in ("epig", "epig-published"):
            est = "weights" if strategy == "epig" else "published"
            chosen, scores, lambdas = select_online(post, pool, labels, seen, classes, scale, est, cfg, seed)
            info[strategy] = {"epig": scores, "lambda": lambdas}
        else:
            raise ValueError(f"unknown strategy {strategy!r}; choose from {STRATEGIES}")
        acc = [accuracy(post.weight, target, target_labels, classes, scale)]
        for b in budgets:
            idx = torch.as_tensor(chosen[:b])
            w = finetune(post.weight, pool[idx], labels[chosen[:b]], val, val_labels, classes, scale, cfg, seed)
            acc.append(accuracy(w, target, target_labels, classes, scale))
        out[strategy] = Curve(strategy, [0, *budgets], acc)
    return out, info
