"""What each gpu claim costs, from the FLOP accounting: an estimate of its duration on a device, before the night.

Each claim's dominant work is listed as image forward passes and prompt encodings per model (``WORK``), read from
the evaluators' own configuration where they hold it (the MC-dropout run's trials, T, images and blur levels; the
smoke-free sizes of the public data sets). One image pass and one prompt are counted with
``torch.utils.flop_counter`` on the meta device (no weights, no memory), so the counts follow the real
architectures. Seconds are FLOPs over a rate: the device's fp32 matrix-product rate measured now
(``flops.matmul_rate``), or a data-sheet peak. Real runs reach a fraction of either (image decoding, the
statistics and I/O are not counted), while the T-pass core's fast path skips up to a twelfth of a full pass
(the last block's non-CLS tokens), so every figure is a rough floor, labelled an estimate. Work
items with the same ``shared`` key are computed once a night and cached: a claim alone pays for them, the whole
tier once.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..models.classifier import FINETUNED_CLIP
from .mcd.backends import N_IMAGES as MCD16_IMAGES
from .mcd.gpu import GPU, MODELS, SEED_RUNS

# the public data sets' sizes, as the claims read them
IMAGENET_VAL = 50_000
MOS = {"iNaturalist": 10_000, "SUN": 10_000, "Places": 10_000, "Textures": 5_640}  # MCM's OOD subsets
FOOD101_TEST = 25_250
BRODEN_224 = 63_305
HESSIAN_PAIRS = 10_000  # assumed: the user's bayes-hessian folder (BayesVLM's LAION subset is not public)
PROBE_FOLDER = 1_000  # assumed: the user's otolith folder
OPENAI_TEMPLATES = 80


@dataclass(frozen=True)
class Work:
    """One model's forward passes: ``images`` x ``passes`` image passes and ``prompts`` prompt encodings."""

    model: str
    images: int = 0
    passes: int = 1
    prompts: int = 0
    shared: str = ""  # items with one key run once a night (cached)


def _reliability(key: str) -> Work:
    n = GPU["n_synsets"] * GPU["per_synset"]
    return Work(MODELS[key], n, GPU["trials"] * GPU["T"] + len(GPU["blur_radius"]) * GPU["T"] + 1,
                shared=f"reliability/{key}")


def _seed_run(claim: str) -> tuple[Work, ...]:
    key, images, prompts = SEED_RUNS[claim]
    text = 1000 if prompts else 0  # one prompt per ImageNet class
    if images == "reliability":
        return _reliability(key), Work(MODELS[key], prompts=text, shared=f"head-photo/{key}")
    per = images * 1000  # ``images`` per synset, every synset
    return (Work(MODELS[key], per, GPU["T"] + 1, shared=f"seed/{key}/{images}"),
            *([Work(MODELS[key], prompts=text, shared=f"head-photo/{key}")] if text else ()))


def _ood_accuracy(model: str) -> tuple[Work, ...]:
    return (Work(model, IMAGENET_VAL, shared=f"val/{model}"),
            Work(model, prompts=1000 * (OPENAI_TEMPLATES + 1), shared=f"heads/{model}"))


def _ood_detection(model: str) -> tuple[Work, ...]:
    return (Work(model, IMAGENET_VAL, shared=f"val/{model}"), Work(model, sum(MOS.values()), shared=f"mos/{model}"),
            Work(model, prompts=1000, shared=f"head-mcm/{model}"))


def _bvl(model: str, hessian: str = "bayes-hessian") -> tuple[Work, ...]:
    return (Work(model, FOOD101_TEST, prompts=101, shared=f"food/{model}"),
            Work(model, HESSIAN_PAIRS, prompts=HESSIAN_PAIRS, shared=f"{hessian}/{model}"))


CLIP_B16, SIGLIP, SIGLIP2 = "clip-vit-b-16", "siglip-vit-b-16", "siglip2-vit-b-16"
BVL_MODELS = ("clip-vit-b-32-laion2b", "siglip-vit-b-16")
LARGE = ("clip-vit-l-14-336", "siglip-so400m-14-384", "siglip2-so400m-14-378", "siglip2-so400m-16-384")
ICL = (Work(CLIP_B16, IMAGENET_VAL, 2, shared="icl/zero-shot"), Work(FINETUNED_CLIP, IMAGENET_VAL, shared="icl/ft"))

