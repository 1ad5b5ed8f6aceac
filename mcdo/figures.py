"""Plotting shared by the report and the tools: one colour per loss family, markers within it, the gate lines'
legend entry, atomic PNG writes, and the recorded tier's reliability figure (drawn from the recorded folder alone).
Imports nothing of ``verify/``: the report's figure assembly is ``verify/report_figures.py``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import MissingResource
from .io import save_figure_atomic


# one colour per loss family in every figure (report and tools): CLIP-loss models blue, SigLIP-loss orange; models of
# the same family are told apart by marker and line style
FAMILY_COLOURS = {"softmax": "tab:blue", "sigmoid": "tab:orange"}
OTHER_COLOUR = "tab:grey"
STYLES = (("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", (0, (5, 1))))


def loss_of(model: str) -> str | None:
    """'softmax' or 'sigmoid' for a model name (``model_specs.loss_family``, the one source)."""
    from .model_specs import loss_family

    return loss_family(model)


def family_colour(model_or_loss: str) -> str:
    """The figure colour of a model (or a loss): its loss family's, grey when unknown."""
    loss = model_or_loss if model_or_loss in FAMILY_COLOURS else loss_of(model_or_loss)
    return FAMILY_COLOURS.get(loss, OTHER_COLOUR)


def styled(names) -> dict[str, dict]:
    """Plot keywords per name: its family's colour, and a marker / line style of its own within the family."""
    seen: dict[str, int] = {}
    out = {}
    for name in names:
        colour = family_colour(name)
        k = seen.get(colour, 0)
        seen[colour] = k + 1
        marker, ls = STYLES[k % len(STYLES)]
        out[name] = dict(color=colour, marker=marker, ls=ls)
    return out


def gate_handle():
    """A legend entry for the dotted gate lines."""
    from matplotlib.lines import Line2D

    return Line2D([], [], color="grey", lw=0.8, ls=":", label="gate threshold")


def reliability_curves(trials: list) -> tuple[list, list, list]:
    """SNR, ICC(1,1) and median pairwise Spearman of each ``[K, N]`` trial array, in order."""
    from . import stats as S

    return ([S.snr(x) for x in trials], [S.icc(x) for x in trials],
            [S.pairwise_spearman(x).median for x in trials])


def gate_axes(axes) -> None:
    """SNR / ICC / Spearman panels against T, each with its gate threshold dotted."""
    from . import stats as S

    for ax, (name, thr) in zip(axes, (("SNR", S.GATE_SNR), ("ICC(1,1)", S.GATE_ICC),
                                      ("pairwise Spearman", S.GATE_SPEARMAN))):
        ax.axhline(thr, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("MC passes T")
        ax.set_title(name)
    axes[0].set_yscale("log")
    handles, _ = axes[0].get_legend_handles_labels()
    axes[0].legend(handles=[*handles, gate_handle()], fontsize=7)


def save(fig, path: Path, caption: str) -> tuple[str, str]:
    """Write a figure and free it; (caption, file name) for the report."""
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=110)
    pyplot().close(fig)
    return caption, path.name


def reliability_vs_T(out: Path) -> tuple[str, str] | None:
    """SNR, ICC and Spearman against T for every recorded model with readable trial files, and the 1/T law's
    SNR predicted from the second-largest T; a model whose files cannot be read is named in the title."""
    from . import stats as S
    from .data import recorded as R

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    drawn, left_out, shape = [], [], ""
    style = styled(R.models())
    for model in R.models():
        colour = style[model]["color"]
        ts, trials = [], []
        for T in R.available_T(model):  # each readable file of the model; an unreadable one is named
            try:
                trials.append(R.nested_trials(model, T).pre)
                ts.append(T)
            except MissingResource:
                left_out.append(f"{model} T={T}")
        if not ts:
            continue
        drawn.append(model)
        shape = f"{trials[-1].shape[0]} trials x {trials[-1].shape[1]} images"
        for ax, vals in zip(axes, reliability_curves(trials)):
            ax.plot(ts, vals, color=colour, marker=style[model]["marker"], ls=style[model]["ls"],
                    label=f"{model} (recorded)" if ax is axes[0] else None)
        if len(ts) >= 2:
            grid = np.geomspace(min(ts), 8 * max(ts), 40)
            pred = [S.predicted_snr(S.snr(trials[-2]), ts[-2], trials[-2].shape[0], t) for t in grid]
            axes[0].plot(grid, pred, color=colour, lw=0.8, alpha=0.6,
                         label=f"{model}: SNR by the 1/T law from T={ts[-2]}")
    if not drawn:
        plt.close(fig)
        if left_out:
            raise ValueError(f"no recorded trial file could be read ({', '.join(left_out)})")
        return None
    gate_axes(axes)
    fig.suptitle(f"Reliability of trace_pre against T (recorded, {shape}); blue CLIP loss, orange SigLIP loss"
                 + (f"; unreadable, left out: {', '.join(left_out)}" if left_out else ""), fontsize=9)
    return save(fig, out / "reliability_vs_T_recorded.png", "Reliability against T, recorded models: "
                 + ", ".join(drawn))


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
