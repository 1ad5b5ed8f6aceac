"""Figures for the report (PNG under reports/figures/), drawn from the records and the data behind them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import MissingResource
from .verify.engine import Context
from .verify.records import Record


def _reliability_vs_T(out: Path) -> tuple[str, str] | None:
    from . import stats as S
    from .data import recorded as R

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for model, colour in zip(R.MODELS, ("tab:blue", "tab:orange")):
        ts = np.array(R.NESTED_T)
        trials = [R.nested_trials(model, T).pre for T in ts]
        figs = {"SNR": [S.snr(x) for x in trials], "ICC(1,1)": [S.icc(x) for x in trials],
                "pairwise Spearman": [S.pairwise_spearman(x).median for x in trials]}
        for ax, (name, vals) in zip(axes, figs.items()):
            ax.plot(ts, vals, "o-", color=colour, label=f"{model} (recorded)")
        # 1/T prediction from T=16
        from .verify.recorded_claims import predicted_snr

        grid = np.geomspace(4, 512, 40)
        pred = [predicted_snr(trials[1], 16, int(t)) if t >= 2 else np.nan for t in grid]
        axes[0].plot(grid, pred, "--", color=colour, alpha=0.6, label=f"{model}: 1/T law from T=16")
    for ax, (name, thr) in zip(axes, (("SNR", S.GATE_SNR), ("ICC(1,1)", S.GATE_ICC), ("pairwise Spearman", S.GATE_SPEARMAN))):
        ax.axhline(thr, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("MC passes T")
        ax.set_title(name)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle("Reliability of trace_pre against T (recorded, 10 trials x 500 ImageNet images); dotted = gate")
    fig.tight_layout()
    path = out / "reliability_vs_T_recorded.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return "Reliability against T, recorded CLIP B/32 and SigLIP2 B/16", str(path.relative_to(out.parent))


def make_figures(records: list[Record], ctx: Context, report_dir: Path) -> list[tuple[str, str]]:
    """Every figure whose inputs are available; a figure with missing inputs is left out."""
    out = report_dir / "figures"
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    for maker in (_reliability_vs_T,):
        try:
            fig = maker(out)
        except MissingResource:
            continue
        if fig:
            figures.append((fig[0], str(Path("figures") / Path(fig[1]).name)))
    return figures
