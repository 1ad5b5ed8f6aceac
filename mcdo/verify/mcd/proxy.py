"""Claims on the matched proxy pair (tier ``proxy``): the same engine as the real models."""
from __future__ import annotations

import numpy as np
from scipy import stats as sst

from ... import stats as S
from ...data import world
from ..engine import Context, draws, evaluates
from ..proxy_measure import SETTINGS, all_measures, measured
from ..records import NOT_REPRODUCED, REPRODUCED, Record, decide
from ..builders import blur_record, rho, erank_record, error_auroc_record, gate_record, proxy_name, rho_record
from pathlib import Path
from ... import figures

TIER = "proxy"


@evaluates("MCD-07", TIER)
def mcd07(ctx: Context) -> list[Record]:
    return [gate_record("MCD-07", TIER, proxy_name(m), m.trials[SETTINGS["T"]], m.loss, ctx, dict(m.config))
            for m in all_measures(ctx).values()]


@evaluates("MCD-08", TIER)
def mcd08(ctx: Context) -> list[Record]:
    return [rho_record(ctx, "MCD-08", m, m.entropy, "zero-shot entropy")
            for m in all_measures(ctx).values() if m.loss == "softmax"]


@evaluates("MCD-09", TIER)
def mcd09(ctx: Context) -> list[Record]:
    return [rho_record(ctx, "MCD-09", m, m.entropy, "zero-shot entropy")
            for m in all_measures(ctx).values() if m.loss == "sigmoid"]


@evaluates("MCD-10", TIER)
def mcd10(ctx: Context) -> list[Record]:
    return [rho_record(ctx, "MCD-10", m, m.centroid_distance, "centroid distance")
            for m in all_measures(ctx).values() if m.loss == "sigmoid"]


@evaluates("MCD-11", TIER)
def mcd11(ctx: Context) -> list[Record]:
    return [blur_record("MCD-11", m, "light", "increased") for m in all_measures(ctx).values() if m.loss == "softmax"]


@evaluates("MCD-12", TIER)
def mcd12(ctx: Context) -> list[Record]:
    return [blur_record("MCD-12", m, "heavy", "decreased") for m in all_measures(ctx).values() if m.loss == "sigmoid"]


def _per_seed(ctx) -> list[tuple]:
    ms = all_measures(ctx)
    return [(ms[("softmax", s)], ms[("sigmoid", s)]) for s in SETTINGS["seeds"]]


@evaluates("MCD-13", TIER)
def mcd13(ctx: Context) -> list[Record]:
    """Effective rank of the per-image dropout covariance: softmax model above sigmoid model."""
    out, diffs = [], []
    for soft, sig in _per_seed(ctx):
        rec = erank_record(ctx, soft, sig, TIER, f"proxy pair seed {soft.seed}", "softmax", "sigmoid")
        diffs.append(rec.measured)
        out.append(rec)
    out.append(_pooled("MCD-13", "erank_gap", diffs, "erank difference", "erank(softmax) - erank(sigmoid)"))
    return out


def _pooled(claim_id: str, figure: str, diffs: list[float], what: str, expected: str) -> Record:
    """Across seeds: mean difference, t interval with K-1 df, one-sample t-test against 0, judged by the
    registry's direction for ``figure``."""
    d = np.asarray(diffs)
    t = sst.ttest_1samp(d, 0.0)
    half = sst.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    ci = (float(d.mean() - half), float(d.mean() + half))
    dec = decide(claim_id, figure, ci, TIER)
    return Record(claim_id, TIER, f"proxy pair, {d.size} seeds pooled", dec.verdict, float(d.mean()),
                  ci, expected=f"{expected} {dec.expected}",
                  reason=f"{what} per seed {np.round(d, 3).tolist()}; mean {d.mean():.3f}, t-interval over seeds "
                         f"[{ci[0]:.3f}, {ci[1]:.3f}], t-test p = {t.pvalue:.2g} ({int(np.sum(d > 0))}/{d.size} seeds > 0)",
                  config=dict(seeds=list(SETTINGS["seeds"]), **{k: SETTINGS[k] for k in ("p", "T", "trials")}))


