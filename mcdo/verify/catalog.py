"""The claim registry: every claim of CLAIMS.md, as data.

Each entry says what the seed claims, the value it expects, how a measurement
is compared with it, on which tiers it can be checked and what it needs. The
code that evaluates a (claim, tier) lives in the evaluator modules; a pair with
no evaluator is reported as ``skipped: not implemented``.

``FINDINGS`` lists the (claim, tier) pairs this project has measured NOT to
reproduce, with the measured value. ``pytest claims`` marks them
``xfail(strict=True)`` so that a change of outcome either way turns a run red.
"""
from __future__ import annotations

from enum import StrEnum
from dataclasses import asdict, dataclass, field

SEEDS = {
    "MCD": "000_14f6f271df85fef3.txt",
    "OOD": "001_154a4dc0520839e8.txt",
    "BVL": "002_5d4bfffa7b7aa4f3.txt",
    "ICL": "003_5d32b214d0b6d295.txt",
    "PRB": "004_8d9cb528b352dade.txt",
}
SEED_TITLES = {
    "MCD": "MC dropout on CLIP vs SigLIP2",
    "OOD": "MCM softmax vs sigmoid on SigLIP",
    "BVL": "BayesVLM post-hoc Laplace",
    "ICL": "Robustness signatures of CLIP",
    "PRB": "SigLIP vs CLIP frozen-feature probes",
}
class Tier(StrEnum):
    """Where a claim is checked: pure statistics, real architectures, recorded measurements, the embedded proxies,
    or real weights on a GPU."""

    MATH = "math"
    ARCH = "arch"
    RECORDED = "recorded"
    PROXY = "proxy"
    GPU = "gpu"


class Comparison(StrEnum):
    """How a claim's measurement meets its expectation."""

    VALUE = "value"
    DIRECTION = "direction"
    GATE = "gate"
    IDENTITY = "identity"
    EXACT = "exact"
    TABLE = "table"
    VERSION = "version"
    RATIO = "ratio"


TIERS = tuple(t.value for t in Tier)
COMPARISONS = tuple(c.value for c in Comparison)


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    expected: str
    comparison: str
    tiers: tuple[str, ...]
    expected_value: float | None = None
    needs: dict = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.id.split("-")[0]

    @property
    def seed(self) -> str:
        return SEEDS[self.family]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["seed"] = self.seed
        return d


def _c(id, statement, expected, comparison, tiers, value=None, **needs) -> Claim:
    """One claim; an unknown comparison or tier is an error naming the choices (never an ``assert``, which
    ``python -O`` removes)."""
    try:
        comparison = Comparison(comparison)
        tiers = tuple(Tier(t) for t in tiers.split())
    except ValueError as e:
        raise ValueError(f"{id}: {e}; comparisons {COMPARISONS}, tiers {TIERS}") from None
    return Claim(id, statement, expected, comparison, tiers, value, needs)


