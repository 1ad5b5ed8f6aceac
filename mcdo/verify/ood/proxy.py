"""OOD claims on the proxy tier: MCM softmax vs sigmoid on the sigmoid proxy, world in, bundled real images
out (OOD-07, OOD-08)."""
from __future__ import annotations

import numpy as np

from ... import ood
from ..engine import Context, draws, evaluates
from ..records import NOT_REPRODUCED, REPRODUCED, Record, decide
from pathlib import Path
from ... import figures


_MEMO = "ood/proxy-sigmoid/{seed}"  # where a run keeps the sigmoid proxy's cosines


def _ood_sets(size: int = 32, n: int = 400, seed: int = 0) -> dict[str, np.ndarray]:
    """Real images bundled with installed packages, as OOD sets for the world: [N, 3, size, size] in [0, 1]."""
    from skimage import data as skd
    from skimage import transform
    from sklearn.datasets import load_digits

    from ...data.bundled import to_rgb

    rng = np.random.default_rng(seed)
    digits = load_digits().images[:n] / 16.0
    digits = np.stack([transform.resize(d, (size, size), order=0) for d in digits])
    out = {"digits (sklearn)": np.repeat(digits[:, None], 3, axis=1)}

    def crops(names, count):
        ims = [to_rgb(getattr(skd, nm)()) for nm in names]
        res = []
        for i in range(count):
            im = ims[i % len(ims)]
            s = int(rng.integers(48, min(im.shape[:2])))
            y, x = rng.integers(0, im.shape[0] - s + 1), rng.integers(0, im.shape[1] - s + 1)
            res.append(transform.resize(im[y:y + s, x:x + s], (size, size), anti_aliasing=True))
        return np.stack(res).transpose(0, 3, 1, 2)

    out["textures (skimage)"] = crops(("brick", "grass", "gravel"), n)
    out["photos (skimage)"] = crops(("astronaut", "coffee", "chelsea", "rocket", "cat", "hubble_deep_field"), n)
    return {k: v.astype(np.float32) for k, v in out.items()}


def _proxy_ood_table(ctx: Context, seed: int) -> dict:
    import torch

    from ...data import world
    from ...models import load
    from ...models.proxy import normalise_images
    from ..proxy_measure import SETTINGS

    def make():
        enc = load("proxy-sigmoid", seed=seed, progress=ctx.progress)
        with torch.no_grad():
            cls = torch.stack([enc.encode_text(enc.tokenizer(world.class_prompts(t))) for t in world.TEMPLATES])
            cls = cls / cls.norm(dim=-1, keepdim=True)
            cls = cls.mean(0)
            cls = (cls / cls.norm(dim=1, keepdim=True)).double().numpy()

            def cosines(imgs):
                f = enc.encode_image(normalise_images(imgs)).double().numpy()
                return (f / np.linalg.norm(f, axis=1, keepdims=True)) @ cls.T

            cos_id = cosines(world.generate(SETTINGS["n_images"], seed=SETTINGS["data_seed"]).images)
            sets = {name: cosines(imgs) for name, imgs in ctx.cached("ood/bundled", _ood_sets).items()}
        return dict(scale=enc.logit_scale, bias=enc.logit_bias, cos_id=cos_id, sets=sets)

    return ctx.cached(_MEMO.format(seed=seed), make)


def _proxy_result(ctx: Context, seed: int):
    from ...oodbench import from_cosines

    t = _proxy_ood_table(ctx, seed)
    return from_cosines(f"proxy-sigmoid seed {seed}", t["cos_id"], t["sets"], t["scale"], t["bias"])


@evaluates("OOD-07", "proxy")
def ood07(ctx: Context) -> list[Record]:
    """Sigmoid-loss proxy: sigmoid MCM (scale and bias kept) against softmax MCM, mean AUROC over OOD sets."""
    from ..proxy_measure import SETTINGS

    from ...oodbench import sigmoid_rank_note

    out = []
    for seed in SETTINGS["seeds"]:
        res = _proxy_result(ctx, seed)
        g, ci = res.gap_ci("sigmoid", "softmax", n_boot=ctx.n_boot // 5, seed=ctx.seed)
        table = res.table()
        mean = {sc: table[sc]["mean"]["auroc"] for sc in ("sigmoid", "softmax")}
        d = decide("OOD-07", "gap", ci, "proxy")
        out.append(Record("OOD-07", "proxy", res.model, d.verdict, g, ci,
                          expected=f"mean AUROC(sigmoid MCM) - mean AUROC(softmax MCM) {d.expected}",
                          reason=f"mean AUROC sigmoid {mean['sigmoid']:.3f} vs softmax {mean['softmax']:.3f}: gap "
                                 f"{g:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}] (paired bootstrap over images within each "
                                 f"set); ID: world test split, OOD: {', '.join(res.sets)}; "
                                 + sigmoid_rank_note(table),
                          config=dict(model="proxy-sigmoid", seed=seed, temperature_softmax=1.0,
                                      logit_scale=res.scale, logit_bias=res.bias),
                          details={"table": {sc: table[sc] for sc in ("softmax", "sigmoid")}}))
    return out


@evaluates("OOD-08", "proxy")
def ood08(ctx: Context) -> list[Record]:
    """Per-set AUROC / FPR95 / AUPR with the average, for every scoring, on the sigmoid proxy (seed 0)."""
    res = _proxy_result(ctx, 0)
    table = res.table()
    cells = [v for per in table.values() for m in per.values() for v in m.values()]
    complete = all(np.isfinite(cells)) and len(cells) == len(ood.OOD_SCORES) * (len(res.sets) + 1) * 3
    lines = "; ".join(f"{sc}: " + ", ".join(f"{name} AUROC {m['auroc']:.3f} FPR95 {m['fpr95']:.3f}"
                                             for name, m in per.items() if name != "mean")
                      + f" (mean AUROC {per['mean']['auroc']:.3f})" for sc, per in table.items())
    m, ci = res.mean_auroc_ci("sigmoid", n_boot=ctx.n_boot // 5, seed=ctx.seed)
    return [Record("OOD-08", "proxy", res.model, REPRODUCED if complete else NOT_REPRODUCED, m, ci,
                   expected="a complete per-set table for every scoring (measured: mean AUROC of sigmoid MCM, "
                   "bootstrap CI over images within each set)", reason=lines,
                   config=dict(model="proxy-sigmoid", seed=0), details={"table": table})]


@draws("ood scores")
def ood_scores_figure(ctx: Context, out: Path) -> tuple[str, str] | None:
    """Score distributions, ID against each OOD set, softmax vs sigmoid MCM, for every OOD pass of the run."""
    from ...oodbench import from_cosines
    from .gpu import computed_benches

    results = []
    t = ctx.memo.get(_MEMO.format(seed=0))
    if t:
        results.append(("proxy-sigmoid seed 0", from_cosines("proxy", t["cos_id"], t["sets"], t["scale"], t["bias"])))
    results += computed_benches(ctx)
    if not results:
        return None
    plt = figures.pyplot()
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
    return figures.save(fig, out / "ood_scores.png", "OOD score distributions, softmax vs sigmoid MCM")
