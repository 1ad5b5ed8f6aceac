"""OOD claims: MCM softmax vs sigmoid (math identities; the proxy pair with bundled real images out)."""
from __future__ import annotations

import numpy as np

from .. import ood
from .engine import Context, evaluates
from .records import NOT_REPRODUCED, REPRODUCED, Record, direction_verdict


@evaluates("OOD-01", "math")
def ood01(ctx: Context) -> list[Record]:
    """Adding a bias to every logit leaves softmax-MCM unchanged and moves sigmoid-MCM."""
    rng = np.random.default_rng(ctx.seed)
    worst_soft, unchanged, saturated, draws = 0.0, 0, 0, 2000
    for _ in range(draws):
        k = int(rng.integers(2, 1000))
        cos = rng.uniform(-1, 1, (4, k))
        scale, bias = float(np.exp(rng.uniform(0, 5))), float(rng.uniform(-20, 20))
        a = ood.softmax_mcm(scale * cos)
        b = ood.softmax_mcm(scale * cos + bias)
        worst_soft = max(worst_soft, float(np.abs(a - b).max()))
        s0, s1 = ood.sigmoid_mcm(cos, scale, 0.0), ood.sigmoid_mcm(cos, scale, bias)
        if np.any(np.minimum(s0, s1) < 1e-12) or np.any(np.maximum(s0, s1) > 1 - 1e-12):
            saturated += 1  # float64 cannot represent the change, whatever the law says
        elif np.any(s0 == s1):
            unchanged += 1
    ok = worst_soft < 1e-12 and unchanged == 0
    return [Record("OOD-01", "math", f"random logits ({draws} draws, K in 2..999)", REPRODUCED if ok else NOT_REPRODUCED,
                   worst_soft, (0.0, worst_soft), expected="softmax-MCM change 0 (float64); sigmoid-MCM changes",
                   reason=f"largest change of softmax-MCM under a bias in [-20, 20]: {worst_soft:.1e}; sigmoid-MCM "
                          f"unchanged in {unchanged} of {draws - saturated} unsaturated draws ({saturated} draws "
                          f"saturate float64 at 0 or 1 and are not counted)", config=dict(draws=draws))]


@evaluates("OOD-02", "math")
def ood02(ctx: Context) -> list[Record]:
    """Max softmax >= 1/K always; with SigLIP's bias, every sigmoid probability can be ~0."""
    rng = np.random.default_rng(ctx.seed)
    margin = np.inf
    for _ in range(2000):
        k = int(rng.integers(2, 1000))
        logits = rng.normal(0, float(np.exp(rng.uniform(-3, 3))), (4, k))
        margin = min(margin, float((ood.softmax_mcm(logits) - 1.0 / k).min()))
    # an image unlike every class (cosines near 0) under SigLIP's initial scale 10 and bias -10
    cos = rng.uniform(-0.05, 0.05, (100, 1000))
    sig_max = float(ood.sigmoid_mcm(cos, 10.0, -10.0).max())
    soft_min = float(ood.softmax_mcm(10.0 * cos).min())
    ok = margin >= -1e-15 and sig_max < 1e-3
    return [Record("OOD-02", "math", "random logits (2000 draws) + near-orthogonal image", REPRODUCED if ok else
                   NOT_REPRODUCED, margin, (margin, margin), expected="min(max softmax - 1/K) >= 0; max sigmoid ~ 0",
                   reason=f"smallest max-softmax minus 1/K over draws: {margin:.2e} (never below 0); an image with "
                          f"|cos| <= 0.05 to all 1000 classes: largest sigmoid {sig_max:.1e} (scale 10, bias -10), "
                          f"while its max softmax is {soft_min:.2e} >= 1/1000", config=dict(draws=2000))]


def _ood_sets(size: int = 32, n: int = 400, seed: int = 0) -> dict[str, np.ndarray]:
    """Real images bundled with installed packages, as OOD sets for the world: [N, 3, size, size] in [0, 1]."""
    from skimage import data as skd
    from skimage import transform
    from sklearn.datasets import load_digits

    from ..data.bundled import to_rgb

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

    from ..data import world
    from ..models import load
    from ..models.proxy import normalise_images
    from .proxy_measure import SETTINGS

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

    return ctx.cached(f"ood/proxy-sigmoid/{seed}", make)


def _proxy_result(ctx: Context, seed: int):
    from ..oodbench import from_cosines

    t = _proxy_ood_table(ctx, seed)
    return from_cosines(f"proxy-sigmoid seed {seed}", t["cos_id"], t["sets"], t["scale"], t["bias"])


@evaluates("OOD-07", "proxy")
def ood07(ctx: Context) -> list[Record]:
    """Sigmoid-loss proxy: sigmoid MCM (scale and bias kept) against softmax MCM, mean AUROC over OOD sets."""
    from .proxy_measure import SETTINGS

    from ..oodbench import sigmoid_rank_note

    out = []
    for seed in SETTINGS["seeds"]:
        res = _proxy_result(ctx, seed)
        g, ci = res.gap_ci("sigmoid", "softmax", n_boot=ctx.n_boot // 5, seed=ctx.seed)
        table = res.table()
        mean = {sc: table[sc]["mean"]["auroc"] for sc in ("sigmoid", "softmax")}
        out.append(Record("OOD-07", "proxy", res.model, direction_verdict(ci, 0.0), g, ci,
                          expected="mean AUROC(sigmoid MCM) - mean AUROC(softmax MCM) > 0",
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
    complete = all(np.isfinite(cells)) and len(cells) == len(ood.SCORES) * (len(res.sets) + 1) * 3
    lines = "; ".join(f"{sc}: " + ", ".join(f"{name} AUROC {m['auroc']:.3f} FPR95 {m['fpr95']:.3f}"
                                             for name, m in per.items() if name != "mean")
                      + f" (mean AUROC {per['mean']['auroc']:.3f})" for sc, per in table.items())
    m, ci = res.mean_auroc_ci("sigmoid", n_boot=ctx.n_boot // 5, seed=ctx.seed)
    return [Record("OOD-08", "proxy", res.model, REPRODUCED if complete else NOT_REPRODUCED, m, ci,
                   expected="a complete per-set table for every scoring (measured: mean AUROC of sigmoid MCM, "
                   "bootstrap CI over images within each set)", reason=lines,
                   config=dict(model="proxy-sigmoid", seed=0), details={"table": table})]
