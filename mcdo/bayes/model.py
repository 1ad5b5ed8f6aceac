"""BayesVLM on any registered encoder: fit the two projection posteriors from image-caption pairs, predict.

    feats = collect(encoder, "image", image_batches), collect(encoder, "text", token_batches)
    bvlm = BayesVLM.fit(encoder, *feats)                    # KFAC factors + marginal-likelihood prior
    pred = bvlm.predict(collect(...eval images...), collect(...class prompts...))
    pred.probs, pred.deterministic                           # Laplace (probit) vs deterministic softmax

The encoders stay deterministic; each modality's projection gets its own Gaussian posterior, whose Hessian uses the
other modality's embeddings of the same batch as the classes (``mcdo.bayes.kfac``). Factors are what is slow to
estimate; ``factors_cached`` keeps them per (model weights, Hessian data, settings), so refitting the prior or
re-evaluating takes seconds.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

from ..models.heads import ProjectionFeatures, projection_features, projection_weight
from ..io import keep_cache, read_cache, torch_save_atomic
from . import kfac
from .laplace import KFACPosterior
from .probcosine import cosine_moments_eigen, logit_moments, probit_probs

FACTORS_VERSION = 1  # bump when what the factors hold changes


def collect(encoder, modality: str, batches: Iterable, progress: bool = False, desc: str = "") -> ProjectionFeatures:
    """Projection features of every batch (images, or token tensors) concatenated."""
    from tqdm.auto import tqdm

    parts = [projection_features(encoder, modality, b) for b in tqdm(batches, desc=desc or f"{modality} features",
                                                                      disable=not progress, leave=False)]
    if not parts:
        raise ValueError(f"no {modality} batches to compute features from")
    return ProjectionFeatures(*(torch.cat([getattr(p, f) for p in parts]) for f in
                                ("activations", "embeddings", "residual")))


def text_batches(encoder, texts: list[str], batch_size: int = 256) -> Iterable:
    tok = encoder.tokenizer
    return (tok(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size))


@dataclass
class Prediction:
    """Zero-shot predictions ``[N, C]``: logit mean and variance under the posterior, Laplace (probit)
    probabilities, and the deterministic model's softmax."""

    logit_mean: torch.Tensor
    logit_var: torch.Tensor
    probs: torch.Tensor
    deterministic: torch.Tensor


@dataclass
class BayesVLM:
    image: KFACPosterior
    text: KFACPosterior
    scale: float
    bias: float | None
    likelihood: str
    config: dict = field(default_factory=dict)

    @classmethod
    def from_factors(cls, encoder, image: kfac.Factors, text: kfac.Factors, prior_precision: str | float = "marglik",
                     pseudo_count: float | None = None, config: dict | None = None, posterior: str = "bayesvlm",
                     multiplier: float | None = None) -> "BayesVLM":
        """Posteriors from the factors in the configuration ``posterior`` (``laplace.POSTERIORS``: the authors'
        'bayesvlm' or mcdo's exact-prior 'laplace'); ``prior_precision="marglik"`` fits each modality's by the
        configuration's evidence and optimiser, a number sets both; ``multiplier`` / ``pseudo_count`` override
        ``N`` (a multiple of the pairs / a number of pairs)."""
        posts = []
        for modality, fac in (("image", image), ("text", text)):
            w, _ = projection_weight(encoder, modality)
            post = KFACPosterior(w.double().cpu(), fac, 1.0, pseudo_count, posterior, multiplier)
            if prior_precision == "marglik":
                post.fit_prior_precision()
            elif isinstance(prior_precision, (int, float)) and prior_precision > 0:
                post.prior_precision = float(prior_precision)
            else:
                raise ValueError(f"prior_precision must be 'marglik' or a positive number, got {prior_precision!r}")
            posts.append(post)
        return cls(posts[0], posts[1], encoder.logit_scale, encoder.logit_bias,
                   kfac.likelihood_of(encoder.spec.loss),
                   dict(config or {}, posterior=posterior, N_image=posts[0].count, N_text=posts[1].count,
                        multiplier=posts[0].count / image.n, probit_bias=posts[0].config.probit_bias))

    @classmethod
    def fit(cls, encoder, image: ProjectionFeatures, text: ProjectionFeatures, class_batch: int | None = None,
            prior_precision: str | float = "marglik", pseudo_count: float | None = None,
            posterior: str = "bayesvlm") -> "BayesVLM":
        """Factors from image-caption pairs (row i of ``image`` and ``text`` is one pair), then the posteriors."""
        img, txt = factors(encoder, image, text, class_batch)
        return cls.from_factors(encoder, img, txt, prior_precision, pseudo_count,
                                dict(class_batch=class_batch, n_pairs=img.n), posterior)

    def predict(self, image: ProjectionFeatures, classes: ProjectionFeatures, covariance: str | None = None) -> Prediction:
        """ProbCosine logits of each image against each class prompt, the probit probabilities and the
        deterministic softmax of the same embeddings."""
        qx, cx = self.image.embedding_covariance(image.activations)
        qy, cy = self.text.embedding_covariance(classes.activations)
        mx, my = image.embeddings.double(), classes.embeddings.double()
        cmean, cvar = cosine_moments_eigen(mx, qx, cx, my, qy, cy, covariance or self.image.config.covariance)
        lmean, lvar = logit_moments(cmean, cvar, self.scale, self.bias if self.image.config.probit_bias else None)
        det = self.scale * torch.nn.functional.normalize(mx, dim=-1) @ torch.nn.functional.normalize(my, dim=-1).T
        return Prediction(lmean, lvar, probit_probs(lmean, lvar), torch.softmax(det, dim=-1))

    def predict_mc(self, image: ProjectionFeatures, classes: ProjectionFeatures, samples: int = 200,
                   seed: int = 0) -> torch.Tensor:
        """The Monte Carlo reference: the softmax averaged over projection weights drawn from both posteriors."""
        g = torch.Generator().manual_seed(seed)
        out = 0.0
        for _ in range(samples):
            wi, wt = self.image.sample(1, g)[0], self.text.sample(1, g)[0]
            x = image.activations.double() @ wi.T + image.residual.double()
            y = classes.activations.double() @ wt.T + classes.residual.double()
            logits = self.scale * torch.nn.functional.normalize(x, dim=-1) @ torch.nn.functional.normalize(y, dim=-1).T
            out = out + torch.softmax(logits, dim=-1)
        return out / samples


