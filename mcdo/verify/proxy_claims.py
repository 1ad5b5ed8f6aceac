"""Claims on the matched proxy pair (tier ``proxy``): the same engine as the real models."""
from __future__ import annotations

import numpy as np
from scipy import stats as sst

from .. import stats as S
from .engine import Context, evaluates
from .proxy_measure import SETTINGS, all_measures
from .records import NOT_REPRODUCED, REPRODUCED, Record, direction_verdict, value_verdict
from .recorded_claims import gate_record

TIER = "proxy"


def _rho(a, b) -> float:
    return float(sst.spearmanr(a, b).statistic)


def _name(m) -> str:
    return f"proxy-{m.loss} seed {m.seed}"


def _rho_record(ctx, claim_id, m, other, other_name, expect, tier: str = TIER, model: str | None = None) -> Record:
    """Spearman(trace_pre, other) with a bootstrap CI; ``expect``: "zero" (+-0.05), "positive", or a value."""
    value = _rho(m.uncertainty, other)
    ci = S.bootstrap_ci(_rho, m.uncertainty, other, n_boot=ctx.n_boot, seed=ctx.seed)
    if expect == "zero":
        verdict, expected = value_verdict(ci, 0.0, 0.05), "~0 (+-0.05)"
    elif expect == "positive":
        verdict, expected = direction_verdict(ci, 0.0), "> 0 (direction)"
    else:
        verdict, expected = value_verdict(ci, float(expect), 0.005), f"{expect} (+-0.005)"
    return Record(claim_id, tier, model or _name(m), verdict, value, ci, expected=expected,
                  reason=f"Spearman(trace_pre, {other_name}) = {value:.3f}, 95% CI [{ci[0]:.3f}, {ci[1]:.3f}] "
                         f"(N={m.uncertainty.size}, zero-shot accuracy {m.accuracy:.3f})", config=dict(m.config))


@evaluates("MCD-07", TIER)
def mcd07(ctx: Context) -> list[Record]:
    return [gate_record("MCD-07", TIER, _name(m), m.trials[SETTINGS["T"]], m.loss == "sigmoid", ctx, dict(m.config))
            for m in all_measures(ctx).values()]


@evaluates("MCD-08", TIER)
def mcd08(ctx: Context) -> list[Record]:
    return [_rho_record(ctx, "MCD-08", m, m.entropy, "zero-shot entropy", "positive")
            for m in all_measures(ctx).values() if m.loss == "softmax"]


@evaluates("MCD-09", TIER)
def mcd09(ctx: Context) -> list[Record]:
    return [_rho_record(ctx, "MCD-09", m, m.entropy, "zero-shot entropy", "zero")
            for m in all_measures(ctx).values() if m.loss == "sigmoid"]


@evaluates("MCD-10", TIER)
def mcd10(ctx: Context) -> list[Record]:
    return [_rho_record(ctx, "MCD-10", m, m.centroid_distance, "centroid distance", "positive")
            for m in all_measures(ctx).values() if m.loss == "sigmoid"]


def _blur_record(claim_id, m, which: str, direction: str, tier: str = TIER, model: str | None = None,
                 expected_value: float | None = None, half: float = 0.0, how: str | None = None) -> Record:
    """Fraction of images whose trace_pre moved in ``direction`` under blur: a majority (direction) or,
    with ``expected_value``, that fraction at the seed's stated precision; binomial CI, Wilcoxon p."""
    r = S.paired_change(m.uncertainty, m.blurred[which])
    frac = r.frac_increased if direction == "increased" else r.frac_decreased
    ci = S.binomial_ci(round(frac * r.n), r.n)
    p = r.p_greater if direction == "increased" else r.p_less
    if expected_value is None:
        verdict, expected = direction_verdict(ci, 0.5), f"majority {direction} (direction)"
    else:
        verdict, expected = value_verdict(ci, expected_value, half), f"{expected_value:.1%} {direction}"
    how = how or f"sigma {SETTINGS['blur_sigmas'][which]} px"
    return Record(claim_id, tier, model or _name(m), verdict, frac, ci, expected=expected,
                  reason=f"{which} blur ({how}): fraction {direction} {frac:.3f} "
                         f"[{ci[0]:.3f}, {ci[1]:.3f}], one-sided Wilcoxon p = {p:.2g}, mean change "
                         f"{r.mean_relative_change:+.1%}", config=dict(m.config, blur=which), details=r.as_dict())