_MCD_GPU = dict(p=0.01, T=64, trials=10, n_images=500, data="ImageNet-1k val")
CLAIMS: tuple[Claim, ...] = (
    _c("MCD-01", "inject_uniform_linear_dropout(p=0.01) wraps ~60 linears of a ViT-B vision tower (12 blocks x 5)",
       "~60; wrapped and firing sites per model", "exact", "arch", 60, models=["ViT-B-32", "ViT-B-16-SigLIP2"]),
    _c("MCD-02", "SE of a variance from n=64 normal samples is Var*sqrt(2/63)=0.178 Var; over 512 independent dims 0.8%",
       "0.178, 0.008", "value", "math", 0.178),
    _c("MCD-03", "CLIP ViT-B-32 (openai), p=0.01, T=64: SNR of trace_pre across trials", "1.0", "value",
       "recorded gpu", 1.0, model="clip-vit-b-32", **_MCD_GPU),
    _c("MCD-04", "CLIP ViT-B-32: pairwise Spearman between trials", "0.49", "value", "recorded gpu", 0.49,
       model="clip-vit-b-32", **_MCD_GPU),
    _c("MCD-05", "SigLIP2 ViT-B-16 (webli): SNR of trace_pre across trials", "15.0", "value", "recorded gpu", 15.0,
       model="siglip2-vit-b-16", **_MCD_GPU),
    _c("MCD-06", "SigLIP2 ViT-B-16: pairwise Spearman between trials", "0.93", "value", "recorded gpu", 0.93,
       model="siglip2-vit-b-16", **_MCD_GPU),
    _c("MCD-07", "reliability gates (Spearman>=0.80, ICC>=0.75, SNR>=2.0): CLIP fails, SigLIP2 passes",
       "CLIP fail, SigLIP2 pass", "gate", "recorded proxy gpu", **_MCD_GPU, user_models="gpu"),
    _c("MCD-08", "CLIP: Spearman(uncertainty, zero-shot entropy)", "0.25 (N=2000)", "value", "recorded proxy gpu", 0.25,
       model="clip-vit-b-32", n_images=2000),
    _c("MCD-09", "SigLIP2: Spearman(uncertainty, entropy) ~ 0", "~0", "direction", "proxy gpu", 0.0),
    _c("MCD-10", "SigLIP2: Spearman(uncertainty, centroid distance 1-cos(f, mean f))", "0.24", "value", "proxy gpu",
       0.24),
    _c("MCD-11", "CLIP blur ablation: fraction of blurred images with higher uncertainty; Wilcoxon p; mean change",
       "80%, p=5e-43, +29%", "value", "recorded proxy gpu", 0.80, degradation="blur_r5", n_images=500),
    _c("MCD-12", "SigLIP2 heavy blur: fraction with lower uncertainty; mean change", "75.6%, -10%", "value",
       "recorded proxy gpu", 0.756, degradation="blur_r15", n_images=500),
    _c("MCD-13", "per-image dropout covariance: CLIP has higher effective rank than SigLIP2", "direction",
       "direction", "proxy gpu"),
    _c("MCD-14", "reliability figures agree: with two trials ICC ~ Spearman ~ SNR/(1+SNR) for Gaussian scores",
       "consistency (1.0 -> ~0.5; 15 -> ~0.94)", "value", "math recorded", 0.0),
    _c("MCD-15", "trial noise of the trace falls as 1/T, so SNR grows ~linearly in T; the T to pass the gates "
       "can be predicted from a short run", "SNR(T) ~ T", "value", "math recorded", 1.0),
    _c("MCD-16", "SigLIP2 loads through open_clip by default; MCDO_SIGLIP2_BACKEND=hf forces transformers; "
       "same architecture and feature dimension", "equal dims", "exact", "arch gpu", model="siglip2-vit-b-16"),
    _c("MCD-17", "the CLIP/SigLIP2 difference is caused by the loss: in a matched pair differing only in loss, the "
       "sigmoid model's dropout variance is more reliable and less tied to entropy", "direction", "direction",
       "proxy"),
    _c("MCD-18", "uncertainty predicts misclassification: AUROC(trace_pre, error) above chance for CLIP",
       "> 0.5 (recorded work: 0.57)", "direction", "recorded proxy gpu", 0.5),
    # OOD: MCM softmax vs sigmoid on SigLIP
    _c("OOD-01", "softmax is translation invariant: SigLIP's logit_bias leaves softmax-MCM unchanged; sigmoid-MCM "
       "changes", "identity", "identity", "math"),
    _c("OOD-02", "forced winner: max softmax probability >= 1/K for any input; all sigmoid probabilities can be ~0",
       "identity", "identity", "math"),
    _c("OOD-03", "CLIP ViT-B-16: ImageNet-1k zero-shot top-1", "68.3%", "value", "gpu", 0.683),
    _c("OOD-04", "CLIP ViT-B-16 softmax MCM, ImageNet-1k vs iNaturalist/SUN/Places/Textures: mean AUROC",
       "85.2% (MCM paper: 90.77)", "value", "gpu", 0.852),
    _c("OOD-05", "SigLIP ViT-B-16: ImageNet-1k zero-shot top-1", "75.1%", "value", "gpu", 0.751),
    _c("OOD-06", "SigLIP ViT-B-16 softmax MCM: mean AUROC", "86.5%", "value", "gpu", 0.865),
    _c("OOD-07", "SigLIP ViT-B-16 sigmoid MCM (scale and bias kept): mean AUROC, and it beats softmax MCM",
       "89.8%, +3.3 points", "direction", "proxy gpu", 0.898),
    _c("OOD-08", "per-set FPR95 and AUROC are reported for each OOD set, with the average, for every model and "
       "scoring", "table", "table", "gpu proxy"),
    # BVL: BayesVLM
    _c("BVL-01", "ProbCosine: closed-form mean and variance of the cosine between Gaussian embeddings match Monte "
       "Carlo", "agreement within MC error", "value", "math"),
    _c("BVL-02", "the Laplace approximation recovers the exact posterior on a linear-Gaussian problem", "agreement",
       "value", "math"),
    _c("BVL-03", "BayesVLM lowers zero-shot ECE against the deterministic model while keeping accuracy",
       "ECE down, accuracy within 1 point (Food-101 CLIP B/32: ECE 0.0387 -> 0.0083)", "direction",
       "recorded proxy gpu"),
    _c("BVL-04", "minimal overhead: uncertainty-aware inference costs little over deterministic inference",
       "ratio, benchmarked", "ratio", "proxy gpu"),
    _c("BVL-05", "a Hessian estimated on a proxy data set still improves calibration", "direction", "direction",
       "proxy gpu"),
    _c("BVL-06", "active learning with BALD / EPIG on BayesVLM uncertainty beats random selection at equal labels",
       "direction", "direction", "proxy gpu"),
    # ICL: robustness signatures
    _c("ICL-01", "zero-shot CLIP representations have activation kurtosis >> 3; fine-tuned / supervised ~3",
       "direction", "direction", "proxy gpu", 3.0),
    _c("ICL-02", "outlier features: a few dimensions have activations orders of magnitude above average",
       "max/median >= 100", "direction", "gpu", 100.0),
    _c("ICL-03", "privileged directions: keeping the top 20% SVD directions of the zero-shot head keeps accuracy",
       "small accuracy drop", "direction", "proxy gpu"),
    _c("ICL-04", "zero-shot models encode 400-700 unique concepts (Broden) vs 300-600 fine-tuned",
       "needs Broden", "value", "gpu", data="Broden"),
    # PRB: probes
    _c("PRB-01", "embedding dims: CLIP ViT-L-14-336 = 768, SigLIP SO400M-14 = 1152; resolutions 336/384/378",
       "exact", "exact", "arch"),
    _c("PRB-02", "parameter counts: CLIP ViT-L/14 ~428M; SigLIP SO400M ~400M (towers counted stated)", "approx",
       "value", "arch"),
    _c("PRB-03", "SigLIP2 needs open-clip-torch >= 2.31.0 and timm >= 1.0.15", "version check", "version", "arch"),
    _c("PRB-04", "frozen SigLIP / SigLIP2 features beat CLIP under the same probe (Ridge alpha=6, SVC, 10-fold "
       "stratified CV, paired and corrected t-tests)", "SigLIP > CLIP", "direction", "proxy gpu"),
    _c("PRB-05", "ImageNet zero-shot: CLIP L/14 ~75.5%, SigLIP SO400M-14-384 ~83.1%, SigLIP2 SO400M ~84%", "values",
       "value", "gpu"),
)

