"""Result records and the verdict rules that produce them.

A value claim is judged by equivalence: its registry entry holds a margin (``catalog.MARGINS``, each with why a
difference that large would matter for the claim), and the figure's confidence interval (bootstrap over images,
a binomial or analytic interval) decides: reproduced when the whole CI lies within expected +- margin, not
reproduced when it lies wholly outside, inconclusive otherwise, with the number of images that would decide.
A wide CI therefore confirms nothing. A check of the source's own summary figures (no raw data to recompute
from) is ``consistent with source``, never ``reproduced``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
CONSISTENT = "consistent with source"  # the source's own summary figure checked, not recomputed from data
SKIPPED = "skipped"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, CONSISTENT, SKIPPED)


@dataclass
class Record:
    """One evaluation of one claim on one tier for one model."""

    id: str
    tier: str
    model: str
    verdict: str
    measured: float | None = None
    ci: tuple[float, float] | None = None
    expected: str = ""
    reason: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    commit: str = ""
    elapsed_s: float = 0.0

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci is not None else None
        return _jsonable(d)


def _jsonable(x: Any) -> Any:
    """Plain JSON types (numpy scalars and arrays become floats and lists; NaN and inf become strings)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    if isinstance(x, bool) or x is None or isinstance(x, (str, int)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else str(x)
    return str(x)


def equivalence_verdict(ci: tuple[float, float], expected: float, margin: float) -> str:
    """Reproduced when the whole CI lies within expected +- margin, not reproduced when it lies wholly outside,
    inconclusive when it straddles an edge of the margin."""
    lo, hi = ci
    if expected - margin <= lo and hi <= expected + margin:
        return REPRODUCED
    if hi < expected - margin or lo > expected + margin:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def n_to_decide(ci: tuple[float, float], expected: float, margin: float, n: int) -> float:
    """About how many images (or trials: whatever ``n`` counts) an inconclusive equivalence verdict needs, if the
    CI's half-width shrinks as 1/sqrt(n) around the same centre: the half-width must fit between the centre and
    the nearer edge of the margin. Infinite when the centre sits on an edge."""
    lo, hi = ci
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    room = abs(margin - abs(centre - expected))
    return math.inf if room == 0 else n * (half / room) ** 2


def judge(claim_id: str, ci: tuple[float, float], expected: float, n: int | None = None) -> tuple[str, str]:
    """The verdict of a value claim against its registry margin, and a sentence saying so (with, for an
    inconclusive verdict, how many images would decide it)."""
    from . import catalog

    m = catalog.margin(claim_id)
    half = m.half_width(expected)
    verdict = equivalence_verdict(ci, expected, half)
    note = f"equivalence margin {m.describe(expected)}: [{expected - half:.4g}, {expected + half:.4g}]"
    if verdict == INCONCLUSIVE and n:
        need = n_to_decide(ci, expected, half, n)
        note += f"; the CI straddles its edge: about {need:,.0f} images would decide" if math.isfinite(need) else \
            "; the CI is centred on its edge: no sample size decides"
    return verdict, note


def direction_verdict(ci: tuple[float, float], threshold: float = 0.0, above: bool = True) -> str:
    """A claimed sign or order: reproduced when the whole CI is on the claimed side of ``threshold``,
    not reproduced when the whole CI is on the other side, inconclusive when it straddles it."""
    lo, hi = ci
    if not above:
        lo, hi, threshold = -hi, -lo, -threshold
    if lo > threshold:
        return REPRODUCED
    if hi < threshold:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def skipped(claim_id: str, tier: str, model: str, reason: str, expected: str = "") -> Record:
    return Record(claim_id, tier, model, SKIPPED, expected=expected, reason=reason)
