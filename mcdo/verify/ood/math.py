"""OOD claims on the math tier: the softmax / sigmoid MCM identities (OOD-01, OOD-02)."""
from __future__ import annotations

import numpy as np

from ... import ood
from ..engine import Context, evaluates
from ..records import NOT_REPRODUCED, REPRODUCED, Record


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
