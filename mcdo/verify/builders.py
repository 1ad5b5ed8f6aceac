"""Record builders shared by the tiers of a claim family: one figure against its value, the reliability gate,
a Spearman correlation, a blur fraction, an effective-rank difference, an error AUROC. Each returns a ``Record``
with the figure, its confidence interval and the verdict its rule gives."""
from __future__ import annotations

import numpy as np
from scipy import stats as sst

from .. import stats as S
from .engine import Context
from .proxy_measure import SETTINGS
from .records import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Record, decide, gate_expectation
from .sources import GATE


def spearman_median(x: np.ndarray) -> float:
    return S.pairwise_spearman(x).median


# MCD-03..06: one reliability figure of one recorded model (model, figure name in the registry, what it is, its
# function); the expected value is the registry's, and the recorded and gpu tiers evaluate the same table
FIGURE_CLAIMS = {
    "MCD-03": ("clip_b32", "snr", "SNR", S.snr),
    "MCD-04": ("clip_b32", "spearman", "pairwise Spearman (median)", spearman_median),
    "MCD-05": ("siglip2_b16", "snr", "SNR", S.snr),
    "MCD-06": ("siglip2_b16", "spearman", "pairwise Spearman (median)", spearman_median),
}


def figure_record(claim_id: str, tier: str, model: str, x: np.ndarray, figure: str, name: str, fn,
                  ctx: Context, config: dict) -> Record:
    """One reliability figure of ``[K, N]`` trials against the registry's value: bootstrap CI over images
    (the verdict) and a delete-one-trial jackknife CI (in the details)."""
    value = fn(x)
    ci = S.bootstrap_ci(fn, x, axis=1, n_boot=ctx.n_boot, seed=ctx.seed)
    ci_trials = S.jackknife_ci_trials(fn, x)
    d = decide(claim_id, figure, ci, tier, n=x.shape[1])
    reason = (f"{name} = {value:.3f}, 95% CI over images [{ci[0]:.3f}, {ci[1]:.3f}] vs expected {d.expected}; "
              f"{d.note}")
    return Record(claim_id, tier, model, d.verdict, value, ci, expected=d.expected, reason=reason, config=config,
                  details={"ci_over_trials_jackknife": ci_trials, "ci_method": "percentile bootstrap over images"})


_GATE_FIGURES = (("snr", S.snr), ("icc", S.icc), ("spearman", spearman_median))


def gate_record(claim_id: str, tier: str, model: str, trials: np.ndarray, family: str | None, ctx: Context,
                config: dict) -> Record:
    """Gate verdict with a CI per figure: robust only when no CI straddles the threshold that decides it. The
    thresholds (sources.GATE) and whether a model of this loss ``family`` should pass are the registry's; a family
    the claim says nothing of gives the figures and no verdict."""
    should_pass = gate_expectation(claim_id, family, tier)
    _GATES = tuple((name, fn, GATE[name]) for name, fn in _GATE_FIGURES)
    figures, cis = {}, {}
    for name, fn, _ in _GATES:
        figures[name] = fn(trials)
        cis[name] = S.bootstrap_ci(fn, trials, axis=1, n_boot=ctx.n_boot, seed=ctx.seed)
    passes = {name: figures[name] >= thr for name, _, thr in _GATES}
    robust_pass = all(cis[name][0] >= thr for name, _, thr in _GATES)
    robust_fail = any(cis[name][1] < thr for name, _, thr in _GATES)
    passed = all(passes.values())
    if should_pass is None:
        verdict = INCONCLUSIVE
    elif robust_pass or robust_fail:
        verdict = REPRODUCED if robust_pass == should_pass else NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    text = ", ".join(f"{n} {figures[n]:.3f} [{cis[n][0]:.3f}, {cis[n][1]:.3f}] ({'pass' if passes[n] else 'fail'})"
                     for n, _, _ in _GATES)
    expected = "no expectation" if should_pass is None else "pass" if should_pass else "fail"
    reason = f"gate {'passes' if passed else 'fails'} (expected {expected}): {text}"
    if should_pass is None:
        reason = (f"figures only, no expected outcome for this family: {claim_id} is about CLIP (softmax loss: "
                  f"fail) and SigLIP (sigmoid loss: pass): {text}")
    n_pass = float(sum(passes.values()))
    # interval of 'figures passing': gates cleared by every CI's lower bound .. by its upper bound
    ci = (float(sum(cis[n][0] >= t for n, _, t in _GATES)), float(sum(cis[n][1] >= t for n, _, t in _GATES)))
    return Record(claim_id, tier, model, verdict, n_pass, ci, expected=expected,
                  reason=reason, config=config,
                  details={"figures": figures, "ci": cis, "passes": passes, "gate_passed": passed,
                           "measured_is": "number of the 3 gate figures at or above their threshold"})


