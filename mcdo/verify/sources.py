"""What each claim's source states, as data: the figures it expects and the configuration it ran.

The registry's other half (``catalog`` holds the statements, tiers and margins). Evaluators measure; they name a
figure (``"snr"``, ``"top1"``, ...) and ``records.decide`` reads its expectation here, so a seed's number is typed
once, in this file, and changing it here changes every verdict that depends on it (tests/test_registry.py).

``EXPECT[claim][figure]`` is one ``Expect`` or a tuple of them, each restricted to some tiers (empty: every tier):

* ``value``: the figure is the source's number, judged by equivalence within the claim's margin (catalog.MARGINS);
* ``above`` / ``below``: a direction, the whole CI on the claimed side of ``value`` (a threshold: 0, chance, ...);
* ``pass`` / ``fail``: a reliability gate expected to pass or fail (thresholds in ``GATE``).

``SOURCE[claim]`` is the configuration the source ran (model and weights, N images, p, T, trials, prompt, bins,
metric convention, data set). Every record's ``departures`` lists the fields where the configuration it ran
differs from it, each with the reason declared in ``DEPARTURES``; an undeclared departure fails the claim's test.
"""
from __future__ import annotations

from dataclasses import dataclass

from enum import StrEnum

from .. import stats as S

class Kind(StrEnum):
    """What a source expects: a value, a bound it lies above or below, a gate it passes or fails."""

    VALUE = "value"
    ABOVE = "above"
    BELOW = "below"
    PASS = "pass"
    FAIL = "fail"


KINDS = tuple(k.value for k in Kind)


@dataclass(frozen=True)
class Expect:
    kind: str
    value: float | None = None
    text: str = ""  # as the source states it
    tiers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown expectation kind {self.kind!r}; choose from {KINDS}")


def _e(kind: str, value: float | None = None, text: str = "", tiers: str = "") -> Expect:
    return Expect(kind, value, text, tuple(tiers.split()))


# the seed's reliability gate (MCD-07, and what MCD-15 predicts): every figure at or above its threshold
GATE: dict[str, float] = {"snr": S.GATE_SNR, "icc": S.GATE_ICC, "spearman": S.GATE_SPEARMAN}

