"""The reliability experiment of seed 000: K independent trials of T MC-dropout passes on the same images, and the
images it is run on.

One trial is one ``mc_sample`` call with its own seed; its per-image score is ``trace_pre`` (the trace of the
pre-normalisation covariance over the T passes). ``run_trials`` gives the ``[K, N]`` traces that
``stats.reliability`` turns into SNR, ICC(1,1) and pairwise Spearman, and, kept from the same passes, the traces
of nested prefixes (T' < T: the first T' passes, as the recorded experiment extracts them) and the first trial's
samples (for the covariance rank). The proxy tier, the gpu tier and ``mcdo sweep`` all run it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from . import scores
from .sampling import MCResult, mc_sample


@dataclass
class Trials:
    """K trials of T passes on N images."""

    traces: np.ndarray  # [K, N] trace_pre at the full T
    nested: dict[int, np.ndarray]  # T' -> [K, N] trace_pre of the first T' passes (when asked for)
    first: MCResult  # the first trial's result (its samples kept when asked for)


def prefix_trace(samples: np.ndarray, T: int) -> np.ndarray:
    """trace_pre of the first ``T`` passes of ``[N, T_all, D]`` samples: the mean over dimensions of the
    unbiased per-dimension variance across passes."""
    return samples[:, :T].astype(np.float64).var(axis=1, ddof=1).mean(axis=1)


def run_trials(tower: nn.Module, x: torch.Tensor, seeds: Sequence[int], nested_T: Sequence[int] = (),
               keep_first: bool = False, **sample_kw) -> Trials:
    """One trial per seed of ``seeds`` (``mc_sample(tower, x, seed=s, **sample_kw)``, its batches cached by the
    sampler): the traces, the traces of each nested T in ``nested_T`` from the same passes (every trial's samples
    are then kept), and the first trial's result (with its samples when ``keep_first``)."""
    traces, nested, first = [], {T: [] for T in nested_T}, None
    for i, s in enumerate(seeds):
        keep = bool(nested_T) or (keep_first and i == 0)
        r = mc_sample(tower, x, seed=s, keep_samples=keep, **sample_kw)
        traces.append(scores.trace_pre(r))
        for T in nested_T:
            nested[T].append(prefix_trace(r.samples, T))
        if first is None:
            first = r
    return Trials(np.stack(traces), {T: np.stack(v) for T, v in nested.items()}, first)


def degraded_traces(tower: nn.Module, inputs: dict[str, torch.Tensor], seed: int, **sample_kw) -> dict[str, np.ndarray]:
    """One trial's trace_pre on each degraded copy of the images (blur levels), with the same seed."""
    return {name: scores.trace_pre(mc_sample(tower, xd, seed=seed, **sample_kw)) for name, xd in inputs.items()}


def draw_images(paths: Sequence[Path], labels: np.ndarray, per_class: int, n_classes: int | None, seed: int
                ) -> tuple[list[Path], np.ndarray, str]:
    """``per_class`` images of each of ``n_classes`` classes (all when None), drawn with ``seed``; and a sentence
    saying so."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if n_classes is not None:
        classes = np.sort(rng.choice(classes, size=min(n_classes, classes.size), replace=False))
    idx = []
    for c in classes:
        members = np.flatnonzero(labels == c)
        idx += sorted(rng.choice(members, size=min(per_class, members.size), replace=False).tolist())
    return ([paths[i] for i in idx], labels[idx],
            f"{len(idx)} images from {classes.size} synsets (up to {per_class} each, drawn with seed {seed})")
