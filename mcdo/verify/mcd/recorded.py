"""Claims checked on the recorded published measurements (tier ``recorded``).

Every figure is recomputed from the raw trial arrays where they exist, with a
percentile bootstrap CI over images; figures that exist only as summaries get
an exact binomial or an analytic CI from the counts.
"""
from __future__ import annotations

import numpy as np
from scipy import stats as sst

from ... import env
from ... import stats as S
from ...data import recorded as R
from ...errors import MissingResource
from ..engine import Context, evaluates
from ..builders import FIGURE_CLAIMS, figure_record, gate_record, spearman_median
from ..records import CONSISTENT, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, SKIPPED, Record, decide, gate_expectation
from ..sources import GATE, SOURCE

TIER = "recorded"
# configuration of the published folders that their files do not state (PROVENANCE.md): the run's code
_PUBLISHED = dict(source="fwromano/mcdo-vlm-uncertainty@2e22945 outputs/", mode="as_published", score="trace_pre",
                  data="ImageNet-1k val")


def _trials(ctx: Context, model: str, T: int) -> R.NestedTrials:
    return ctx.cached(f"recorded/{model}/T{T}", lambda: R.nested_trials(model, T))


def _data_of(model: str, paths: np.ndarray) -> str:
    """What the images are, as far as the run says: its summary's data set, else what its paths show."""
    stated = R.run_summary(model).get("dataset")
    if stated:
        return str(stated)
    synsets = [R.synset_of(p) for p in paths]
    if all(synsets):
        return f"images in ImageNet synset folders ({len(set(synsets))} synsets; the data set is not stated)"
    return f"{len(paths)} images (the run's paths; the data set is not stated)"


def _config(x: np.ndarray, model: str, T, paths: np.ndarray | None = None) -> dict:
    """A record's configuration as the files hold it: N, K and T from the trial arrays, the model by its registry
    name (the folder name otherwise), p and the data set only where the run's summary or paths say so."""
    summary = R.run_summary(model)
    out = dict(model=R.registry_name(model), recorded_model=model, trials=int(x.shape[0]), n_images=int(x.shape[1]),
               T=T, source=f"{env.recorded_dir()}/exp0_nested_mc/{model}")
    if model in R.DESCRIPTIONS:
        out.update(_PUBLISHED, description=R.describe(model))
    if "dropout" in summary or "p" in summary:
        out["p"] = float(summary.get("dropout", summary.get("p")))
    if paths is not None and "data" not in out:
        out["data"] = _data_of(model, paths)
    return out


def source_T(claim_id: str) -> int:
    """The T at which the source states the claim (the registry's configuration)."""
    T = SOURCE[claim_id]["T"]
    return int(T[-1] if isinstance(T, list) else T)


def judged_T(ctx: Context, claim_id: str, model: str) -> tuple[int, dict]:
    """The T a recorded model is judged at: the source's, or with ``ctx.recorded_own_T`` the run's largest (a
    departure the record declares). A run without the source's T is a skip that says so."""
    want, have = source_T(claim_id), R.available_T(model)
    if want in have:
        return want, {}
    if ctx.recorded_own_T and have:
        return max(have), {"T": f"judged at the run's own largest T = {max(have)} (the source's is {want}; asked "
                                f"for with --recorded-own-T)"}
    raise R.BadRecordedFile(f"no T = {want} file for {model} (exp0_nested_mc/{model}/exp0_trials_T{want}.npz; it has "
                            f"T = {', '.join(map(str, have)) or 'none'}): {claim_id} is stated at T = {want}",
                            "add that file, or judge at the run's own T with mcdo claims --recorded-own-T")


def _figure_record(ctx: Context, claim_id: str, model: str, figure: str, name: str, fn) -> Record:
    T = source_T(claim_id)
    t = _trials(ctx, model, T)
    return figure_record(claim_id, TIER, model, t.pre, figure, name, fn, ctx, _config(t.pre, model, T, t.paths))


def named(rec: Record, folder: str) -> Record:
    """A recorded record named by the model's registry name, with the folder it came from as its variant (a folder
    that is not a registered model is named by itself)."""
    rec.model = R.registry_name(folder)
    rec.variant = f"recorded folder {folder}" if rec.model != folder else ""
    return rec


