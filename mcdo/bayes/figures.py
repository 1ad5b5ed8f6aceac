"""Figures of BayesVLM results: the reliability diagram (deterministic vs Laplace) and active-learning curves."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import save_figure_atomic


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = 20) -> dict[str, np.ndarray]:
    """Per equal-width confidence bin: mean confidence, accuracy and count (the bins of ``stats.ece``)."""
    conf, correct = probs.max(1), (probs.argmax(1) == labels).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        return dict(confidence=np.bincount(idx, conf, n_bins) / count, accuracy=np.bincount(idx, correct, n_bins) / count,
                    count=count, edges=edges)


def reliability_diagram(deterministic: np.ndarray, laplace: np.ndarray, labels: np.ndarray, path: Path,
                        n_bins: int = 20, title: str = "") -> Path:
    from ..stats import ece

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for ax, (name, p) in zip(axes, (("deterministic", deterministic), ("Laplace (probit)", laplace))):
        b = reliability_bins(p, labels, n_bins)
        centres = (b["edges"][:-1] + b["edges"][1:]) / 2
        ok = b["count"] > 0
        ax.bar(centres[ok], b["accuracy"][ok], width=1 / n_bins, alpha=0.6, edgecolor="k", label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.plot(b["confidence"][ok], b["accuracy"][ok], "o", ms=3, color="tab:red", label="(confidence, accuracy)")
        ax.set_title(f"{name}: ECE{n_bins} {ece(p, labels, n_bins):.4f}")
        ax.set_xlabel("confidence (top-1 probability)")
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("accuracy")
    fig.suptitle(title or "reliability diagram")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)
    return path


def learning_curves(curves: dict[str, dict[str, list]], path: Path, title: str = "") -> Path:
    """Mean test accuracy against labels per strategy, one panel per model (``model -> strategy -> [seed curves]``)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.6), squeeze=False)
    for ax, (model, per) in zip(axes[0], curves.items()):
        for strategy, runs in per.items():
            acc = np.array([r.accuracy for r in runs])
            x = runs[0].labels
            line, = ax.plot(x, acc.mean(0), "o-", ms=3, label=f"{strategy}: mean of {len(runs)} seeds")
            ax.fill_between(x, acc.min(0), acc.max(0), alpha=0.15, color=line.get_color(),
                            label=f"{strategy}: band from the lowest to the highest seed")
        ax.set_title(model)
        ax.set_xlabel("labels acquired")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=7)
    fig.suptitle(title or "active learning")
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)
    plt.close(fig)
    return path
