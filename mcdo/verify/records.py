"""Result records and the verdict rules that produce them.

Tolerances come from the sampling distribution: a figure's confidence interval
(bootstrap over images, a binomial or analytic interval) is compared with the
expected value widened only by the precision the seed states it with (0.49
means 0.485 to 0.495). Nothing else widens a tolerance.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
SKIPPED = "skipped"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, SKIPPED)


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


def value_verdict(ci: tuple[float, float], expected: float, half_width: float = 0.0) -> str:
    """Reproduced when the CI meets the expected value's stated precision interval, else not reproduced."""
    lo, hi = ci
    return REPRODUCED if lo <= expected + half_width and hi >= expected - half_width else NOT_REPRODUCED


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