def rho(a, b) -> float:
    return float(sst.spearmanr(a, b).statistic)


def proxy_name(m) -> str:
    return f"proxy-{m.loss} seed {m.seed}"


def rho_record(ctx, claim_id, m, other, other_name, tier: str = "proxy", model: str | None = None) -> Record:
    """Spearman(trace_pre, other) with a bootstrap CI, against the registry's expectation of the claim's ``rho``
    on this tier (a value within the claim's margin, or a direction)."""
    value = rho(m.uncertainty, other)
    ci = S.bootstrap_ci(rho, m.uncertainty, other, n_boot=ctx.n_boot, seed=ctx.seed)
    d = decide(claim_id, "rho", ci, tier, n=m.uncertainty.size)
    return Record(claim_id, tier, model or proxy_name(m), d.verdict, value, ci, expected=d.expected,
                  reason=f"Spearman(trace_pre, {other_name}) = {value:.3f}, 95% CI [{ci[0]:.3f}, {ci[1]:.3f}] "
                         f"(N={m.uncertainty.size}, zero-shot accuracy {m.accuracy:.3f}); {d.note}",
                  config=dict(m.config))


def blur_record(claim_id, m, which: str, direction: str, tier: str = "proxy", model: str | None = None,
                how: str | None = None) -> Record:
    """Fraction of images whose trace_pre moved in ``direction`` under blur against the registry's ``fraction``
    (the seed's share within its margin, or a majority); binomial CI, Wilcoxon p."""
    r = S.paired_change(m.uncertainty, m.blurred[which])
    frac = r.frac_increased if direction == "increased" else r.frac_decreased
    ci = S.binomial_ci(round(frac * r.n), r.n)
    p = r.p_greater if direction == "increased" else r.p_less
    d = decide(claim_id, "fraction", ci, tier, n=r.n)
    how = how or f"sigma {SETTINGS['blur_sigmas'][which]} px"
    return Record(claim_id, tier, model or proxy_name(m), d.verdict, frac, ci, expected=f"{d.expected} {direction}",
                  reason=f"{which} blur ({how}): fraction {direction} {frac:.3f} "
                         f"[{ci[0]:.3f}, {ci[1]:.3f}], one-sided Wilcoxon p = {p:.2g}, mean change "
                         f"{r.mean_relative_change:+.1%}; {d.note}", config=dict(m.config, blur=which),
                  details=r.as_dict())


def erank_record(ctx, a, b, tier: str, model: str, name_a: str, name_b: str) -> Record:
    """Mean effective rank of the per-image dropout covariance, model ``a`` minus model ``b`` (same images)."""
    d = float(a.effective_rank.mean() - b.effective_rank.mean())
    ci = S.bootstrap_ci(lambda x, y: float(x.mean() - y.mean()), a.effective_rank, b.effective_rank,
                        n_boot=ctx.n_boot, seed=ctx.seed)
    dec = decide("MCD-13", "erank_gap", ci, tier)
    return Record("MCD-13", tier, model, dec.verdict, d, ci,
                  expected=f"erank({name_a}) - erank({name_b}) {dec.expected}",
                  reason=f"mean effective rank {name_a} {a.effective_rank.mean():.2f} vs {name_b} "
                         f"{b.effective_rank.mean():.2f} (T={a.config.get('T', '?')} samples, same images)",
                  config=dict(a.config, model=model))


def auroc_or_nan(scores, labels) -> float:
    """AUROC, or NaN for a bootstrap resample that drew one class only (few errors, a small or partial set):
    the bootstrap leaves such resamples out rather than failing the record."""
    return S.auroc(scores, labels) if 0 < int(labels.sum()) < labels.size else float("nan")


def error_auroc_record(ctx, m, tier: str, model: str) -> Record:
    """AUROC of trace_pre for the model's own zero-shot errors, bootstrap CI over images."""
    if m.error.sum() < 2 or m.error.sum() > m.error.size - 2:
        return Record("MCD-18", tier, model, "inconclusive", None, None,
                      reason=f"{int(m.error.sum())} errors of {m.error.size}: too few of one kind for an AUROC",
                      config=dict(m.config))
    auc = S.auroc(m.uncertainty, m.error)
    ci = S.bootstrap_ci(auroc_or_nan, m.uncertainty, m.error, n_boot=ctx.n_boot, seed=ctx.seed)
    d = decide("MCD-18", "auroc", ci, tier)
    return Record("MCD-18", tier, model, d.verdict, auc, ci, expected=d.expected,
                  reason=f"AUROC(trace_pre, error) = {auc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] with "
                         f"{int(m.error.sum())} errors of {m.error.size}", config=dict(m.config))