def _per_model(claim_id: str, ctx: Context, one, min_T: int = 1) -> list[Record]:
    """One record per recorded model found (``one(model) -> Record``); a model whose files are absent or
    malformed gives a skipped record naming the file and the problem, and the others still run."""
    out = []
    for model in R.models():
        if len(R.available_T(model)) < min_T:
            out.append(Record(claim_id, TIER, model, SKIPPED, reason=f"needs trial files at {min_T} values of T; "
                              f"{model} has T = {', '.join(map(str, R.available_T(model)))}"))
        else:
            try:
                out.append(one(model))
            except MissingResource as e:
                out.append(Record(claim_id, TIER, model, SKIPPED, reason=str(e)))
        named(out[-1], model)
    return out


def expected_gate(model: str) -> bool | None:
    """The gate outcome MCD-07 expects from a recorded model (the registry's, for its loss family)."""
    return gate_expectation("MCD-07", R.family(model), TIER)


def _figure(ctx: Context, claim_id: str) -> list[Record]:
    """One reliability figure of one recorded model at the source's T (``builders.FIGURE_CLAIMS``)."""
    model, figure, name, fn = FIGURE_CLAIMS[claim_id]
    return [named(_figure_record(ctx, claim_id, model, figure, name, fn), model)]


@evaluates("MCD-03", TIER)
def mcd03(ctx: Context) -> list[Record]:
    """MCD-03 on the recorded tier: the SNR of clip_b32's trace_pre over trials."""
    return _figure(ctx, "MCD-03")


@evaluates("MCD-04", TIER)
def mcd04(ctx: Context) -> list[Record]:
    """MCD-04 on the recorded tier: the median pairwise Spearman of clip_b32's trace_pre over trials."""
    return _figure(ctx, "MCD-04")


@evaluates("MCD-05", TIER)
def mcd05(ctx: Context) -> list[Record]:
    """MCD-05 on the recorded tier: the SNR of siglip2_b16's trace_pre over trials."""
    return _figure(ctx, "MCD-05")


@evaluates("MCD-06", TIER)
def mcd06(ctx: Context) -> list[Record]:
    """MCD-06 on the recorded tier: the median pairwise Spearman of siglip2_b16's trace_pre over trials."""
    return _figure(ctx, "MCD-06")


@evaluates("MCD-07", TIER)
def mcd07(ctx: Context) -> list[Record]:
    """The reliability gate at the source's T (64), for every recorded model, against its family's expectation."""
    def one(model: str) -> Record:
        T, declared = judged_T(ctx, "MCD-07", model)
        t = _trials(ctx, model, T)
        rec = gate_record("MCD-07", TIER, model, t.pre, R.family(model), ctx, _config(t.pre, model, T, t.paths))
        rec.departures.update(declared)
        return rec

    return _per_model("MCD-07", ctx, one)


@evaluates("MCD-08", TIER)
def mcd08(ctx: Context) -> list[Record]:
    z = R.ambiguity_subset()
    u, h = z["uncertainty"].astype(np.float64), z["entropy"].astype(np.float64)

    def rho(a, b):
        return sst.spearmanr(a, b).statistic

    value = rho(u, h)
    ci = S.bootstrap_ci(rho, u, h, n_boot=ctx.n_boot, seed=ctx.seed)
    inv = R.summary("ablation/prelim_investigation.json")["angle2_clip_b32_n2000"]
    exp5 = R.summary("exp5_ambiguity/exp5_subset_clip_b32_summary.json")
    config = dict(source="exp5_ambiguity (raw per-image arrays)", model=R.registry_name("clip_b32"),
                  data="CIFAR-100 test", n_images=int(u.size), p=exp5["dropout"], T=exp5["passes"],
                  trials=exp5["trials"], injected_linear_dropout_wrappers=exp5["injected_linear_dropout_wrappers"],
                  templates=exp5["templates"], mode="as_published", score="trace_pre")
    summary_rho = inv["trace_pre"]["rho_entropy"]
    n_summary = int(inv.get("N", 2000))
    d = decide("MCD-08", "rho", ci, TIER, n=u.size)
    reason = (f"Spearman(uncertainty, entropy) = {value:.3f}, 95% CI [{ci[0]:.3f}, {ci[1]:.3f}] on the recorded "
              f"CIFAR-100 arrays vs expected {d.expected}; the ImageNet N={n_summary} summary (no per-image arrays) "
              f"gives {summary_rho:.3f}, Fisher CI "
              f"{tuple(round(v, 3) for v in S.spearman_ci_fisher(summary_rho, n_summary))}")
    return [named(Record("MCD-08", TIER, "clip_b32", d.verdict, value, ci, expected=d.expected, reason=reason + "; " + d.note,
                   config=config, details={"imagenet_summary_rho": summary_rho,
                                           "imagenet_summary_ci": S.spearman_ci_fisher(summary_rho, n_summary)}),
                  "clip_b32")]


