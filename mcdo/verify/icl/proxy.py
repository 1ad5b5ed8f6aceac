"""Robustness-signature claims on the proxies (tier ``proxy``).

Setting, fixed before any result was seen: the zero-shot softmax proxy (the CLIP analogue) at seeds 0, 1, 2
against the same proxy fine-tuned on the world's colour classes with a supervised head (``models.finetune``: 300
steps of cross-entropy from the zero-shot head, whole image tower trained), both read on held-out world images
(seed 7) as unit-norm embeddings.
ICL-01: mean activation kurtosis (per image across the 64 components, the paper's Eq. 2 as we read it), zero-shot
minus fine-tuned with a paired bootstrap CI over images, and the zero-shot level against ">> 3" read as at least
twice a Gaussian's (> 6).
ICL-03: the zero-shot head over colour x shape x size (96 classes, more than the 64 dimensions; measured later:
the prompts compose 8 colours, 6 shapes and 2 sizes, so 99.9% of the head's energy lies in 14 directions and the
test is weaker than on ImageNet), top-1 after keeping the top 20% of directions (13 of 64) by importance minus the
full head's, judged against a 1-point drop (the harness's accuracy margin), paired bootstrap CI over images.
t intervals over seeds. Images: 5000, raised from a first run's 2000, which left ICL-03 inconclusive in two seeds
(CI half-width 0.012 against the 0.01 margin; about 3600 images would decide); with 5000 one seed still
straddles the margin and three seeds' t interval is wider than it, so ICL-03 stays a finding.
"""
from __future__ import annotations

import numpy as np

from ...models import load
from ...models.finetune import FinetuneConfig, load_or_finetune
from ...signatures import collect, measures
from ...stats import bootstrap_ci, mean_t_ci
from ..engine import Context, draws, evaluates
from ..records import Record, all_of, decide, threshold
from ..sources import SOURCE
from pathlib import Path

TIER = "proxy"
SETTINGS = dict(loss="softmax", seeds=(0, 1, 2), n_images=5000, data_seed=7,
                kurtosis_level=threshold("ICL-01", "kurtosis_level"), keep=SOURCE["ICL-03"]["keep"],
                accuracy_drop=-threshold("ICL-03", "accuracy_change"), outlier_threshold=10.0)
_MEMO = "icl/proxy/{seed}"  # where a run keeps a seed's results (for the report's figure)


def _profiles(ctx: Context, seed: int) -> dict[str, collect.Profile]:
    """Zero-shot and fine-tuned profiles of one seed (the zero-shot one with the 96-class head's pruning curve)."""
    s = SETTINGS

    def make():
        task = collect.world_composite(s["n_images"], s["data_seed"])
        enc = load(f"proxy-{s['loss']}", seed=seed, progress=ctx.progress)
        ft = load_or_finetune(FinetuneConfig(loss=s["loss"], seed=seed), progress=ctx.progress)
        zs_acts, _ = collect.representations(enc, task.images)
        ft_acts, _ = collect.representations(ft, task.images)
        head = collect.text_head(enc, task.prompts)
        return {"zero-shot": collect.profile(f"proxy-{s['loss']} seed {seed}", task, zs_acts, head, task.labels,
                                             threshold=s["outlier_threshold"]),
                "fine-tuned": collect.profile(f"proxy-{s['loss']} seed {seed} fine-tuned", task, ft_acts, None,
                                              task.labels, threshold=s["outlier_threshold"])}

    return ctx.cached(_MEMO.format(seed=seed), make)



def kurtosis_verdict(gap_ci: tuple[float, float], level_ci: tuple[float, float], tier: str) -> str:
    """ICL-01's two parts, by the registry: zero-shot kurtosis above fine-tuned, and its level above the
    threshold read for '>> 3'."""
    return all_of(decide("ICL-01", "kurtosis_gap", gap_ci, tier).verdict,
                  decide("ICL-01", "kurtosis_level", level_ci, tier).verdict)