BY_ID: dict[str, Claim] = {c.id: c for c in CLAIMS}


@dataclass(frozen=True)
class Margin:
    """How far a measured value may sit from the seed's and still mean the same thing for the claim: a value
    claim is reproduced when its whole CI lies within ``expected +- margin``, not reproduced when the whole CI lies
    outside it, inconclusive otherwise (too little data to tell)."""

    size: float
    relative: bool  # size is a fraction of the expected value
    why: str

    def half_width(self, expected: float) -> float:
        return self.size * abs(expected) if self.relative else self.size

    def describe(self, expected: float) -> str:
        return (f"+-{100 * self.size:g}%" if self.relative else f"+-{self.size:g}") + f" ({self.why})"


_SNR = Margin(0.20, True, "SNR within 20%: the T a gate needs scales with 1/SNR, so 20% moves it by 20% and no gate "
                          "outcome of the claim changes")
_AGREEMENT = Margin(0.05, False, "between-trial agreement within 0.05: the gates sit 0.05 or more from both values")
_CORRELATION = Margin(0.10, False, "a correlation with a covariate within 0.1, Cohen's 'small' effect: differences "
                                   "below it do not change what the correlation says")
_FRACTION = Margin(0.05, False, "a share of images within 5 points")
_ACCURACY = Margin(0.01, False, "top-1 or AUROC within 1 point: preprocessing and prompt details move them that much")
_CONSISTENCY = Margin(0.05, False, "figures agreeing within 0.05, the claim's own '~' precision")
# one margin per value claim, with what a difference would have to be to matter for the claim
MARGINS: dict[str, Margin] = {
    "MCD-01": Margin(5.0, False, "one pooling head's worth of extra sites beside the 12 blocks x 5"),
    "MCD-02": Margin(0.05, True, "closed forms quoted to the seed's digits: '0.8%' has one (the exact value is "
                                 "0.787%), so within 5% of each value"),
    "MCD-03": _SNR, "MCD-05": _SNR,
    "MCD-04": _AGREEMENT, "MCD-06": _AGREEMENT,
    "MCD-08": _CORRELATION, "MCD-09": _CORRELATION, "MCD-10": _CORRELATION,
    "MCD-11": _FRACTION, "MCD-12": _FRACTION,
    "MCD-14": _CONSISTENCY,
    "MCD-15": Margin(0.20, True, "predicted over measured SNR within 20%, the SNR margin"),
    "OOD-03": _ACCURACY, "OOD-04": _ACCURACY, "OOD-05": _ACCURACY, "OOD-06": _ACCURACY, "OOD-07": _ACCURACY,
    "PRB-02": Margin(0.10, True, "parameter counts are quoted by size class ('~400M'): within 10%, for every model "
                                 "of the table"),
    "PRB-05": _ACCURACY,
    "BVL-03": _ACCURACY, "BVL-05": _ACCURACY,
    ("BVL-03", "lambda_image"): Margin(0.01, True, "the authors' optimiser ends within about one Adam step (lr "
                                                   "1e-2 in log lambda) of the optimum: 1%"),
    ("BVL-03", "lambda_text"): Margin(0.01, True, "the authors' optimiser ends within about one Adam step (lr 1e-2 "
                                                  "in log lambda) of the optimum: 1%"),
    ("BVL-03", "ece20"): Margin(0.01, False, "an ECE within 1 point: the notebook's bootstrap spread on 25,250 "
                                             "images is about 0.3 points"),
    ("BVL-03", "nlpd"): Margin(0.02, False, "NLPD within 0.02 nats: the probit's change is 0.024"),
    ("BVL-03", "baseline_ece20"): Margin(0.01, False, "the deterministic model's ECE within 1 point"),
    "BVL-01": Margin(0.05, False, "ProbCosine's error as a share of what it estimates (the mean's in units of the "
                                  "cosine's s.d., the variance's relative to it): within 5% neither moves a probit "
                                  "probability by more than about 1%"),
    "ICL-04": Margin(150.0, False, "the paper's ranges of unique concepts, 400-700 zero-shot and 300-600 fine-tuned, "
                                   "each its centre +- 150"),
    "BVL-02": Margin(1e-6, False, "float64 agreement: a derivation error shows at O(1), round-off at 1e-12"),
}