def _ablation_record(claim_id: str, model: str, key: str, direction: str) -> Record:
    comp = R.summary("ablation/prelim_ablation.json")[model]
    c, n = comp["comparisons"][key], comp["N"]
    frac_up = c["frac_unc_increased"]
    frac = frac_up if direction == "increased" else 1.0 - frac_up
    k = round(frac * n)
    ci = S.binomial_ci(k, n)
    change = c["mean_unc_degraded"] / c["mean_unc_clean"] - 1.0
    d = decide(claim_id, "fraction", ci, TIER, n=n)
    # the mean change has no CI (no per-image arrays): its sign is checked against the registry's direction
    sign = decide(claim_id, "mean_change", (change, change), TIER)
    verdict = d.verdict
    if verdict == REPRODUCED and sign.verdict != REPRODUCED:
        verdict = NOT_REPRODUCED
    if verdict == REPRODUCED:  # the source's own summary figure, checked: no per-image data to recompute it from
        verdict = CONSISTENT
    reason = (f"{key}: fraction {direction} {frac:.3f} (exact 95% CI [{ci[0]:.3f}, {ci[1]:.3f}], N={n}) vs "
              f"{d.expected}; Wilcoxon p = {c['wilcoxon_p']:.2g}; mean change {change:+.1%} vs {sign.expected} "
              f"(no per-image arrays were published, so the mean change has no CI); {d.note}; a check of the "
              "source's summary, not a reproduction from data")
    if direction == "decreased":
        reason += "; fraction decreased = 1 - fraction increased (ties, if any, count as decreased)"
    return Record(claim_id, TIER, model, verdict, frac, ci, expected=d.expected, reason=reason,
                  config=dict(source="ablation/prelim_ablation.json (summary)", model=R.registry_name(model),
                              degradation=key, n_images=n),
                  details={"wilcoxon_p": c["wilcoxon_p"], "mean_relative_change": change,
                           "mean_unc_clean": c["mean_unc_clean"], "mean_unc_degraded": c["mean_unc_degraded"]})


@evaluates("MCD-11", TIER)
def mcd11(ctx: Context) -> list[Record]:
    return [named(_ablation_record("MCD-11", "clip_b32", SOURCE["MCD-11"]["degradation"], "increased"), "clip_b32")]


@evaluates("MCD-12", TIER)
def mcd12(ctx: Context) -> list[Record]:
    return [named(_ablation_record("MCD-12", "siglip2_b16", SOURCE["MCD-12"]["degradation"], "decreased"),
                  "siglip2_b16")]


