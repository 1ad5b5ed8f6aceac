"""Figures for the report (PNG under reports/figures/), drawn from the records and the data behind them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import MissingResource
from .verify.engine import Context
from .verify.records import Record


def _reliability_curves(trials: list) -> tuple[list, list, list]:
    """SNR, ICC(1,1) and median pairwise Spearman of each ``[K, N]`` trial array, in order."""
    from . import stats as S

    return ([S.snr(x) for x in trials], [S.icc(x) for x in trials],
            [S.pairwise_spearman(x).median for x in trials])


def _gate_axes(axes) -> None:
    """SNR / ICC / Spearman panels against T, each with its gate threshold dotted."""
    from . import stats as S

    for ax, (name, thr) in zip(axes, (("SNR", S.GATE_SNR), ("ICC(1,1)", S.GATE_ICC),
                                      ("pairwise Spearman", S.GATE_SPEARMAN))):
        ax.axhline(thr, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("MC passes T")
        ax.set_title(name)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7)


def _save(fig, path: Path, caption: str) -> tuple[str, str]:
    """Write a figure and free it; (caption, file name) for the report."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return caption, path.name


def _reliability_vs_T(out: Path) -> tuple[str, str] | None:
    """SNR, ICC and Spearman against T for every recorded model with readable trial files, and the 1/T law's
    SNR predicted from the second-largest T; a model whose files cannot be read is named in the title."""
    from .data import recorded as R
    from .verify.mcd.recorded import predicted_snr

    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    drawn, left_out, shape = [], [], ""
    for model, colour in zip(R.models(), plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4):
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
        for ax, vals in zip(axes, _reliability_curves(trials)):
            ax.plot(ts, vals, "o-", color=colour, label=f"{model} (recorded)" if ax is axes[0] else None)
        if len(ts) >= 2:
            grid = np.geomspace(min(ts), 8 * max(ts), 40)
            pred = [predicted_snr(trials[-2], ts[-2], t) for t in grid]
            axes[0].plot(grid, pred, "--", color=colour, alpha=0.6, label=f"{model}: 1/T law from T={ts[-2]}")
    if not drawn:
        plt.close(fig)
        if left_out:
            raise ValueError(f"no recorded trial file could be read ({', '.join(left_out)})")
        return None
    _gate_axes(axes)
    fig.suptitle(f"Reliability of trace_pre against T (recorded, {shape}); dotted = gate"
                 + (f"; unreadable, left out: {', '.join(left_out)}" if left_out else ""), fontsize=9)
    return _save(fig, out / "reliability_vs_T_recorded.png", "Reliability against T, recorded models: "
                 + ", ".join(drawn))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _proxy_reliability(out: Path, ctx: Context) -> tuple[str, str] | None:
    """SNR, ICC and Spearman against T for every proxy model and seed."""
    measures = ctx.memo.get("proxy/measures")
    if not measures:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    colours = {"softmax": "tab:blue", "sigmoid": "tab:orange"}
    for (loss, seed), m in sorted(measures.items()):
        ts = sorted(m.trials)
        for ax, vals in zip(axes, _reliability_curves([m.trials[t] for t in ts])):
            ax.plot(ts, vals, "o-", color=colours[loss], alpha=0.8, label=f"{loss} seed {seed}" if ax is axes[0] else None)
    _gate_axes(axes)
    fig.suptitle("Proxy pair: reliability of trace_pre against T (blue softmax, orange sigmoid); dotted = gate")
    return _save(fig, out / "reliability_vs_T_proxy.png", "Reliability against T, proxy pair (3 seeds per loss)")


def _proxy_blur(out: Path, ctx: Context) -> tuple[str, str] | None:
    """Per-image relative change of trace_pre under light and heavy blur, softmax vs sigmoid."""
    import numpy as np

    measures = ctx.memo.get("proxy/measures")
    if not measures:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, which in zip(axes, ("light", "heavy")):
        for loss, colour in (("softmax", "tab:blue"), ("sigmoid", "tab:orange")):
            rel = np.concatenate([m.blurred[which] / m.uncertainty - 1 for (l_, _), m in measures.items() if l_ == loss])
            ax.hist(np.clip(rel, -1, 2), bins=60, alpha=0.55, color=colour, density=True,
                    label=f"{loss}: {np.mean(rel > 0):.0%} up, median {np.median(rel):+.0%}")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(f"{which} blur")
        ax.set_xlabel("relative change of trace_pre (blurred / clean - 1)")
        ax.legend(fontsize=7)
    fig.suptitle("Proxy pair: blur-induced change in MC-dropout uncertainty (all seeds pooled)")
    return _save(fig, out / "blur_change_proxy.png", "Blur-induced change in uncertainty, proxy pair")


