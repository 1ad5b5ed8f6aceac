"""Evaluate (claim, tier) pairs into records.

Evaluators register themselves with ``@evaluates(claim_id, tier)`` and return
a list of records (one per model). Missing weights, data or devices raise
``MissingResource`` and become ``skipped`` records naming what is missing; a
pair with no evaluator is ``skipped: not implemented``, never passed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import env
from ..errors import MissingResource
from . import catalog
from .records import SKIPPED, SMOKE, Record, departures

Evaluator = Callable[["Context"], list[Record]]
_EVALUATORS: dict[tuple[str, str], Evaluator] = {}
# a figure of the report: (context of the run, folder) -> (caption, file name) or None when its inputs were not
# computed in this run; declared beside the evaluators whose data it draws
FigureMaker = Callable[["Context", Path], "tuple[str, str] | None"]
_FIGURES: dict[str, FigureMaker] = {}


def evaluates(claim_id: str, tier: str) -> Callable[[Evaluator], Evaluator]:
    """Register an evaluator for one (claim, tier) pair of the catalog."""
    claim = catalog.get(claim_id)
    if tier not in claim.tiers:
        raise ValueError(f"{claim_id} is not registered on tier {tier!r} (its tiers: {claim.tiers})")

    def register(fn: Evaluator) -> Evaluator:
        if (claim_id, tier) in _EVALUATORS:
            raise ValueError(f"two evaluators for {claim_id} on {tier}")
        _EVALUATORS[(claim_id, tier)] = fn
        return fn

    return register


@dataclass
class Context:
    """What an evaluation may use: seeds, resampling sizes, a memo shared across claims, progress output."""

    seed: int = 0
    n_boot: int = 1000
    progress: bool = True
    memo: dict[str, Any] = field(default_factory=dict)
    # gpu tier: stand-ins (registered model -> another registered model) and random weights let the
    # tests run a gpu-tier pipeline end to end on a CPU; a real run leaves them at their defaults.
    stand_ins: dict[str, str] = field(default_factory=dict)
    pretrained: bool = True
    require_gpu: bool = True
    batch_size: int = 256
    dry_run: bool = False  # mcdo doctor: check prerequisites, run nothing (see prerequisites.Ready)
    # every data set a claim's prerequisite check looked for in this run: name -> what was found, or what is
    # missing and how to supply it (``mcdo doctor``'s data section, generated from the claims' own checks)
    data_seen: dict[str, str] = field(default_factory=dict)
    # gpu tier: which weights ran, per registered model name (``models.identity.weights_identity``), stamped on
    # every record that names the model
    weights: dict[str, dict] = field(default_factory=dict)
    # --limit N: a smoke run of the gpu tier: every data set shrunk to at most N images (``prerequisites.shrink``),
    # the fewest MC trials the statistics need; each record's verdict is 'smoke run', the shrink its departures
    limit: int | None = None
    # recorded tier: judge a run that lacks the source's T at its own (a declared departure) instead of skipping
    recorded_own_T: bool = False
    # pytest claims --strict-tier TIER / MCDO_STRICT=1: a claim of these tiers that skips fails the run
    strict_tiers: frozenset = frozenset()
    # pytest claims -m gpu --model SPEC / MCDO_MODELS: the user's model a model-parametrised claim
    # (catalog.user_model_pairs) runs on instead of the seed's, judged by the expectation of its loss family
    user_model: str | None = None

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """Compute once per run and share (e.g. the recorded arrays, a trained proxy)."""
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]


def draws(name: str) -> Callable[[FigureMaker], FigureMaker]:
    """Register a figure of the report, drawn from what an evaluator of the same module computed in the run."""
    def register(fn: FigureMaker) -> FigureMaker:
        if name in _FIGURES:
            raise ValueError(f"two figures named {name!r}")
        _FIGURES[name] = fn
        return fn

    return register


def figure_makers() -> dict[str, FigureMaker]:
    """Every registered figure of the report, by name, in the registry's order of families."""
    _load_evaluators()
    return dict(_FIGURES)


