"""A mutation check of the statistics, the sampler and the verdict rules: each mutant is a small wrong change that
a careful reviewer could miss; the suite should fail on every one. Run before a release:

    python scripts/mutants.py            # all mutants; prints killed / survived and the score
    python scripts/mutants.py --list     # what each mutant changes

Each mutant edits one file in place, runs the tests that cover it (stopping at the first failure), and restores
the file (also on Ctrl-C). A mutant whose text is not found is reported as not applicable (the code moved).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (name, file, text, replacement, tests that should kill it)
MUTANTS = [
    ("sampler cache key ignores p", "mcdo/sampling.py", "mode=ctl.mode, p=ctl.p,", "mode=ctl.mode,",
     "tests/test_faults.py::test_sample_cache_is_keyed_on_weights_and_every_setting"),
    ("sampler cache key ignores the code version", "mcdo/sampling.py", "runner=type(runner).__name__, version=SAMPLER_VERSION,",
     "runner=type(runner).__name__,", "tests/test_faults.py::test_sample_cache_is_keyed_on_weights_and_every_setting"),
    ("fast path: last block's MLP output without dropout (faithful)", "mcdo/fastpath.py",
     'return self._drop(f"{b}.mlp.c_proj", self._lin(f"{b}.mlp.c_proj", h, buffer="mlp_out"))',
     'out = self._lin(f"{b}.mlp.c_proj", h, buffer="mlp_out")\n'
     '        return out * (1.0 - self.ctl.p) if self.faithful and i == len(self.blocks) - 1 '
     'else self._drop(f"{b}.mlp.c_proj", out)', "tests/test_sampling.py"),
    ("prepared weights not keyed on p", "mcdo/fastpath.py",
     "key = (type(self).__name__, self.dtype, float(self.ctl.p), self.faithful)",
     "key = (type(self).__name__, self.dtype, self.faithful)", "tests/test_sampling.py::test_prepared_weights_are_keyed_on_p"),
    ("packed weights shared across p and parameter versions", "mcdo/fastpath.py",
     "self.packed = {}  # oneDNN's packed copies, made at first use (``_lin``)",
     'self.packed = per_tower.setdefault("packed", {})',
     "tests/test_sampling.py::test_prepared_weights_are_keyed_on_p "
     "tests/test_sampling.py::test_packed_products_follow_parameter_changes"),
    ("a product oneDNN refused is offered again on every call", "mcdo/fastpath.py",
     "if wk not in self.packed:  # a refusal is kept too (None): oneDNN is asked once per weight",
     "if self.packed.get(wk) is None:",
     "tests/test_sampling.py::test_a_cpu_without_onednn_kernels_keeps_addmm"),
    ("flat drop index: draws past a row's end spill into the next row", "mcdo/masks.py",
     "return torch.where(inside, idx, idx[:, :1]).view(-1)",
     "return idx.clamp(max=keys.numel() * n_row - 1).view(-1)", "tests/test_masks.py"),
    ("bootstrap resamples trials instead of images", "mcdo/verify/builders.py",
     "ci = S.bootstrap_ci(fn, x, axis=1, n_boot=ctx.n_boot, seed=ctx.seed)",
     "ci = S.bootstrap_ci(fn, x, axis=0, n_boot=ctx.n_boot, seed=ctx.seed)", "tests/test_recorded_runs.py"),
    ("bootstrap_ci ignores its axis", "mcdo/stats/bootstrap.py", "values[b] = statistic(*(np.take(a, idx, axis=axis) for a in arrays))",
     "values[b] = statistic(*(np.take(a, idx, axis=0) for a in arrays))", "tests/test_verify.py tests/test_stats_reliability.py"),
    ("ECE in one bin", "mcdo/stats/calibration.py", "edges = np.linspace(0.0, 1.0, n_bins + 1)",
     "edges = np.linspace(0.0, 1.0, 2)", "tests/test_stats_metrics.py"),
    ("ECE: a confidence on a bin edge goes up", "mcdo/stats/calibration.py", 'side="left"', 'side="right"',
     "tests/test_stats_metrics.py"),
    ("equivalence: overlap with the margin is enough", "mcdo/verify/records.py",
     "if expected - margin <= lo and hi <= expected + margin:", "if lo <= expected + margin and hi >= expected - margin:",
     "tests/test_verify.py"),
    ("MCD-09 judged at +-0.5", "mcdo/verify/catalog.py", '"MCD-08": _CORRELATION, "MCD-09": _CORRELATION,',
     '"MCD-08": _CORRELATION, "MCD-09": Margin(0.5, False, "a correlation within 0.5 of the claimed value"),',
     "tests/test_verify.py"),
    ("an evaluator error absorbed by a strict xfail", "claims/_harness.py", "raises=AssertionError,", "",
     "tests/test_verify.py::test_a_crashing_evaluator_is_never_an_expected_failure"),
    ("SNR signal with ddof=0", "mcdo/stats/reliability.py", "signal = float(np.var(x.mean(axis=0), ddof=1))",
     "signal = float(np.var(x.mean(axis=0), ddof=0))", "tests/test_stats_reliability.py"),
    ("pairwise Spearman: Pearson of raw scores", "mcdo/stats/reliability.py", "r = np.corrcoef(ranks)",
     "r = np.corrcoef(x)", "tests/test_stats_reliability.py"),
    ("FPR95 keeps 94% of positives", "mcdo/stats/detection.py", "k = int(np.ceil(tpr * pos.size))",
     "k = int(np.floor(tpr * pos.size))", "tests/test_stats_metrics.py"),
    ("MCM FPR95 ignores the full-TPR cut", "mcdo/stats/detection.py",
     "tp, fp, rates = tp[:stop], fp[:stop], rates[:stop]", "pass", "tests/test_stats_metrics.py"),
    ("OpenOOD convention with ID positive", "mcdo/oodbench.py",
     'score, y = (x, is_id) if c["positive"] == "in" else (-x, 1 - is_id)', "score, y = (x, is_id)",
     "tests/test_ood_pipeline.py::test_pipeline_matches_direct_computation"),
    ("recorded files not aligned by path", "mcdo/data/recorded.py",
     "return NestedTrials(model, T, trials.pre[:, order], trials.post[:, order], trials.paths[order])",
     "return trials", "tests/test_recorded_runs.py"),
    # issue 19-22: the registry, the reliability laws, folder walks, probes and concepts
    ("MCD-14 gap with the biased SNR", "mcdo/verify/mcd/recorded.py", "s = S.snr(x) - 1.0 / x.shape[0]",
     "s = S.snr(x)", "tests/test_recorded_runs.py::test_mcd14_gap_removes_the_snr_estimators_bias"),
    ("T needed ignores the +1/K bias", "mcdo/stats/reliability.py", "return (snr_estimate - 1.0 / k) / T",
     "return snr_estimate / T", "tests/test_registry.py::test_sweep_t_needed_reaches_the_gate_in_a_simulation"),
    ("a value claim judged against 0, not the registry's value", "mcdo/verify/records.py",
     "verdict, note = judge(claim_id, ci, e.value, n, figure)", "verdict, note = judge(claim_id, ci, 0.0, n, figure)",
     "tests/test_registry.py"),
    ("departures never computed", "mcdo/verify/records.py", "        out[key] = {\"source\"",
     "        continue\n        out[key] = {\"source\"", "tests/test_registry.py"),
    ("folder walk follows a link back into itself", "mcdo/data/folders.py",
     "elif target in seen or target == real:", "elif False:",
     "tests/test_inputs.py::test_a_link_loop_neither_repeats_nor_mislabels_images"),
    ("pooled Spearman from the short trials themselves", "mcdo/stats/reliability.py",
     "vals.append(pairwise_spearman(groups).median)", "vals.append(pairwise_spearman(x).median)",
     "tests/test_recorded_runs.py"),
    ("concept AP: ties ranked one by one", "mcdo/signatures/measures.py",
     'return (len(s) - np.searchsorted(np.sort(s), s, side="left")).astype(np.float64)',
     'return np.argsort(np.argsort(-s, kind="stable"), kind="stable").astype(np.float64) + 1',
     "tests/test_signatures.py"),
    ("concepts counted at chance level", "mcdo/signatures/measures.py",
     "floor = np.maximum(threshold, y.mean(axis=0) + margin)", "floor = np.full(y.shape[1], threshold)",
     "tests/test_signatures.py"),
    ("probe baseline predicts the test fold's majority", "mcdo/probe/cv.py",
     "values, counts = np.unique(y[train], return_counts=True)", "values, counts = np.unique(y[test], return_counts=True)",
     "tests/test_probe.py"),
    # issue 21: a wrong Laplace, each killed by tests/test_bayes.py alone
    ("Laplace: Hessian scaled by sqrt(n)", "mcdo/bayes/laplace.py", "else self.config.multiplier) * self.factors.n)",
     "else self.config.multiplier) * math.sqrt(self.factors.n))", "tests/test_bayes.py"),
    ("Laplace: Hessian scaled by n", "mcdo/bayes/kfac.py", "return self.A / self.n, self.B / self.n",
     "return self.A / self.n, self.B", "tests/test_bayes.py"),
    ("Laplace: an extra factor of the number of classes", "mcdo/bayes/kfac.py",
     "return scale**2 * (_weighted_gram(p, y) - yp[:, :, None] * yp[:, None, :])",
     "return y.shape[0] * scale**2 * (_weighted_gram(p, y) - yp[:, :, None] * yp[:, None, :])", "tests/test_bayes.py"),
    ("Laplace: logit_scale^2 missing", "mcdo/bayes/kfac.py", "return scale**2 * _weighted_gram(sig * (1 - sig), y)",
     "return _weighted_gram(sig * (1 - sig), y)", "tests/test_bayes.py"),
    ("Laplace: no normalisation Jacobian", "mcdo/bayes/kfac.py",
     "return j @ logit_hessian(e, targets, likelihood, scale, bias) @ j",
     "return logit_hessian(e, targets, likelihood, scale, bias)", "tests/test_bayes.py"),
    ("BayesVLM evidence with a 1/2 on the log-determinant", "mcdo/bayes/laplace.py",
     "return -0.5 * lam * w2 + 0.5 * d * torch.log(lam) - log_det",
     "return -0.5 * lam * w2 + 0.5 * d * torch.log(lam) - 0.5 * log_det", "tests/test_bayes.py"),
    ("probit with pi/3", "mcdo/bayes/probcosine.py", "torch.sqrt(1 + math.pi / 8 * logit_var)",
     "torch.sqrt(1 + math.pi / 3 * logit_var)", "tests/test_bayes.py"),
    ("SigLIP bias dropped from the probit logits", "mcdo/bayes/probcosine.py",
     "return scale * cos_mean + (bias or 0.0), scale**2 * cos_var", "return scale * cos_mean, scale**2 * cos_var",
     "tests/test_bayes.py"),

    # issue 22: probes and signatures that could not tell
    ("probe folds re-drawn per model", "mcdo/probe/pipeline.py",
     "comp.results[(model, p)] = cv.cross_validate(model, x, y, splits, p, data.ordinal, alpha)",
     "comp.results[(model, p)] = cv.cross_validate(model, x, y, cv.folds(y, k, seed + len(comp.results)), p, "
     "data.ordinal, alpha)", "tests/test_probe.py"),
    ("concepts: AP threshold 0.5 by default", "mcdo/signatures/measures.py", "threshold: float = 0.9, min_positives",
     "threshold: float = 0.5, min_positives", "tests/test_signatures.py"),
    ("ICL-04 counted at AP 0.5", "mcdo/verify/sources.py", '"ICL-04": dict(ap=0.9, data="Broden")',
     '"ICL-04": dict(ap=0.5, data="Broden")', "tests/test_signatures.py"),
    ("ICL-01 kurtosis level 3", "mcdo/verify/sources.py", '"kurtosis_level": _e("above", 6.0,',
     '"kurtosis_level": _e("above", 3.0,', "tests/test_signatures_pipeline.py"),
    ("ICL-03 keeps 50% of the directions", "mcdo/verify/sources.py", '"ICL-03": dict(keep=0.2),',
     '"ICL-03": dict(keep=0.5),', "tests/test_signatures_pipeline.py"),
    ("timm fast path: the MAP head's keys and values without dropout", "mcdo/fastpath_timm.py",
     'kv = self._site(f"{name}.kv", x, "kv")', 'kv = self._lin(f"{name}.kv", x, "kv") * (1.0 - self.ctl.p)',
     "tests/test_fastpath_timm.py"),
    ("timm fast path: layer scale skipped", "mcdo/fastpath_timm.py", 'return x if gamma is None else x * gamma',
     "return x", "tests/test_fastpath_timm.py"),
    ("timm fast path: MAP pools the class token too", "mcdo/fastpath_timm.py",
     'else x[:, self.trunk.num_prefix_tokens:].contiguous())', "else x)", "tests/test_fastpath_timm.py"),
    ("timm fast path: SO400M's tanh GELU run as erf GELU", "mcdo/fastpath_timm.py", '{"GELUTanh": "tanh", "GELU": "none"}',
     '{"GELUTanh": "none", "GELU": "none"}', "tests/test_fastpath_timm.py"),
    ("fast path tiles reuse the first tile's mask keys", "mcdo/fastpath.py",
     "self.ctl.row_keys = None if keys is None else keys[j * b:(j + k) * b]",
     "self.ctl.row_keys = None if keys is None else keys[:k * b]", "tests/test_fastpath_timm.py tests/test_masks.py"),
    ("BayesVLM online update: a label counted once, not update_scale times", "mcdo/bayes/online.py",
     "return Factors(cfg.update_scale * A, cfg.update_scale * B, 1)", "return Factors(A, B, 1)",
     "tests/test_bayes_online.py"),
    ("BayesVLM k-NN pool: Euclidean, the variances dropped", "mcdo/bayes/online.py",
     "return sq + var1.sum(-1)[:, None] + var2.sum(-1)[None, :] - 2 * var1.sqrt() @ var2.sqrt().T", "return sq",
     "tests/test_bayes_online.py"),
    ("BayesVLM online SGD step: plain cosine, the posterior's variance left out", "mcdo/bayes/online.py",
     "mean, _ = cosine_moments(e, var, cls, torch.zeros_like(cls))\n    F.cross_entropy",
     "mean, _ = cosine_moments(e, 0 * var, cls, torch.zeros_like(cls))\n    F.cross_entropy",
     "tests/test_bayes_online.py"),
    ("BayesVLM fine-tuning keeps the last epoch", "mcdo/bayes/online.py", "if loss <= best_loss:", "if True:",
     "tests/test_bayes_online.py"),
    ("published EPIG: pool and target share their logit noise", "mcdo/bayes/online.py",
     "z = torch.randn((k, *mean.shape), dtype=mean.dtype, generator=gen)",
     "z = torch.randn((k, 1, mean.shape[1]), dtype=mean.dtype, generator=torch.Generator().manual_seed(0))",
     "tests/test_bayes_online.py"),
    # issue 23.1-2 and 24.3: a user's model, a user's OOD folders, the chunked world
    ("a user's open_clip model: loss not read off the logit bias", "mcdo/models/user.py",
     'loss = "sigmoid" if getattr(enc.model, "logit_bias", None) is not None else "softmax"', 'loss = "softmax"',
     "tests/test_user_models.py"),
    ("a near / far group averaged over every OOD set", "mcdo/oodbench.py",
     'rows[f"{group} mean"] = {m: float(np.mean([rows[n][m] for n in members])) for m in METRICS}',
     'rows[f"{group} mean"] = {m: float(np.mean([rows[n][m] for n in sets])) for m in METRICS}',
     "tests/test_user_models.py::test_mcdo_ood_on_own_folders_with_near_and_far_groups"),
    ("the world's noise amplitudes drawn from the noise's stream", "mcdo/data/world.py",
     "    amplitude = rng.uniform(0.0, 0.08, n)", "    amplitude = noise_rng.uniform(0.0, 0.08, n)",
     "tests/test_world.py"),
    ("the world's chunks reuse the first chunk's attributes", "mcdo/data/world.py",
     "img[k] = _render(size, shape[k], radius[k],", "img[k] = _render(size, shape[k], radius[:k.stop - k.start],",
     "tests/test_world.py"),
    # issue 24.4: the fast paths as a GPU runs them
    ("the no-sync mask path ignored (masks read back on every device)", "mcdo/masks.py",
     'exact = x.device.type != "cuda" if exact is None else exact', 'exact = x.device.type != "cuda"',
     "tests/test_gpu_readiness.py"),
    ("compile silently eager", "mcdo/fastpath.py",
     'self._step = self._suffix if compile == "off" else functools.partial(_compiled(type(self), compile), self)',
     "self._step = self._suffix", "tests/test_gpu_readiness.py"),
    # issue 23.6: figures
    ("sweep figure: matplotlib's colour cycle instead of the family colours", "mcdo/sweep.py",
     "label=label, **style[key[0]])", "label=label, marker=\"o\")", "tests/test_figures.py"),
    ("sweep figure without its CI bars", "mcdo/sweep.py", "yerr=np.clip(err, 0, None), ", "", "tests/test_figures.py"),
]


UNIT_SUITES = ("tests/test_stats_metrics.py", "tests/test_stats_reliability.py", "tests/test_verify.py",
               "tests/test_sampling.py")


def run(name: str, rel: str, old: str, new: str, tests: str, files_only: bool = False) -> str:
    """Apply one mutant, run its tests, restore. ``files_only``: run whole test files, dropping those that do not
    exist (to score an older checkout of the suite with the same mutants)."""
    path = ROOT / rel
    original = path.read_text() if path.is_file() else ""
    if old not in original:
        return "not applicable"
    selection = tests.split()
    if files_only:
        selection = sorted({t.split("::")[0] for t in selection if (ROOT / t.split("::")[0]).is_file()})
        if not selection:  # the mutant's own tests are newer than this checkout: its unit suites instead
            selection = [t for t in UNIT_SUITES if (ROOT / t).is_file()]
    path.write_text(original.replace(old, new, 1))
    try:
        out = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *selection],
                             cwd=ROOT, capture_output=True, text=True, timeout=1200)
        if out.returncode in (4, 5):  # usage error or no tests collected: nothing was checked
            return "no tests"
        return "killed" if out.returncode != 0 else "SURVIVED"
    finally:
        path.write_text(original)


def main() -> int:
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still restores the mutated file (finally)
    ap = argparse.ArgumentParser()
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-k", help="only mutants whose name contains this")
    ap.add_argument("--files-only", action="store_true",
                    help="run whole test files, skipping missing ones (to score an older checkout of the suite)")
    args = ap.parse_args()
    chosen = [m for m in MUTANTS if not args.k or args.k in m[0]]
    if args.list:
        for name, rel, *_ in chosen:
            print(f"{rel:32s} {name}")
        return 0
    results = {}
    for m in chosen:
        t0 = time.perf_counter()
        results[m[0]] = run(*m, files_only=args.files_only)
        print(f"{results[m[0]]:15s} {time.perf_counter() - t0:6.0f} s  {m[0]}", flush=True)
    applicable = [v for v in results.values() if v in ("killed", "SURVIVED")]
    killed = sum(v == "killed" for v in applicable)
    print(f"mutation score: {killed}/{len(applicable)} killed")
    return 0 if killed == len(applicable) else 1


if __name__ == "__main__":
    sys.exit(main())