EXPECT: dict[str, dict[str, Expect | tuple[Expect, ...]]] = {
    "MCD-01": {"firing_sites": _e("value", 60, "~60 (12 blocks x 5 linears)")},
    "MCD-02": {"se_1dim": _e("value", 0.178, "0.178 Var"), "se_512dims": _e("value", 0.008, "0.8%")},
    "MCD-03": {"snr": _e("value", 1.0, "SNR ~1.0")},
    "MCD-04": {"spearman": _e("value", 0.49, "pairwise Spearman 0.49")},
    "MCD-05": {"snr": _e("value", 15.0, "SNR ~15")},
    "MCD-06": {"spearman": _e("value", 0.93, "pairwise Spearman 0.93")},
    "MCD-07": {"softmax": _e("fail", text="CLIP fails the gate"), "sigmoid": _e("pass", text="SigLIP2 passes")},
    "MCD-08": {"rho": (_e("value", 0.25, "0.25 (N=2000)", "recorded gpu"),
                       _e("above", 0.0, "positive (the seed: 0.25)", "proxy"))},
    "MCD-09": {"rho": _e("value", 0.0, "~0")},
    "MCD-10": {"rho": (_e("value", 0.24, "0.24", "gpu"), _e("above", 0.0, "positive (the seed: 0.24)", "proxy"))},
    "MCD-11": {"fraction": (_e("value", 0.80, "80% of images more uncertain", "recorded gpu"),
                            _e("above", 0.5, "a majority more uncertain (the seed: 80%)", "proxy")),
               "mean_change": _e("above", 0.0, "+29%")},
    "MCD-12": {"fraction": (_e("value", 0.756, "75.6% of images less uncertain", "recorded gpu"),
                            _e("above", 0.5, "a majority less uncertain (the seed: 75.6%)", "proxy")),
               "mean_change": _e("below", 0.0, "-10%")},
    "MCD-13": {"erank_gap": _e("above", 0.0, "erank(CLIP) > erank(SigLIP2)")},
    "MCD-14": {"gap": _e("value", 0.0, "ICC ~ Spearman ~ SNR/(1+SNR)"),
               "icc_at_snr1": _e("value", 0.5, "SNR 1 -> ~0.5", "math"),
               "icc_at_snr15": _e("value", 0.94, "SNR 15 -> ~0.94", "math")},
    "MCD-15": {"snr_ratio": _e("value", 1.0, "SNR(T) ~ T: predicted / measured = 1"),
               "noise_exponent": _e("value", 1.0, "trial noise ~ 1/T", "math")},
    # mcdo's own reading of "same architecture and feature dimension" on real weights: the two checkpoints are
    # conversions of one model, so each image's features agree in direction (a conversion error, a wrong pooling
    # head or another activation moves the cosine well below this)
    "MCD-16": {"feature_cosine": _e("above", 0.999, "features agree: cosine > 0.999 on every image (mcdo's reading)",
                                    "gpu")},
    "MCD-17": {"icc_gap": _e("above", 0.0, "ICC(sigmoid) > ICC(softmax)"),
               "rho_gap": _e("above", 0.0, "rho_entropy(softmax) > rho_entropy(sigmoid)")},
    "MCD-18": {"auroc": _e("above", 0.5, "> 0.5 (recorded work: 0.57)")},
    "OOD-03": {"top1": _e("value", 0.683, "68.3%")},
    "OOD-04": {"mean_auroc": _e("value", 0.852, "85.2%"),
               "mean_auroc_mcm_paper": _e("value", 0.9077, "MCM paper: 90.77%")},
    "OOD-05": {"top1": _e("value", 0.751, "75.1%")},
    "OOD-06": {"mean_auroc": _e("value", 0.865, "86.5%")},
    "OOD-07": {"gap": _e("above", 0.0, "sigmoid MCM beats softmax MCM (the seed: +3.3 points)"),
               "gap_size": _e("value", 0.033, "+3.3 points", "gpu"),
               "mean_auroc": _e("value", 0.898, "89.8%", "gpu")},
    "BVL-01": {"error": _e("value", 0.0, "agreement within MC error")},
    "BVL-02": {"error": _e("value", 0.0, "agreement")},
    "BVL-03": {"ece_change": _e("below", 0.0, "ECE down (Food-101 CLIP B/32: 0.0387 -> 0.0083)", "proxy gpu"),
               "accuracy_change": _e("value", 0.0, "accuracy kept (0.80083 -> 0.80317)", "proxy gpu"),
               # the public notebook (zeroshot.ipynb): its prior precisions at pseudo-count 10 and its table
               "lambda_image": _e("value", 2997.87548828125, "notebook: lambda_img 2997.875 at pseudo-count 10",
                                  "recorded"),
               "lambda_text": _e("value", 2538.091064453125, "notebook: lambda_txt 2538.091 at pseudo-count 10",
                                 "recorded"),
               "baseline_accuracy": _e("value", 0.80083, "notebook MAP accuracy 0.80083", "gpu"),
               "baseline_ece20": _e("value", 0.03872, "notebook MAP ECE 0.03872 (torchmetrics, 20 bins)", "gpu"),
               "accuracy": _e("value", 0.80317, "notebook BayesVLM accuracy 0.80317", "gpu"),
               "nlpd": _e("value", 0.68084, "notebook BayesVLM NLPD 0.68084 (MAP 0.70533)", "gpu"),
               "ece20": _e("value", 0.00829, "notebook BayesVLM ECE 0.00829", "gpu")},
    "BVL-04": {"overhead_ratio": _e("below", 1.10, "minimal overhead: within 10% of deterministic inference")},
    "BVL-05": {"ece_change": _e("below", 0.0, "ECE still down with a proxy-data Hessian"),
               "accuracy_change": _e("value", 0.0, "accuracy kept")},
    "BVL-06": {"area": _e("above", 0.0, "BALD / EPIG beat random selection")},
    "ICL-01": {"kurtosis_gap": _e("above", 0.0, "zero-shot kurtosis above fine-tuned"),
               "kurtosis_level": _e("above", 6.0, ">> 3 (read as > 6, twice the Gaussian's)")},
    "ICL-02": {"outlier_ratio": _e("above", 100.0, "max/median >= 100 ('orders of magnitude')"),
               "outlier_ratio_finetuned": _e("below", 100.0, "fine-tuned: no outlier features")},
    "ICL-03": {"accuracy_change": _e("above", -0.01, "small accuracy drop (within 1 point) keeping the top 20%")},
    "ICL-04": {"zero-shot": _e("value", 550.0, "400-700 unique concepts"),
               "fine-tuned": _e("value", 450.0, "300-600 unique concepts")},
    "PRB-02": {"clip-vit-l-14-336": _e("value", 428.0, "~428M (image+text towers)"),
               "siglip-so400m-14-384": _e("value", 400.0, "~400M (image tower)")},
    "PRB-04": {"difference": _e("above", 0.0, "SigLIP > CLIP")},
    "PRB-05": {"clip-vit-l-14-336": _e("value", 0.755, "~75.5%"), "siglip-so400m-14-384": _e("value", 0.831, "~83.1%"),
               "siglip2-so400m-14-378": _e("value", 0.84, "~84%"),
               "siglip2-so400m-16-384": _e("value", 0.841, "84.1%")},
}

