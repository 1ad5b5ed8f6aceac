"""BayesVLM's published KFAC factors (AaltoML/BayesVLM ``hessians/``): read, turned into posteriors, summarised.

The authors store, per modality, ``A = sum a a' / sqrt(n)`` and ``B = sum B_i / sqrt(n)`` over ``n`` LAION-400M
pairs, with the prior precisions their script fitted at pseudo-count 1 (``prior_precision_analytic.json``). The
files hold no projection weights, but the evidence's only use of them is ``|W|^2``: the stored lambda is a
stationary point of their evidence (300 Adam steps from their script's start, 800 image / 400 text), which fixes
``|W|^2`` (``implied_weight_norm``); with it their optimiser at the notebook's pseudo-count 10 must land on the
notebook's printed lambdas, and mcdo's ``laplace`` posterior can be built beside theirs from the same factors.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import MissingData
from .kfac import Factors
from .laplace import KFACPosterior, adam_prior_precision

# what the files are (recorded/PROVENANCE.md): pairs behind the sums, projection shapes [D, P], the script's starts
PUBLISHED = {"clip-vit-b-32-laion2b": dict(pairs=327680, shape={"img": (512, 768), "txt": (512, 512)},
                                           script_init={"img": 800.0, "txt": 400.0})}
MODALITIES = {"img": "image", "txt": "text"}


@dataclass
class Published:
    """One model's published factors (as ``Factors`` sums over ``pairs``) and the authors' stored fit."""

    name: str
    factors: dict[str, Factors]
    stored: dict  # lambda_img, lambda_txt, n_img, n_txt as the authors' script wrote them
    shape: dict[str, tuple[int, int]]
    script_init: dict[str, float]


def load(folder: Path | str, name: str | None = None) -> Published:
    """The factors in ``folder`` (``A_img_analytic.pt`` ... and ``prior_precision_analytic.json``); ``name``
    (default: the folder's name) must be a model ``PUBLISHED`` describes. A missing or damaged file is named."""
    folder = Path(folder)
    name = name or folder.name
    if name not in PUBLISHED:
        raise MissingData(f"published BayesVLM factors for {name!r}", f"known: {', '.join(PUBLISHED)}")
    meta = PUBLISHED[name]
    n = meta["pairs"]
    factors = {}
    for mod, (d, p) in meta["shape"].items():
        mats = {}
        for side, size in (("A", p), ("B", d)):
            path = folder / f"{side}_{mod}_analytic.pt"
            try:
                m = torch.load(path, weights_only=True, map_location="cpu").double()
            except Exception as e:  # missing, truncated, not a tensor file
                raise MissingData(f"BayesVLM factor {path}", f"it cannot be read ({type(e).__name__}: {e})") from e
            if tuple(m.shape) != (size, size):
                raise MissingData(f"BayesVLM factor {path}", f"shape {tuple(m.shape)}, expected {(size, size)}")
            mats[side] = m * math.sqrt(n)  # back to sums over the n pairs
        factors[mod] = Factors(mats["A"], mats["B"], n)
    path = folder / "prior_precision_analytic.json"
    try:
        stored = json.loads(path.read_text())
        stored = {k: float(stored[k]) for k in ("lambda_img", "lambda_txt", "n_img", "n_txt")}
    except Exception as e:
        raise MissingData(f"BayesVLM prior precisions {path}", f"it cannot be read ({type(e).__name__}: {e})") from e
    return Published(name, factors, stored, meta["shape"], meta["script_init"])


def posterior(pub: Published, mod: str, kind: str, weight_norm2: float, multiplier: float | None = None,
              prior_precision: float = 1.0) -> KFACPosterior:
    """A posterior over one published projection: ``kind`` 'bayesvlm' or 'laplace', ``multiplier`` times the
    pairs as pseudo-count (default: the configuration's), weights of the given squared norm (the evidence's only
    use of them; spread evenly, since the published files hold none)."""
    d, p = pub.shape[mod]
    w = torch.full((d, p), math.sqrt(weight_norm2 / (d * p)), dtype=torch.float64)
    fac = pub.factors[mod]
    count = None if multiplier is None else multiplier * fac.n
    return KFACPosterior(w, fac, prior_precision, count, kind)


def implied_weight_norm(pub: Published, mod: str) -> float:
    """``|W|^2`` at which the stored lambda (pseudo-count ``n_<mod>``) is a stationary point of the authors'
    evidence: ``d/lambda - (P sum_i 1/(r alpha_i + s) + D sum_j 1/(r beta_j + s)) / s`` with ``r = sqrt(N)``,
    ``s = sqrt(lambda)``."""
    lam = pub.stored[f"lambda_{mod}"]
    post = posterior(pub, mod, "bayesvlm", 1.0, pub.stored[f"n_{mod}"], lam)
    alpha, _, beta, _ = post.eig()
    r, s = math.sqrt(post.count), math.sqrt(lam)
    P, D = alpha.numel(), beta.numel()
    return float(P * D / lam - (P * (1 / (r * alpha + s)).sum() + D * (1 / (r * beta + s)).sum()) / s)


def direction_variances(post: KFACPosterior) -> torch.Tensor:
    """The posterior variance of the embedding along each eigen-direction ``j`` of ``B``, for an input with the
    Hessian data's second moment (``E[a a'] = A / n``): ``sum_i alpha_i / p_ij``, ``[D]`` in ascending ``beta``."""
    alpha, _, _, _ = post.eig()
    return (alpha[:, None] / post.precision_eigenvalues()).sum(0)


def summary(pub: Published, multiplier: float = 10.0) -> dict:
    """Per modality: the stored fit, the implied ``|W|^2``, the authors' lambda at ``multiplier`` (their Adam from
    the notebook's 1500) and at the stored pseudo-count (from their script's start, which must give the stored
    lambda back), mcdo's ``laplace`` lambda, and both posteriors' per-direction variances with their ratio."""
    out = {}
    for mod in pub.factors:
        w2 = implied_weight_norm(pub, mod)
        own = posterior(pub, mod, "bayesvlm", w2, pub.stored[f"n_{mod}"])
        back = adam_prior_precision(own._evidence, steps=300, lr=1e-2, init=pub.script_init[mod])
        bvl = posterior(pub, mod, "bayesvlm", w2, multiplier)
        bvl.fit_prior_precision()
        lap = posterior(pub, mod, "laplace", w2)
        lap.fit_prior_precision()
        vb, vl = direction_variances(bvl), direction_variances(lap)
        ratio = vl / vb
        out[MODALITIES[mod]] = dict(
            stored_lambda=pub.stored[f"lambda_{mod}"], stored_count=pub.stored[f"n_{mod}"], weight_norm2=w2,
            lambda_refit_stored=back, lambda_bayesvlm=bvl.prior_precision, count_bayesvlm=bvl.count,
            lambda_laplace=lap.prior_precision, count_laplace=lap.count,
            variance_bayesvlm=_quantiles(vb), variance_laplace=_quantiles(vl),
            ratio={k: v for k, v in _quantiles(ratio).items() if k != "total"},
            total_ratio=float(vl.sum() / vb.sum()))
    return out


def _quantiles(v: torch.Tensor) -> dict:
    q = torch.quantile(v, torch.tensor([0.0, 0.5, 1.0], dtype=v.dtype))
    return dict(min=float(q[0]), median=float(q[1]), max=float(q[2]), total=float(v.sum()))


def table(s: dict) -> str:
    """The summary as a markdown table, one row per modality."""
    m = next(iter(s.values()))["count_bayesvlm"] / next(iter(s.values()))["count_laplace"]
    rows = [f"| projection | stored lambda (N = n) | implied abs(W)^2 | bayesvlm lambda (N = {m:g} n) | laplace lambda "
            "(N = n) | bayesvlm variance per direction (min / median / max) | laplace / bayesvlm (min / median / "
            "max; total) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for mod, r in s.items():
        vb, q = r["variance_bayesvlm"], r["ratio"]
        rows.append(f"| {mod} | {r['stored_lambda']:.3f} (refit: {r['lambda_refit_stored']:.3f}) | "
                    f"{r['weight_norm2']:.3f} | {r['lambda_bayesvlm']:.3f} | {r['lambda_laplace']:.4g} | "
                    f"{vb['min']:.3g} / {vb['median']:.3g} / {vb['max']:.3g} | {q['min']:.3g} / {q['median']:.3g} / "
                    f"{q['max']:.3g}; {r['total_ratio']:.3g} |")
    return "\n".join(rows)