@evaluates("MCD-17", TIER)
def mcd17(ctx: Context) -> list[Record]:
    """The loss as cause: sigmoid's dropout variance more reliable (ICC) and less tied to entropy."""
    out, d_icc, d_rho = [], [], []
    T = SETTINGS["T"]
    for soft, sig in _per_seed(ctx):
        both = np.concatenate([soft.trials[T], sig.trials[T]])
        k = soft.trials[T].shape[0]

        def icc_gap(x):
            return S.icc(x[k:]) - S.icc(x[:k])

        g = icc_gap(both)
        ci_g = S.bootstrap_ci(icc_gap, both, axis=1, n_boot=ctx.n_boot, seed=ctx.seed)
        pair = np.stack([soft.uncertainty, soft.entropy, sig.uncertainty, sig.entropy])

        def rho_gap(x):
            return rho(x[0], x[1]) - rho(x[2], x[3])

        r = rho_gap(pair)
        ci_r = S.bootstrap_ci(rho_gap, pair, axis=1, n_boot=ctx.n_boot, seed=ctx.seed)
        v_g, v_r = decide("MCD-17", "icc_gap", ci_g, TIER).verdict, decide("MCD-17", "rho_gap", ci_r, TIER).verdict
        verdict = REPRODUCED if v_g == v_r == REPRODUCED else (NOT_REPRODUCED if NOT_REPRODUCED in (v_g, v_r)
                                                                else "inconclusive")
        d_icc.append(g)
        d_rho.append(r)
        out.append(Record("MCD-17", TIER, f"proxy pair seed {soft.seed}", verdict, g, ci_g,
                          expected="ICC(sigmoid) - ICC(softmax) > 0 and rho_entropy(softmax) - rho_entropy(sigmoid) > 0",
                          reason=f"ICC softmax {S.icc(soft.trials[T]):.3f} vs sigmoid {S.icc(sig.trials[T]):.3f}: gap "
                                 f"{g:+.3f} [{ci_g[0]:+.3f}, {ci_g[1]:+.3f}] ({v_g}); rho(trace, entropy) gap softmax - "
                                 f"sigmoid {r:+.3f} [{ci_r[0]:+.3f}, {ci_r[1]:+.3f}] ({v_r})",
                          config=dict(soft.config, model="proxy pair"), details={"rho_gap": r, "rho_gap_ci": ci_r}))
    pi = _pooled("MCD-17", "icc_gap", d_icc, "ICC gap (sigmoid - softmax)", "ICC gap")
    pr = _pooled("MCD-17", "rho_gap", d_rho, "entropy-rho gap (softmax - sigmoid)", "entropy-rho gap")
    verdict = REPRODUCED if pi.verdict == pr.verdict == REPRODUCED else (
        NOT_REPRODUCED if NOT_REPRODUCED in (pi.verdict, pr.verdict) else "inconclusive")
    pi.verdict = verdict
    pi.reason = pi.reason + " | " + pr.reason
    pi.details = {"rho_gap_pooled": pr.measured, "rho_gap_pooled_ci": pr.ci}
    out.append(pi)
    return out


@evaluates("MCD-18", TIER)
def mcd18(ctx: Context) -> list[Record]:
    out = []
    for m in all_measures(ctx).values():
        if m.loss != "softmax":
            continue
        out.append(error_auroc_record(ctx, m, TIER, proxy_name(m)))
    return out


@draws("proxy reliability")
def reliability_figure(ctx: Context, out: Path) -> tuple[str, str] | None:
    """SNR, ICC and Spearman against T for every proxy model and seed."""
    measures = measured(ctx)
    if not measures:
        return None
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    style = figures.styled([f"proxy-{loss} seed {seed}" for loss, seed in sorted(measures)])
    for (loss, seed), m in sorted(measures.items()):
        ts = sorted(m.trials)
        kw = style[f"proxy-{loss} seed {seed}"]
        for ax, vals in zip(axes, figures.reliability_curves([m.trials[t] for t in ts])):
            ax.plot(ts, vals, alpha=0.8, label=f"{loss} seed {seed}" if ax is axes[0] else None, **kw)
    figures.gate_axes(axes)
    fig.suptitle("Proxy pair: reliability of trace_pre against T (blue CLIP loss, orange SigLIP loss; "
                 f"{SETTINGS['trials']} trials x {SETTINGS['n_images']} images)")
    return figures.save(fig, out / "reliability_vs_T_proxy.png", "Reliability against T, proxy pair (3 seeds per loss)")


@draws("proxy blur")
def blur_figure(ctx: Context, out: Path) -> tuple[str, str] | None:
    """Per-image relative change of trace_pre under light and heavy blur, softmax vs sigmoid."""
    measures = measured(ctx)
    if not measures:
        return None
    plt = figures.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, which in zip(axes, ("light", "heavy")):
        for loss, colour in figures.FAMILY_COLOURS.items():
            rel = np.concatenate([m.blurred[which] / m.uncertainty - 1 for (l_, _), m in measures.items() if l_ == loss])
            ax.hist(np.clip(rel, -1, 2), bins=60, alpha=0.55, color=colour, density=True,
                    label=f"{loss}: {np.mean(rel > 0):.0%} up, median {np.median(rel):+.0%}")
        ax.axvline(0, color="k", lw=0.8)
        sigma = SETTINGS["blur_sigmas"][which]
        ax.set_title(f"{which} blur: Gaussian sigma {sigma:g} px on {world.IMAGE_SIZE}-px images")
        ax.set_xlabel("relative change of trace_pre (blurred / clean - 1)")
        ax.legend(fontsize=7)
    fig.suptitle("Proxy pair: blur-induced change in MC-dropout uncertainty (all seeds pooled)")
    return figures.save(fig, out / "blur_change_proxy.png", "Blur-induced change in uncertainty, proxy pair")