@evaluates("MCD-18", TIER)
def mcd18(ctx: Context) -> list[Record]:
    inv = R.summary("ablation/prelim_investigation.json")
    a1 = inv["angle1_alt_metrics"]["clip_b32"]
    auc, acc = a1["trace_pre"]["auroc_error"], a1["accuracy"]
    n = int(a1.get("N", SOURCE["MCD-18"]["n_images"]))
    n_err = round((1 - acc) * n)
    ci = S.auroc_ci_hanley_mcneil(auc, n_err, n - n_err)
    a2 = inv["angle2_clip_b32_n2000"]
    n2_err = round((1 - a2["accuracy"]) * a2["N"])
    ci2 = S.auroc_ci_hanley_mcneil(a2["trace_pre"]["auroc_error"], n2_err, a2["N"] - n2_err)
    reason = (f"AUROC(trace_pre, error) = {auc:.3f}, Hanley-McNeil 95% CI [{ci[0]:.3f}, {ci[1]:.3f}] "
              f"(N={n}, {n_err} errors); N={a2['N']} run: {a2['trace_pre']['auroc_error']:.3f} "
              f"[{ci2[0]:.3f}, {ci2[1]:.3f}]")
    d = decide("MCD-18", "auroc", ci, TIER)
    verdict = CONSISTENT if d.verdict == REPRODUCED else d.verdict  # the source's summary AUROC, not recomputed
    reason += "; a check of the source's summary figure (no per-image arrays), not a reproduction from data"
    return [named(Record("MCD-18", TIER, "clip_b32", verdict, auc, ci, expected=d.expected, reason=reason,
                   config=dict(source="ablation/prelim_investigation.json (summary)", model=R.registry_name("clip_b32"),
                               n_images=n, accuracy=acc),
                   details={"n2000_auroc": a2["trace_pre"]["auroc_error"], "n2000_ci": ci2}), "clip_b32")]


def consistency_gap(x: np.ndarray) -> float:
    """Largest disagreement among ICC(1,1), median pairwise Spearman and SNR/(1+SNR), the SNR estimate's +1/K
    bias removed (what the claim relates is the population SNR; the math tier uses it directly)."""
    s = S.snr(x) - 1.0 / x.shape[0]
    vals = (S.icc(x), spearman_median(x), s / (1.0 + s))
    return float(max(vals) - min(vals))


@evaluates("MCD-14", TIER)
def mcd14(ctx: Context) -> list[Record]:
    def one(m: str) -> Record:
        T, declared = judged_T(ctx, "MCD-14", m)
        t = _trials(ctx, m, T)
        x = t.pre
        k = x.shape[0]
        gap = consistency_gap(x)
        ci = S.bootstrap_ci(consistency_gap, x, axis=1, n_boot=ctx.n_boot, seed=ctx.seed)
        s, i, sp = S.snr(x), S.icc(x), spearman_median(x)
        sc = s - 1.0 / k
        d = decide("MCD-14", "gap", ci, TIER, n=x.shape[1])
        reason = (f"ICC {i:.3f}, Spearman {sp:.3f}, SNRc/(1+SNRc) {sc / (1 + sc):.3f} (SNRc = SNR - 1/K = {sc:.3f}, "
                  f"K={k}) at T={T}, N={x.shape[1]}: largest gap {gap:.3f}, 95% CI [{ci[0]:.3f}, {ci[1]:.3f}] vs "
                  f"{d.expected}; uncorrected SNR/(1+SNR) {s / (1 + s):.3f}; exact identity ICC = SNRc/(1+SNRc) "
                  f"holds to {abs(i - S.icc_from_snr(s, k)):.1e}")
        rec = Record("MCD-14", TIER, m, d.verdict, gap, ci, expected=d.expected, reason=reason + "; " + d.note,
                     config=_config(x, m, T, t.paths),
                     details={"snr": s, "snr_corrected": sc, "icc": i, "spearman": sp,
                              "snr_over_1_plus_snr": s / (1 + s), "snrc_over_1_plus_snrc": sc / (1 + sc),
                              "gaussian_spearman_from_icc": S.spearman_from_pearson(i)})
        rec.departures.update(declared)
        return rec

    return _per_model("MCD-14", ctx, one)


def _predicted_snr(short: np.ndarray, t_short: int, t_target: int, k_target: int | None = None) -> float:
    return S.predicted_snr(S.snr(short), t_short, short.shape[0], t_target, k_target)


def _passes_needed(short: np.ndarray, t_short: int) -> dict[str, float]:
    return S.passes_needed(S.snr(short), t_short, short.shape[0], GATE)


def mapping_error(x: np.ndarray) -> float:
    """Measured pairwise Spearman minus the Gaussian mapping's value from the measured ICC, on one T's trials."""
    return S.spearman_mapping_error(x)


def predicted_figures(short: np.ndarray, t_short: int, t_target: int) -> dict[str, float]:
    """The gate figures at ``t_target`` passes predicted from trials at ``t_short`` under the 1/T law: SNR as
    recorded, ICC(1,1) by the exact identity with it, pairwise Spearman by the Gaussian mapping from ICC (whose
    error is not in this figure; ``pooled_spearman`` predicts Spearman without it)."""
    return S.predicted_gate_figures(S.snr(short), t_short, short.shape[0], t_target)