_MCD_RUN = dict(p=0.01, T=64, trials=10, n_images=500, data="ImageNet-1k val", mode="as_published",
                score="trace_pre")
# the recorded run's backend (open_clip) and, for each model, the dropout sites its 'as_published' wrapping gives
# there (counted on the architecture: transformers' SigLIP2 wraps 75 and fires 74)
_CLIP_B32 = dict(model="clip-vit-b-32", backend="open_clip", dropout_sites={"wrapped": 36, "firing": 24})
_SIGLIP2_B16 = dict(model="siglip2-vit-b-16", backend="open_clip", dropout_sites={"wrapped": 53, "firing": 53})
SOURCE: dict[str, dict] = {
    "MCD-03": dict(_MCD_RUN, **_CLIP_B32), "MCD-04": dict(_MCD_RUN, **_CLIP_B32),
    "MCD-05": dict(_MCD_RUN, **_SIGLIP2_B16), "MCD-06": dict(_MCD_RUN, **_SIGLIP2_B16),
    "MCD-07": dict(_MCD_RUN, backend="open_clip"), "MCD-14": dict(_MCD_RUN), "MCD-15": dict(_MCD_RUN, T=[16, 64]),
    "MCD-08": dict(_MCD_RUN, **_CLIP_B32, n_images=2000, trials=1),
    "MCD-09": dict(_MCD_RUN, **_SIGLIP2_B16, n_images=1000, trials=1),
    "MCD-10": dict(_MCD_RUN, **_SIGLIP2_B16, n_images=1000, trials=1),
    "MCD-11": dict(_MCD_RUN, **_CLIP_B32, degradation="blur_r5"),
    "MCD-12": dict(_MCD_RUN, **_SIGLIP2_B16, degradation="blur_r15"),
    "MCD-13": dict(_MCD_RUN, backend="open_clip"),
    "MCD-18": dict(_MCD_RUN, **_CLIP_B32, trials=1),  # the investigation: 1 trial
    # the recorded run's 500 images: 5 of each of 100 synsets; blur as PIL's Gaussian radius, in pixels
    "MCD-reliability-run": dict(n_synsets=100, per_synset=5, blur_radius={"light": 5, "heavy": 15}),
    "ICL-03": dict(keep=0.2),
    "ICL-04": dict(ap=0.9, data="Broden"),
    "PRB-04": dict(folds=10, alpha=6.0, probes=["ridge", "svc"], metric="accuracy"),
    # BayesVLM's notebook (zeroshot.ipynb) and scripts/hessian_estimation.py
    "BVL-03": dict(posterior="bayesvlm", multiplier=10.0, prompt="An image of a {}", classnames="torchvision",
                   class_batch=32768, bins=[20], model="clip-vit-b-32-laion2b", data="Food-101 test",
                   hessian="LAION-400M, 327,680 pairs (the published factors)"),
    "BVL-05": dict(posterior="bayesvlm", multiplier=10.0, prompt="An image of a {}", class_batch=32768),
    # BayesVLM's scripts/activelearning.py (defaults) and its call of bayesvlm/epig.py's select_epig_online
    "BVL-06": dict(posterior="bayesvlm", multiplier=10.0, pool="targeted k-NN (diagonal Wasserstein, k = 1)",
                   estimator="published", a_update="published", text_posterior="carried",
                   bald="independent logit draws", lr=1e-4, update_scale=10.0, samples=100, lambda_steps=20,
                   lambda_lr=1e-3, k_nearest=1, budget=50, target_max=20_000, finetune_lr=1e-5, finetune_wd=5e-2,
                   finetune_epochs=100, finetune_batch=30, model="clip-vit-b-32-laion2b",
                   data="a data set's train split as the pool, its test split as the targets and the test set "
                        "(their script's default: homeoffice-da-clipart)"),
}

