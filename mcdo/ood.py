"""Out-of-distribution scores from zero-shot logits (Maximum Concept Matching and baselines).

Inputs are cosine similarities ``cos [N, K]`` between image and class-text embeddings, the model's
``scale`` (exp of logit_scale) and, for SigLIP, its ``bias``. Every score is higher for
in-distribution images.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit, logsumexp, softmax

OOD_SCORES = ("softmax", "sigmoid", "energy", "max_logit")


def softmax_mcm(cos: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """MCM (Ming et al. 2022): max softmax of cosine / temperature (the paper's temperature is 1)."""
    return softmax(np.asarray(cos, dtype=np.float64) / temperature, axis=1).max(axis=1)


def sigmoid_mcm(cos: np.ndarray, scale: float, bias: float) -> np.ndarray:
    """Max over classes of sigmoid(scale * cos + bias): keeps SigLIP's learned bias (softmax erases it)."""
    return expit(scale * np.asarray(cos, dtype=np.float64) + bias).max(axis=1)


def energy(cos: np.ndarray, scale: float, bias: float = 0.0) -> np.ndarray:
    """Negative free energy logsumexp(logits) (Liu et al. 2020); the bias shifts it by a constant."""
    return logsumexp(scale * np.asarray(cos, dtype=np.float64) + bias, axis=1)


def max_logit(cos: np.ndarray, scale: float, bias: float = 0.0) -> np.ndarray:
    return (scale * np.asarray(cos, dtype=np.float64) + bias).max(axis=1)


def ood_score(name: str, cos: np.ndarray, scale: float, bias: float | None, temperature: float = 1.0) -> np.ndarray:
    """A score by name; ``sigmoid`` needs a bias (a softmax-trained model has none)."""
    if name == "softmax":
        return softmax_mcm(cos, temperature)
    if name == "sigmoid":
        if bias is None:
            raise ValueError("sigmoid MCM needs the model's logit_bias; this model has none (use softmax)")
        return sigmoid_mcm(cos, scale, bias)
    if name == "energy":
        return energy(cos, scale, bias or 0.0)
    if name == "max_logit":
        return max_logit(cos, scale, bias or 0.0)
    raise ValueError(f"unknown OOD score {name!r}; choose from {OOD_SCORES}")