def _ood_scores(out: Path, ctx: Context) -> tuple[str, str] | None:
    """Score distributions, ID against each OOD set, softmax vs sigmoid MCM, for every OOD pass of the run."""
    from .oodbench import from_cosines

    results = []
    t = ctx.memo.get("ood/proxy-sigmoid/0")
    if t:
        results.append(("proxy-sigmoid seed 0", from_cosines("proxy", t["cos_id"], t["sets"], t["scale"], t["bias"])))
    results += [(key.split("/", 1)[1], res) for key, res in sorted(ctx.memo.items()) if key.startswith("ood-gpu/")]
    if not results:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(results), 2, figsize=(10, 3.2 * len(results)), squeeze=False)
    for row, (name, res) in zip(axes, results):
        table = res.table()
        for ax, sc in zip(row, ("softmax", "sigmoid")):
            if sc not in res.id_scores:
                ax.set_axis_off()
                ax.set_title(f"{name}: no logit_bias, no sigmoid MCM")
                continue
            everything = np.concatenate([res.id_scores[sc], *res.ood_scores[sc].values()])
            bins = np.linspace(everything.min(), everything.max(), 50)
            ax.hist(res.id_scores[sc], bins=bins, density=True, color="k", alpha=0.35, label="in distribution")
            for set_name, s in res.ood_scores[sc].items():
                ax.hist(s, bins=bins, density=True, histtype="step", lw=1.3,
                        label=f"{set_name}: AUROC {table[sc][set_name]['auroc']:.3f}")
            ax.set_title(f"{name}: {sc} MCM (mean AUROC {table[sc]['mean']['auroc']:.3f})", fontsize=9)
            ax.set_xlabel(f"{sc} MCM score")
            ax.legend(fontsize=7)
    fig.suptitle("OOD scores: in-distribution against each OOD set (higher = more in distribution)")
    return _save(fig, out / "ood_scores.png", "OOD score distributions, softmax vs sigmoid MCM")


def _bayes(out: Path, ctx: Context) -> tuple[str, str] | None:
    """Reliability diagram of the proxy-softmax seed-0 calibration (deterministic vs Laplace) of this run."""
    from .bayes.figures import reliability_diagram

    cal = ctx.memo.get("bvl/proxy/softmax/0/train")
    if cal is None:
        return None
    reliability_diagram(cal.prediction.deterministic.numpy(), cal.prediction.probs.numpy(), cal.labels,
                        out / "bayes_reliability_proxy.png", title="proxy-softmax seed 0: deterministic vs Laplace")
    return "BayesVLM on the proxy: reliability diagram (BVL-03)", "bayes_reliability_proxy.png"


def _active_learning(out: Path, ctx: Context) -> tuple[str, str] | None:
    """Learning curves of BALD, EPIG and random selection on both proxies (BVL-06)."""
    from .bayes.figures import learning_curves

    curves = {f"proxy-{loss}": ctx.memo[f"bvl/al/{loss}"] for loss in ("softmax", "sigmoid")
              if f"bvl/al/{loss}" in ctx.memo}
    if not curves:
        return None
    learning_curves(curves, out / "active_learning_proxy.png", title="Active learning on the proxies (BVL-06)")
    return "Active learning curves, proxy pair (BVL-06)", "active_learning_proxy.png"


def _pruning(out: Path, ctx: Context) -> tuple[str, str] | None:
    """The zero-shot proxies' pruning curves over the 96-class head (ICL-03)."""
    from .signatures.figures import pruning_curves

    curves = {p["zero-shot"].model: p["zero-shot"].accuracy for k, p in sorted(ctx.memo.items())
              if k.startswith("icl/proxy/")}
    if not curves:
        return None
    pruning_curves(curves, out / "pruning_proxy.png", title="Privileged directions on the proxies (ICL-03)")
    return "Pruning curve of the zero-shot head, proxies (ICL-03)", "pruning_proxy.png"


def _probes(out: Path, ctx: Context) -> tuple[str, str] | None:
    """Per-fold probe accuracy of both proxies' frozen features, seed 0 (PRB-04)."""
    from .probe.pipeline import bar_chart

    comp = ctx.memo.get("prb/proxy/0")
    if comp is None:
        return None
    bar_chart(comp, out / "probe_proxy.png")
    return "Frozen-feature probes on the proxies, seed 0 (PRB-04)", "probe_proxy.png"


def make_figures(records: list[Record], ctx: Context | None, report_dir: Path
                 ) -> tuple[list[tuple[str, str]], list[str]]:
    """Every figure whose inputs are available, and a note for each that could not be drawn (with why): a figure
    never costs the records of a run. A figure whose inputs are absent (no recorded folder, no proxy pass in this
    run) is left out silently."""
    out = report_dir / "figures"
    out.mkdir(parents=True, exist_ok=True)
    figures, notes = [], []
    for name in ("_reliability_vs_T", "_proxy_reliability", "_proxy_blur", "_ood_scores", "_bayes", "_active_learning",
                 "_pruning", "_probes"):
        maker = globals()[name]
        if ctx is None and name != "_reliability_vs_T":
            continue
        try:
            fig = maker(out) if name == "_reliability_vs_T" else maker(out, ctx)
        except MissingResource:
            continue
        except Exception as e:  # a damaged input or a plotting bug: say so in the report, keep going
            notes.append(f"figure not drawn: {name.strip('_').replace('_', ' ')}: {type(e).__name__}: {e}")
            continue
        if fig:
            figures.append((fig[0], str(Path("figures") / fig[1])))
    return figures, notes
