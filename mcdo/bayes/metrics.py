"""Deterministic vs Laplace zero-shot predictions: accuracy, NLL, Brier and ECE, each with the paired change and
its bootstrap interval over images. ECE uses equal-width bins; the bin counts are reported (BayesVLM: 20; 15 is
common elsewhere)."""
from __future__ import annotations

import numpy as np

from .. import stats as S

BINS = (20, 15)


def _metrics(bins: tuple[int, ...]) -> dict:
    out = {"accuracy": lambda p, y: float((p.argmax(1) == y).mean()), "nll": S.nll, "brier": S.brier}
    for b in bins:
        out[f"ece{b}"] = lambda p, y, b=b: S.ece(p, y, n_bins=b)
    return out


def compare(deterministic: np.ndarray, laplace: np.ndarray, labels: np.ndarray, bins: tuple[int, ...] = BINS,
            n_boot: int = 1000, seed: int = 0) -> dict[str, dict]:
    """Per metric: the deterministic and Laplace values, their difference (Laplace - deterministic) and its 95%
    paired bootstrap CI over images."""
    det, la, y = np.asarray(deterministic, float), np.asarray(laplace, float), np.asarray(labels)
    out = {}
    for name, fn in _metrics(bins).items():
        d, l_ = fn(det, y), fn(la, y)
        ci = S.bootstrap_ci(lambda a, b, yy: fn(b, yy) - fn(a, yy), det, la, y, axis=0, n_boot=n_boot, seed=seed)
        out[name] = dict(deterministic=d, laplace=l_, change=l_ - d, ci=ci)
    return out


def table(rows: dict[str, dict[str, dict]]) -> str:
    """A markdown table of several comparisons (row label -> ``compare`` output)."""
    names = list(next(iter(rows.values())))
    head = "| " + " | ".join(["", *(f"{n} det -> Laplace [CI of change]" for n in names)]) + " |"
    lines = [head, "|" + " --- |" * (len(names) + 1)]
    for label, res in rows.items():
        cells = [f"{m['deterministic']:.4f} -> {m['laplace']:.4f} [{m['ci'][0]:+.4f}, {m['ci'][1]:+.4f}]"
                 for m in res.values()]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines)