WORK: dict[str, tuple[Work, ...]] = {
    **{c: (_reliability("clip_b32"),) for c in ("MCD-03", "MCD-04", "MCD-11")},
    **{c: (_reliability("siglip2_b16"),) for c in ("MCD-05", "MCD-06", "MCD-12")},
    **{c: (_reliability("clip_b32"), _reliability("siglip2_b16")) for c in ("MCD-07", "MCD-13")},
    **{c: _seed_run(c) for c in SEED_RUNS},
    "MCD-16": (Work(SIGLIP2, MCD16_IMAGES, 2),),  # one pass through each backend
    "OOD-03": _ood_accuracy(CLIP_B16),
    "OOD-04": _ood_detection(CLIP_B16),
    "OOD-05": _ood_accuracy(SIGLIP) + _ood_accuracy(SIGLIP2),
    **{c: _ood_detection(SIGLIP) + _ood_detection(SIGLIP2) for c in ("OOD-06", "OOD-07")},
    "OOD-08": sum((_ood_accuracy(m) + _ood_detection(m) for m in (CLIP_B16, SIGLIP, SIGLIP2)), ()),
    **{c: sum((_bvl(m) for m in BVL_MODELS), ()) for c in ("BVL-03", "BVL-04", "BVL-06")},
    "BVL-05": sum((_bvl(m) + _bvl(m, "bayes-hessian-alt") for m in BVL_MODELS), ()),
    "ICL-01": ICL, "ICL-02": ICL,
    "ICL-03": ICL + (Work(CLIP_B16, prompts=1000 * OPENAI_TEMPLATES, shared=f"heads/{CLIP_B16}"),),
    "ICL-04": (Work(CLIP_B16, BRODEN_224, shared="broden/zero-shot"),
               Work(FINETUNED_CLIP, BRODEN_224, shared="broden/ft")),
    "PRB-04": tuple(Work(m, PROBE_FOLDER, shared=f"probe/{m}") for m in LARGE[:3]),
    "PRB-05": sum((_ood_accuracy(m) for m in LARGE), ()),
}
ASSUMED = {"BVL-03": f"{HESSIAN_PAIRS:,} Hessian pairs", "BVL-04": f"{HESSIAN_PAIRS:,} Hessian pairs",
           "BVL-05": f"{HESSIAN_PAIRS:,} pairs in each Hessian set", "BVL-06": f"{HESSIAN_PAIRS:,} Hessian pairs",
           "PRB-04": f"{PROBE_FOLDER:,} probe images"}


@lru_cache(maxsize=None)
def unit_flops(model: str) -> tuple[int, int]:
    """FLOPs of one image pass and of one prompt's encoding through ``model``'s real architecture, counted on the
    meta device (a timm classifier has no text tower: 0)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..flops import attention_ops
    from ..models.registry import REGISTRY

    def count(fn, *args) -> int:
        counter = FlopCounterMode(display=False, custom_mapping=attention_ops())
        with torch.enable_grad(), counter:
            fn(*args)
        return int(counter.get_total_flops())

    if model == FINETUNED_CLIP:
        import timm

        with torch.device("meta"):
            net = timm.create_model(model)
        size = net.pretrained_cfg["input_size"][-1]
        return count(net, torch.zeros(1, 3, size, size, device="meta")), 0
    import open_clip

    spec = REGISTRY[model]
    with torch.device("meta"):
        net = open_clip.create_model(spec.arch_name, device="meta")
    tokens = torch.zeros(1, getattr(net, "context_length", 77) or 77, dtype=torch.long, device="meta")
    return (count(net.visual, torch.zeros(1, 3, spec.image_size, spec.image_size, device="meta")),
            count(net.encode_text, tokens))


def flops(items) -> float:
    """FLOPs of a set of work items."""
    total = 0.0
    for w in items:
        image, text = unit_flops(w.model)
        total += w.images * w.passes * image + w.prompts * text
    return total


@dataclass
class Estimate:
    claim: str
    models: list[str]
    tflop: float
    seconds: float
    assumed: str


def estimate(claims: list[str], rate: float) -> tuple[list[Estimate], float]:
    """Each claim's FLOPs and seconds at ``rate`` FLOP/s when run alone, and the seconds of all of them together
    (work shared between claims counted once)."""
    rows, seen = [], {}
    for c in claims:
        items = WORK[c]
        f = flops(items)
        rows.append(Estimate(c, list(dict.fromkeys(w.model for w in items)), f / 1e12, f / rate, ASSUMED.get(c, "")))
        for w in items:
            seen[w.shared or f"{c}/{id(w)}"] = w
    return rows, flops(seen.values()) / rate


def duration(seconds: float) -> str:
    """A duration a person reads: seconds, minutes or hours."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def table(rows: list[Estimate], total: float, rate: float, where: str) -> str:
    """The estimate as markdown, with what it is and is not."""
    lines = [f"Estimated gpu-tier durations on {where}, at {rate / 1e12:.1f} TFLOP/s fp32 (TF32 off, as the claims "
             "run): FLOPs of the image passes and prompt encodings over that rate, a rough floor (decoding, "
             "statistics and I/O not counted). An estimate, not a measurement.", "",
             "| claim | models | TFLOP | alone | assumes |", "|---|---|---:|---:|---|"]
    lines += [f"| {r.claim} | {', '.join(r.models)} | {r.tflop:,.0f} | {duration(r.seconds)} | {r.assumed} |"
              for r in rows]
    lines += ["", f"All of them together (shared work cached, counted once): {duration(total)}."]
    return "\n".join(lines)


def readme_table() -> str:
    """The README's table: every gpu claim on an H100 SXM at its data-sheet fp32 peak (``flops.PEAKS``)."""
    from ..flops import PEAKS

    rate = PEAKS["H100 SXM"]["float32"]
    rows, total = estimate(list(WORK), rate)
    return table(rows, total, rate, "an H100 SXM at its data-sheet fp32 peak")