def gate_prediction(ci: tuple[float, float], threshold: float) -> str:
    """A gate predicted to pass or fail only when the prediction's whole CI is on one side of the threshold."""
    return "pass" if ci[0] >= threshold else "fail" if ci[1] < threshold else "inconclusive"


def _readable(ctx: Context, model: str, ts: tuple[int, ...]) -> tuple[dict[int, np.ndarray], dict[int, str]]:
    """The trial arrays of the T files that can be read, and why each other one cannot."""
    got, bad = {}, {}
    for T in ts:
        try:
            got[T] = _trials(ctx, model, T).pre
        except MissingResource as e:
            bad[T] = str(e)
    return got, bad


def _mcd15_Ts(ctx: Context, model: str) -> tuple[int, int, dict]:
    """(short T, long T, declared departures): the source's pair (16 -> 64), or with ``ctx.recorded_own_T`` the
    run's two largest."""
    want, have = SOURCE["MCD-15"]["T"], R.available_T(model)
    if all(T in have for T in want):
        return want[0], want[1], {}
    if ctx.recorded_own_T and len(have) >= 2:
        return have[-2], have[-1], {"T": f"predicted {have[-1]} from {have[-2]}, the run's own T (the source's: "
                                         f"{want[1]} from {want[0]}; asked for with --recorded-own-T)"}
    missing = [T for T in want if T not in have]
    raise R.BadRecordedFile(f"no T = {', '.join(map(str, missing))} file for {model} (it has T = "
                            f"{', '.join(map(str, have)) or 'none'}): MCD-15 predicts T = {want[1]} from T = {want[0]}",
                            "add those files, or judge at the run's own T with mcdo claims --recorded-own-T")