# tiers this registry runs beyond CLAIMS.md's, with why (tests/test_verify.py holds the two to this)
EXTRA_TIERS: dict[str, dict[str, str]] = {
    "BVL-03": {"recorded": "issue 21: BayesVLM's published KFAC factors for CLIP B-32 check the notebook's posterior "
                           "(its prior precisions) without weights"},
}


def margin(claim_id: str, figure: str | None = None) -> Margin:
    """The equivalence margin of a value claim, or of one of its figures where that has its own (a clear error
    for a claim that has none)."""
    if figure is not None and (claim_id, figure) in MARGINS:
        return MARGINS[(claim_id, figure)]
    if claim_id not in MARGINS:
        raise KeyError(f"{claim_id} has no equivalence margin in the registry (catalog.MARGINS)")
    return MARGINS[claim_id]

# (claim, tier) -> what the measurement means, for claims measured NOT to reproduce on that tier. The figures
# themselves (verdict, value and CI per model) are data in findings.json, written from a run's records by
# ``python -m mcdo.verify.findings reports/claims.json`` and checked against every fresh run (mcdo.verify.findings);
# the text a test and the report show is generated from both.
FINDINGS: dict[tuple[str, str], str] = {
    ("MCD-01", "arch"): (
        "firing sites per ViT-B tower are not ~60: on CLIP ViT-B-32 the attn.out_proj wrappers never fire "
        "(nn.MultiheadAttention calls it functionally) and the fused QKV is no module; SigLIP2 ViT-B-16 has 4 "
        "linears per block (fused qkv) plus 5 in the MAP head"
    ),
    # proxy tier: the matched pair (3 seeds per loss, p=0.01, T=64, 5 trials, 400 world test images)
    ("MCD-07", "proxy"): "both losses fail the gate at the seed's p=0.01, T=64: 'SigLIP2 passes' does not reproduce in "
                         "the matched pair (the softmax model's expected fail does)",
    ("MCD-08", "proxy"): "Spearman(trace_pre, entropy) on the softmax proxy is not positive in every seed",
    ("MCD-09", "proxy"): "Spearman(trace_pre, entropy) on the sigmoid proxy is not shown to be ~0 (within 0.1) in any "
                         "seed",
    ("MCD-10", "proxy"): "Spearman(trace_pre, centroid distance) on the sigmoid proxy: a positive link is shown in one "
                         "seed at most, just clear of 0 and far below the seed's 0.24; the other seeds straddle 0",
    ("MCD-11", "proxy"): "light blur on the softmax proxy raises uncertainty in a majority of images in at most one seed "
                         "(CLIP recorded: 0.80)",
    ("MCD-12", "proxy"): "heavy blur on the sigmoid proxy lowers uncertainty in no clear majority (SigLIP2 recorded: "
                         "0.756)",
    ("MCD-13", "proxy"): "effective rank of the dropout covariance is LOWER for softmax than sigmoid: the opposite of "
                         "the seed's direction",
    ("MCD-17", "proxy"): "loss as cause: the ICC gap sigmoid - softmax and the entropy-rho gap do not show the seed's "
                         "direction consistently across seeds",
    ("MCD-18", "proxy"): "AUROC(trace_pre, error) on the softmax proxy: no seed shows uncertainty predicting errors "
                         "(every interval reaches or falls below 0.5)",
    ("OOD-07", "proxy"): "sigmoid MCM vs softmax MCM on the sigmoid proxy (world in, sklearn digits / skimage textures "
                         "and photos out): sigmoid does not beat softmax",
    ("BVL-01", "math"): "ProbCosine's moments match Monte Carlo for near-orthogonal pairs only: its variance keeps the "
                        "radial part of the embedding noise (which leaves a cosine unchanged), so it overestimates the "
                        "cosine's variance for correlated pairs (cos ~ 0.3: up to ~18%) and by orders of magnitude "
                        "for near-parallel ones",
    ("BVL-03", "proxy"): "the authors' posterior (N = 10 x 20000 pairs, lambda ~ 215) barely moves the proxies' "
                         "predictions in any regime (ECE20 change within +-0.003, mostly inconclusive), even where they "
                         "are overconfident (colour jitter 0.3: confidence - accuracy +0.27 to +0.31); mcdo's "
                         "exact-prior Laplace, ~15x wider, lowers ECE20 by 0.21-0.22 there but raises it by ~0.20 on "
                         "the calibrated unshifted world and on the sigmoid proxy under low contrast",
    ("BVL-05", "proxy"): "with the Hessian from another world, the same: the authors' posterior changes ECE20 by at "
                         "most 0.011 (every interval containing 0, or above it); mcdo's Laplace lowers it by ~0.2 only "
                         "under colour jitter and raises it on the unshifted world (+0.34 to +0.38)",
    ("BVL-06", "proxy"): "in the authors' procedure (targeted k-NN pool, online selection at N = 10 n, AdamW "
                         "fine-tuning) EPIG beats random selection on the softmax proxy, with either estimator, and "
                         "random selection within the targeted pool too; BALD does not decide, and on the sigmoid "
                         "proxy nothing beats random. The chosen inputs' EPIG is 1e-8 nats (the published estimator's "
                         "1e-5 is its own bias): the N = 10 n posterior barely varies the predictions",
    ("ICL-01", "proxy"): "the proxies have no outlier features at all (max/median mean |activation| ~2, no dimension "
                         "above 10x the median) and activation kurtosis ~3 (Gaussian), zero-shot and fine-tuned alike: "
                         "a 64-dimensional model trained on 20000 pairs is below the scale where the paper finds them",
    ("ICL-03", "proxy"): "keeping the top 20% of the zero-shot head's directions (13 of 64, ~98% of the importance) keeps "
                         "top-1 within a point in two seeds, not decidedly in the third, and three seeds' t interval is "
                         "wider than the 1-point margin: inconclusive. A weak test on the proxies: their 96-class head "
                         "composes 8 colours, 6 shapes and 2 sizes and has 99.9% of its energy in 14 directions",
    ("PRB-04", "proxy"): "sigmoid-trained frozen features do not probe the world's ordinal size task better than "
                         "softmax-trained ones: every difference is within a few points, and every corrected-t interval "
                         "straddles 0 or (Ridge, seed 0) only just clears it; across seeds neither probe decides. The "
                         "seed's Ridge (alpha 6 on unit-norm features) scores below the majority class; with alpha "
                         "chosen by nested CV (reported in each Ridge record) seed 0's interval straddles 0 too",
    ("MCD-08", "recorded"): "the recorded raw arrays (CIFAR-100, N=2000, T=32, 1 trial, 36 wrappers) do not give 0.25; "
                            "the seed's 0.25 is from a different run (ImageNet val N=2000, summary only: 0.253)",
}


def get(claim_id: str) -> Claim:
    """The registered claim with this id (a clear error names the known ids)."""
    try:
        return BY_ID[claim_id]
    except KeyError:
        raise KeyError(f"unknown claim id {claim_id!r}; known ids: {', '.join(BY_ID)}") from None


def pairs(tiers: tuple[str, ...] | None = None, family: str | None = None) -> list[tuple[str, str]]:
    """Every (claim id, tier) pair, optionally restricted to some tiers or one family."""
    bad = set(tiers or ()) - set(TIERS)
    if bad:
        raise ValueError(f"unknown tier(s) {sorted(bad)}; choose from {', '.join(TIERS)}")
    return [(c.id, t) for c in CLAIMS for t in c.tiers
            if (tiers is None or t in tiers) and (family is None or c.family == family)]


def user_model_pairs() -> list[tuple[str, str]]:
    """The (claim, tier) pairs that also run on a user's model (``pytest claims -m gpu --model SPEC``): claims about
    a loss family, whose expectation a model of that family inherits (``needs["user_models"]`` names the tier)."""
    return [(c.id, c.needs["user_models"]) for c in CLAIMS if c.needs.get("user_models")]