def _load_evaluators() -> None:
    """Import every evaluator module: ``mcdo/verify/<family>/<tier>.py`` (registration side effects)."""
    import importlib
    import pkgutil

    for family in catalog.SEEDS:
        try:
            pkg = importlib.import_module(f"{__package__}.{family.lower()}")
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{family.lower()}":
                raise
            continue  # a family with no evaluators yet: its pairs are 'not implemented'
        for info in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module(f"{pkg.__name__}.{info.name}")


def implemented() -> set[tuple[str, str]]:
    _load_evaluators()
    return set(_EVALUATORS)


def _stamp_gpu(r: Record, ctx: Context) -> None:
    """What a gpu record must say of how it ran: the weights of every model it names (``Context.weights``), the
    float32 setting, and a waived GPU (``MCDO_ALLOW_CPU=1``)."""
    import re

    import torch

    named = set(re.split(r"\s+vs\s+|[,\s]+", r.model)) | {str(r.config.get("model", ""))} \
        | set(map(str, r.config.get("models", []) or []))
    weights = {m: w for m, w in ctx.weights.items() if m.split(" (", 1)[0] in named}  # "name (backend)" too
    tagged = {m.split(" (", 1)[0] for m in weights if " (" in m}
    weights = {m: w for m, w in weights.items() if m not in tagged}  # one model through two backends: both named
    if weights:
        r.config.setdefault("weights", weights)
    if r.config.get("precision") in (None, "fp32"):  # the tools' "fp32" (no autocast) says nothing of TF32
        r.config["precision"] = env.precision_setting()
    if env.cpu_allowed() and not torch.cuda.is_available():
        r.config["gpu_waived"] = "MCDO_ALLOW_CPU=1: run without a CUDA GPU (a rehearsal, not the source's setting)"


def evaluate(claim_id: str, tier: str, ctx: Context | None = None) -> list[Record]:
    """Records for one claim on one tier, stamped with commit and elapsed time."""
    _load_evaluators()
    ctx = ctx or Context()
    claim = catalog.get(claim_id)
    if tier not in claim.tiers:
        raise ValueError(f"{claim_id} is not checked on tier {tier!r}; its tiers are {', '.join(claim.tiers)}")
    model = str(claim.needs.get("model", "-"))
    fn = _EVALUATORS.get((claim_id, tier))
    t0 = time.perf_counter()
    if fn is None:
        records = [Record(claim_id, tier, model, SKIPPED, expected=claim.expected, reason="not implemented")]
    else:
        try:
            records = fn(ctx)
        except MissingResource as e:
            records = [Record(claim_id, tier, model, SKIPPED, expected=claim.expected, reason=str(e),
                              details={"missing": e.what})]
    elapsed = time.perf_counter() - t0
    for r in records:
        r.commit = env.git_commit()
        r.elapsed_s = round(elapsed / len(records), 3)
        r.expected = r.expected or claim.expected
        seeds = r.config.get("seeds")
        if "seed" not in r.config and isinstance(seeds, (list, tuple)) and len(seeds) > 1:
            r.config.update(seed=None, pooled_over=list(seeds))  # across random seeds: no one seed is its own
        r.config.setdefault("seed", ctx.seed)
        if tier == "gpu" and r.verdict != SKIPPED:
            _stamp_gpu(r, ctx)
            if ctx.limit:
                r.config["limit"] = ctx.limit
                r.details["verdict_had_it_run_whole"] = r.verdict
                r.verdict = SMOKE
        if r.verdict != SKIPPED:
            r.departures = departures(claim_id, tier, r.config, r.departures)
            if tier == "gpu" and ctx.limit:
                r.departures["limit"] = {"source": None, "run": ctx.limit, "reason": (
                    f"smoke run (--limit {ctx.limit}): at most {ctx.limit} images per data set and the fewest MC "
                    "trials the statistics need; the chain is checked, the claim is not judged")}
    return records
