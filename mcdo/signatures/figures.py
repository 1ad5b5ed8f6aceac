"""Figures of the signatures: the privileged-direction pruning curve."""
from __future__ import annotations

from pathlib import Path

from ..io import save_figure_atomic


def pruning_curves(curves: dict[str, dict[float, float]], path: Path, title: str = "") -> Path:
    """Top-1 against the share of the head's directions kept (most important first), one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    for name, c in curves.items():
        xs = sorted(c)
        line, = ax.plot([100 * x for x in xs], [c[x] for x in xs], marker="o", ms=3, label=name)
        if 1.0 in c:  # the full head: what pruning is measured against
            ax.axhline(c[1.0], color=line.get_color(), lw=0.8, ls="--", alpha=0.7, label=f"{name}: full head")
    ax.axvline(20, color="grey", lw=0.8, ls=":", label="20% of the directions (ICL-03)")
    ax.set_ylim(0, 1)
    ax.set_xlabel("directions kept (% of the representation, by importance)")
    ax.set_ylabel("top-1")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=130)
    plt.close(fig)
    return Path(path)