@evaluates("ICL-01", TIER)
def icl01(ctx: Context) -> list[Record]:
    """Kurtosis zero-shot minus fine-tuned (> 0) and the zero-shot level (> 6) per seed, and across seeds."""
    s, out, diffs, levels = SETTINGS, [], [], []
    for seed in s["seeds"]:
        p = _profiles(ctx, seed)
        zs, ft = p["zero-shot"].kurtosis, p["fine-tuned"].kurtosis
        diff = float(zs.mean() - ft.mean())
        ci = bootstrap_ci(lambda a, b: float(a.mean() - b.mean()), zs, ft, n_boot=ctx.n_boot, seed=ctx.seed)
        lvl = bootstrap_ci(lambda a: float(a.mean()), zs, n_boot=ctx.n_boot, seed=ctx.seed)
        verdict = kurtosis_verdict(ci, lvl, TIER)
        diffs.append(diff)
        levels.append(float(zs.mean()))
        out.append(Record("ICL-01", TIER, f"proxy-{s['loss']} seed {seed}", verdict, diff, ci,
                          expected=f"kurtosis zero-shot - fine-tuned > 0 and zero-shot > {s['kurtosis_level']:g}",
                          reason=f"mean kurtosis zero-shot {zs.mean():.2f} [{lvl[0]:.2f}, {lvl[1]:.2f}], fine-tuned "
                                 f"{ft.mean():.2f} (Gaussian: 3); per dimension across images "
                                 f"{p['zero-shot'].kurtosis_dimension:.2f} vs "
                                 f"{p['fine-tuned'].kurtosis_dimension:.2f}; "
                                 f"outliers zero-shot: {p['zero-shot'].outliers.summary()}; fine-tuned: "
                                 f"{p['fine-tuned'].outliers.summary()}; paired bootstrap CIs over images",
                          config=dict(s, seeds=list(s["seeds"]), task=p["zero-shot"].task,
                                      finetune=vars(FinetuneConfig(loss=s["loss"], seed=seed))),
                          details={"kurtosis": {"zero-shot": float(zs.mean()), "fine-tuned": float(ft.mean()),
                                                "zero-shot_ci": lvl},
                                   "max_median": {k: v.outliers.ratio for k, v in p.items()},
                                   "per_input_max_mean": {k: float(np.median(v.per_input_ratio))
                                                          for k, v in p.items()}}))
    ci, lvl = mean_t_ci(diffs), mean_t_ci(levels)
    out.append(Record("ICL-01", TIER, f"proxy-{s['loss']} across seeds",
                      kurtosis_verdict(ci, lvl, TIER),
                      float(np.mean(diffs)), ci, expected="mean over seeds of the two parts",
                      reason=f"kurtosis difference per seed {', '.join(f'{d:+.3f}' for d in diffs)}; zero-shot level "
                             f"{', '.join(f'{v:.2f}' for v in levels)} (t interval [{lvl[0]:.2f}, {lvl[1]:.2f}]); "
                             f"t intervals over {len(diffs)} seeds", config=dict(seeds=list(s["seeds"]))))
    return out


def drop_verdict(ci: tuple[float, float], tier: str = TIER) -> str:
    """Accuracy kept: the whole CI of (pruned - full) above the registry's -drop; not kept: the whole CI below."""
    return decide("ICL-03", "accuracy_change", ci, tier).verdict


@evaluates("ICL-03", TIER)
def icl03(ctx: Context) -> list[Record]:
    """Top-1 with the top 20% of the zero-shot head's directions minus the full head's, per seed and across."""
    s, out, changes = SETTINGS, [], []
    for seed in s["seeds"]:
        p = _profiles(ctx, seed)["zero-shot"]
        d = len(p.outliers.mean_abs)
        k = measures.kept_directions(s["keep"], d)
        kept, full = p.correct[s["keep"]].astype(float), p.correct[1.0].astype(float)
        change = float(kept.mean() - full.mean())
        ci = bootstrap_ci(lambda a, b: float(a.mean() - b.mean()), kept, full, n_boot=ctx.n_boot, seed=ctx.seed)
        changes.append(change)
        alt = float(p.correct_alt[s["keep"]].mean() - p.correct_alt[1.0].mean())
        out.append(Record("ICL-03", TIER, f"proxy-{s['loss']} seed {seed}", drop_verdict(ci),
                          change, ci, expected=f"top-1 change >= -{s['accuracy_drop']:g} keeping {k} of {d} directions",
                          reason=f"top-1 full head {full.mean():.3f} -> {kept.mean():.3f} with the top {k} of {d} "
                                 f"directions (they carry {100 * p.importance[:k].sum():.1f}% of the importance, the "
                                 f"top one {100 * p.importance[0]:.1f}%, and {100 * p.energy(k):.2f}% of the head's "
                                 "squared singular values: the 96 prompts compose 8 colours, 6 shapes and 2 sizes, "
                                 "so the head is close to rank 14 and 13 directions prune little of it); curve: "
                                 + ", ".join(f"{100 * f:g}% {a:.3f}" for f, a in p.accuracy.items())
                                 + f"; paired bootstrap CI over images. Importance read as S_i E|<v_i, h>| (ours); "
                                 f"read as S_i |E<v_i, h>| the change is {alt:+.4f}",
                          config=dict(s, seeds=list(s["seeds"]), task=p.task, kept=k, dims=d,
                                      importance="S_i E|<v_i, h>|"),
                          details={"curve": {str(f): a for f, a in p.accuracy.items()},
                                   "importance": p.importance.round(5).tolist(),
                                   "change_abs_mean_reading": alt}))
    ci = mean_t_ci(changes)
    out.append(Record("ICL-03", TIER, f"proxy-{s['loss']} across seeds", drop_verdict(ci),
                      float(np.mean(changes)), ci, expected=f"mean top-1 change >= -{s['accuracy_drop']:g}",
                      reason=f"top-1 change per seed {', '.join(f'{c:+.4f}' for c in changes)}; t interval over "
                             f"{len(changes)} seeds", config=dict(seeds=list(s["seeds"]))))
    return out


@draws("pruning")
def pruning_figure(ctx: Context, out: Path) -> tuple[str, str] | None:
    """The zero-shot proxies' pruning curves over the 96-class head (ICL-03)."""
    from ...signatures.figures import pruning_curves

    curves = {p["zero-shot"].model: p["zero-shot"].accuracy for seed in SETTINGS["seeds"]
              if (p := ctx.memo.get(_MEMO.format(seed=seed))) is not None}
    if not curves:
        return None
    pruning_curves(curves, out / "pruning_proxy.png", title="Privileged directions on the proxies (ICL-03)")
    return "Pruning curve of the zero-shot head, proxies (ICL-03)", "pruning_proxy.png"