def mcd15_record(ctx: Context, model: str) -> Record:
    """SNR at the long T predicted from the short T (ratio to the measured SNR), the three gate figures and the T
    each gate needs, all with percentile bootstrap CIs over images (the short and the long trials resampled
    together, so each image stays paired with itself). The Spearman prediction adds the Gaussian mapping's error
    measured at the short T, and its interval is widened by how much that error moved between the shorter Ts
    (or by the whole error when there is one short T), so a mapping that drifts cannot pass as a prediction.
    Judged on all three figures: reproduced only when the SNR ratio is within its margin and every gate
    prediction is decisive and right; not reproduced when the ratio is outside or a decisive prediction is wrong."""
    t_short, t_long, declared = _mcd15_Ts(ctx, model)
    short, long_ = _trials(ctx, model, t_short).pre, _trials(ctx, model, t_long).pre
    k, k_long = short.shape[0], long_.shape[0]
    both = np.concatenate([short, long_], axis=0)
    boot = dict(axis=1, n_boot=ctx.n_boot, seed=ctx.seed)

    def ratio(x):
        return _predicted_snr(x[:k], t_short, t_long, k_long) / S.snr(x[k:])

    r, ci = ratio(both), S.bootstrap_ci(ratio, both, **boot)
    readable, unreadable = _readable(ctx, model, R.available_T(model))
    pred = predicted_figures(short, t_short, t_long)
    pred_ci = {g: S.bootstrap_ci(lambda x, g=g: predicted_figures(x, t_short, t_long)[g], short, **boot) for g in pred}
    m = t_long // t_short
    if t_long % t_short == 0 and k >= 2 * m:  # Spearman predicted directly from pooled short trials
        how = f"pooled: disjoint groups of {m} T = {t_short} trials as T = {t_long} trials"
        pred["spearman"] = S.pooled_spearman(short, m, seed=ctx.seed)
        pred_ci["spearman"] = S.bootstrap_ci(lambda x: S.pooled_spearman(x, m, seed=ctx.seed), short,
                                             **dict(boot, n_boot=max(100, ctx.n_boot // 5)))
        widen = 0.0
    else:  # the Gaussian mapping, its interval widened by its largest error measured at the run's shorter Ts
        widen = max(abs(mapping_error(x)) for T, x in readable.items() if T <= t_short)
        how = f"Gaussian mapping from ICC, interval widened by its largest measured error {widen:.3f}"
        pred_ci["spearman"] = (pred_ci["spearman"][0] - widen, pred_ci["spearman"][1] + widen)
    need = _passes_needed(short, t_short)
    need_ci = {g: S.bootstrap_ci(lambda x, g=g: min(_passes_needed(x, t_short)[g], 1e12), short, **boot) for g in need}
    gate = S.reliability_gate(long_, GATE["spearman"], GATE["icc"], GATE["snr"])
    measured = {"snr": gate.snr, "icc": gate.icc, "spearman": gate.spearman_median}
    measured_pass = {"snr": gate.snr_pass, "icc": gate.icc_pass, "spearman": gate.spearman_pass}
    predicted = {g: gate_prediction(pred_ci[g], GATE[g]) for g in pred}
    wrong = [g for g in predicted if predicted[g] != "inconclusive" and (predicted[g] == "pass") != measured_pass[g]]
    open_ = [g for g in predicted if predicted[g] == "inconclusive"]
    d = decide("MCD-15", "snr_ratio", ci, TIER, n=short.shape[1])
    verdict = d.verdict
    if verdict != NOT_REPRODUCED and wrong:
        verdict = NOT_REPRODUCED
    elif verdict == REPRODUCED and open_:
        verdict = INCONCLUSIVE
    ts = sorted(readable)
    noise = {T: S.signal_noise(readable[T])[1] for T in ts}
    slopes = {f"{a}->{b}": float(np.log(noise[a] / noise[b]) / np.log(b / a)) for a, b in zip(ts, ts[1:])}
    gates_text = "; ".join(
        f"{g} predicted {pred[g]:.3f} [{pred_ci[g][0]:.3f}, {pred_ci[g][1]:.3f}] -> {predicted[g]} (measured "
        f"{measured[g]:.3f}, {'pass' if measured_pass[g] else 'fail'}), T needed {need[g]:.0f} "
        f"[{need_ci[g][0]:.0f}, {need_ci[g][1]:.0f}]" for g in pred)
    k_note = (f"; the T = {t_short} file has {k} trials and the T = {t_long} file {k_long}: the prediction is made "
              f"for {k_long} trials" if k != k_long else "")
    reason = (f"SNR({t_long}) predicted from T={t_short} {_predicted_snr(short, t_short, t_long, k_long):.3f} vs "
              f"measured {S.snr(long_):.3f}: ratio {r:.3f}, 95% CI [{ci[0]:.3f}, {ci[1]:.3f}]; {gates_text}; "
              f"Spearman {how} (the Gaussian mapping's error at T={t_short}: {mapping_error(short):+.3f}); "
              + (f"predictions that missed: {', '.join(wrong)}; " if wrong else "decisive predictions all held; ")
              + (f"inconclusive (CI straddles the gate): {', '.join(open_)}; " if open_ else "")
              + f"noise exponents (1 = 1/T law) {', '.join(f'{k_} {v:.2f}' for k_, v in slopes.items())}"
              + (f"; unreadable files left out (not used by the prediction): "
                 f"{'; '.join(f'T = {T}: {v}' for T, v in unreadable.items())}" if unreadable else "")
              + k_note + f"; {d.note}")
    cfg = _config(long_, model, [t_short, t_long], _trials(ctx, model, t_long).paths)
    cfg["trials"] = int(k) if k == k_long else [int(k), int(k_long)]
    rec = Record("MCD-15", TIER, model, verdict, r, ci, expected=f"predicted/measured SNR({t_long}) {d.expected}",
                 reason=reason, config=cfg,
                 details={"predicted_figures": pred, "predicted_figures_ci": pred_ci, "passes_needed": need,
                          "passes_needed_ci": need_ci, "predicted_gate": predicted, "measured_figures": measured,
                          "measured_pass": measured_pass, "noise_exponents": slopes,
                          "spearman_prediction": how, "spearman_mapping_error": mapping_error(short),
                          "spearman_interval_widening": widen})
    rec.departures.update(declared)
    return rec


@evaluates("MCD-15", TIER)
def mcd15(ctx: Context) -> list[Record]:
    return _per_model("MCD-15", ctx, lambda m: mcd15_record(ctx, m), min_T=2)