# declared departures: (claim, tier) or tier -> field -> why the configuration run differs from the source's
DEPARTURES: dict[str | tuple[str, str], dict[str, str]] = {
    "math": {
        "n_images": "a simulation with a known answer, sized so that its CI decides the claim",
        "trials": "a simulation with a known answer: as many trials as the identity needs",
        "T": "a simulation of the 1/T law over several T",
    },
    "proxy": {
        "model": "the proxy tier trains a matched CLIP-loss / SigLIP-loss pair here (no weights needed)",
        "data": "the embedded world (procedural shapes), not ImageNet",
        "n_images": "the proxies' held-out world images",
        "trials": "5 trials per proxy, 3 seeds per loss: the seeds replicate the pair",
        "T": "the proxy runs its own T",
    },
    "recorded": {
        "model": "the recorded run's own model folders",
        "data": "what the recorded files hold",
        "n_images": "the recorded run's images",
        "trials": "the recorded run's trials",
        "T": "the recorded run's T",
        "p": "the recorded run's p",
    },
    ("MCD-08", "recorded"): {
        "n_images": "the published per-image arrays are 2000 CIFAR-100 test images (ImageNet N=2000: summary only)",
        "data": "CIFAR-100 test: the only per-image arrays published for this figure",
        "T": "the published arrays were made with T = 32", "trials": "the published arrays are one trial"},
    ("MCD-08", "gpu"): {"trials": "the recorded investigation's single trial"},
    ("BVL-03", "gpu"): {
        "hessian": "the user's image-caption pairs (bayes-hessian): the published factors exist for CLIP B-32 only",
        "model": "SigLIP B-16 beside the notebook's CLIP B-32 (or a stand-in in the tests)"},
    ("BVL-05", "gpu"): {"hessian": "another set of image-caption pairs (bayes-hessian-alt), as the claim asks"},
    ("BVL-03", "proxy"): {
        "prompt": "the world's zero-shot classes are shape colours: 'a photo of a {} shape'",
        "class_batch": "the proxies' training batch (256), as BayesVLM uses its model's pretraining-like batches",
        "bins": "ECE with 20 bins (the notebook's) and 15 (the common choice)",
        "posterior": "mcdo's exact-prior Laplace, run beside the authors' posterior as a named option",
        "multiplier": "mcdo's exact-prior Laplace counts each Hessian pair once (N = n)",
        "hessian": "the proxies' own training world (20000 pairs) in place of LAION-400M"},
    ("BVL-06", "proxy"): {
        "data": "the world's background (4 classes, a weak zero-shot task): a pool of 1000, 500 targets = the test "
                "set, 200 for the fine-tuning's early stopping"},
    ("BVL-06", "gpu"): {
        "data": "Food-101's test split (what mcdo reads): half as the targets and test set, the rest as the pool, "
                "10% of the images held out for the fine-tuning's early stopping",
        "budget": "a stand-in's small data set takes smaller budgets (a quarter of its images at most)",
        "model": "SigLIP B-16 beside the authors' CLIP B-32 (or a stand-in in the tests)"},
    ("BVL-05", "proxy"): {
        "prompt": "the world's zero-shot classes are shape colours: 'a photo of a {} shape'",
        "class_batch": "the proxies' training batch (256), as BayesVLM uses its model's pretraining-like batches",
        "posterior": "mcdo's exact-prior Laplace, run beside the authors' posterior as a named option",
        "multiplier": "mcdo's exact-prior Laplace counts each Hessian pair once (N = n)"},
    "gpu": {
        "model": "a stand-in (tests) or the user's model in place of the seed's",
        "n_images": "the images present under MCDO_DATA_ROOT (or the recorded run's own)",
        "backend": "MCDO_SIGLIP2_BACKEND=hf: transformers' SigLIP2, not the recorded run's open_clip: its dropout "
                   "fires at 74 sites (open_clip's 53) and its tokenizer neither lower-cases the text nor strips "
                   "punctuation as open_clip's does",
        "T": "a smoke run (--limit): 4 passes per trial",
        "trials": "a smoke run (--limit): the fewest trials the statistics take (3)",
        "folds": "a smoke run (--limit): as many folds as the smallest class keeps images",
        "dropout_sites": "another backend or architecture than the recorded run's (MCDO_SIGLIP2_BACKEND=hf, a "
                         "stand-in, or the user's model): the dropout wraps and fires at other sites",
    },
}