def factors(encoder, image: ProjectionFeatures, text: ProjectionFeatures,
            class_batch: int | None = None) -> tuple[kfac.Factors, kfac.Factors]:
    """KFAC factors of the image projection (captions as classes) and of the text projection (images as classes)."""
    if image.activations.shape[0] != text.activations.shape[0]:
        raise ValueError(f"the Hessian data must be pairs: {image.activations.shape[0]} images vs "
                         f"{text.activations.shape[0]} captions")
    lik = kfac.likelihood_of(encoder.spec.loss)
    kw = dict(likelihood=lik, scale=encoder.logit_scale, bias=encoder.logit_bias, class_batch=class_batch)
    return (kfac.kfac_factors(image.activations, image.embeddings, text.embeddings, **kw),
            kfac.kfac_factors(text.activations, text.embeddings, image.embeddings, **kw))


def factors_cached(encoder, data_key: str, compute: Callable[[], tuple[kfac.Factors, kfac.Factors]],
                   class_batch: int | None = None, cache_dir: Path | None = None) -> tuple[kfac.Factors, kfac.Factors]:
    """The factors for (these weights, this Hessian data, these settings), from the cache or computed and stored
    atomically. ``data_key`` names the Hessian data (a world's seed and size, a folder and its file list hash)."""
    from .. import env
    from ..sampling import weights_fingerprint

    key = json.dumps(dict(model=encoder.spec.name, backend=encoder.backend, weights=weights_fingerprint(encoder.model),
                          data=data_key, class_batch=class_batch, version=FACTORS_VERSION), sort_keys=True)
    folder = Path(cache_dir) if cache_dir else env.cache_dir() / "bayes"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{encoder.spec.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
    def load(p: Path):
        d = torch.load(p, weights_only=True)
        if d.get("key") != key:
            raise KeyError("the file holds factors for another key (a hash collision or an edited file)")
        return (kfac.Factors(d["A_img"], d["B_img"], int(d["n_img"])),
                kfac.Factors(d["A_txt"], d["B_txt"], int(d["n_txt"])))

    cached = read_cache(path, load, "cached Laplace factors")
    if cached is not None:
        return cached
    img, txt = compute()
    keep_cache(torch_save_atomic, path, dict(key=key, A_img=img.A, B_img=img.B, n_img=img.n, A_txt=txt.A,
                                             B_txt=txt.B, n_txt=txt.n))
    return img, txt