@evaluates("MCD-11", TIER)
def mcd11(ctx: Context) -> list[Record]:
    return [_blur_record("MCD-11", m, "light", "increased") for m in all_measures(ctx).values() if m.loss == "softmax"]


@evaluates("MCD-12", TIER)
def mcd12(ctx: Context) -> list[Record]:
    return [_blur_record("MCD-12", m, "heavy", "decreased") for m in all_measures(ctx).values() if m.loss == "sigmoid"]


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
    out.append(_pooled("MCD-13", diffs, "erank difference", "erank(softmax) - erank(sigmoid) > 0"))
    return out


def erank_record(ctx, a, b, tier: str, model: str, name_a: str, name_b: str) -> Record:
    """Mean effective rank of the per-image dropout covariance, model ``a`` minus model ``b`` (same images)."""
    d = float(a.effective_rank.mean() - b.effective_rank.mean())
    ci = S.bootstrap_ci(lambda x, y: float(x.mean() - y.mean()), a.effective_rank, b.effective_rank,
                        n_boot=ctx.n_boot, seed=ctx.seed)
    return Record("MCD-13", tier, model, direction_verdict(ci, 0.0), d, ci,
                  expected=f"erank({name_a}) - erank({name_b}) > 0",
                  reason=f"mean effective rank {name_a} {a.effective_rank.mean():.2f} vs {name_b} "
                         f"{b.effective_rank.mean():.2f} (T=64 samples, same images)",
                  config=dict(a.config, model=model))


def _pooled(claim_id: str, diffs: list[float], what: str, expected: str) -> Record:
    """Across seeds: mean difference, t interval with K-1 df, one-sample t-test against 0."""
    d = np.asarray(diffs)
    t = sst.ttest_1samp(d, 0.0)
    half = sst.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    ci = (float(d.mean() - half), float(d.mean() + half))
    return Record(claim_id, TIER, f"proxy pair, {d.size} seeds pooled", direction_verdict(ci, 0.0), float(d.mean()),
                  ci, expected=expected,
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
            return _rho(x[0], x[1]) - _rho(x[2], x[3])

        r = rho_gap(pair)
        ci_r = S.bootstrap_ci(rho_gap, pair, axis=1, n_boot=ctx.n_boot, seed=ctx.seed)
        v_g, v_r = direction_verdict(ci_g, 0.0), direction_verdict(ci_r, 0.0)
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
    pi = _pooled("MCD-17", d_icc, "ICC gap (sigmoid - softmax)", "> 0")
    pr = _pooled("MCD-17", d_rho, "entropy-rho gap (softmax - sigmoid)", "> 0")
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
        out.append(error_auroc_record(ctx, m, TIER, _name(m)))
    return out


def error_auroc_record(ctx, m, tier: str, model: str) -> Record:
    """AUROC of trace_pre for the model's own zero-shot errors, bootstrap CI over images."""
    if m.error.sum() < 2 or m.error.sum() > m.error.size - 2:
        return Record("MCD-18", tier, model, "inconclusive", None, None, expected="> 0.5",
                      reason=f"{int(m.error.sum())} errors of {m.error.size}: too few of one kind for an AUROC",
                      config=dict(m.config))
    auc = S.auroc(m.uncertainty, m.error)
    ci = S.bootstrap_ci(S.auroc, m.uncertainty, m.error, n_boot=ctx.n_boot, seed=ctx.seed)
    return Record("MCD-18", tier, model, direction_verdict(ci, 0.5), auc, ci, expected="> 0.5",
                  reason=f"AUROC(trace_pre, error) = {auc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] with "
                         f"{int(m.error.sum())} errors of {m.error.size}", config=dict(m.config))
