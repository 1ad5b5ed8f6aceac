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
from enum import StrEnum
from typing import Any

from ..io import jsonable

class Verdict(StrEnum):
    """What a record says of its claim."""

    REPRODUCED = "reproduced"
    NOT_REPRODUCED = "not reproduced"
    INCONCLUSIVE = "inconclusive"
    CONSISTENT = "consistent with source"  # the source's own summary figure checked, not recomputed from data
    SKIPPED = "skipped"
    SMOKE = "smoke run"  # a --limit run: the chain completed on shrunk data; says nothing of the claim


REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = Verdict.REPRODUCED, Verdict.NOT_REPRODUCED, Verdict.INCONCLUSIVE
CONSISTENT, SKIPPED, SMOKE = Verdict.CONSISTENT, Verdict.SKIPPED, Verdict.SMOKE
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
    # fields where the configuration run differs from the source's (sources.SOURCE), each with its reason; an
    # evaluator may pre-fill {field: reason} for a departure it makes on purpose, the engine completes it
    departures: dict[str, Any] = field(default_factory=dict)
    # ``model`` is the registry name (or the user's own); ``variant`` says which run of it (a recorded folder, ...)
    variant: str = ""
    # the ``mcdo claims`` run that made it (its start time; claims.json's ``runs`` says what each run was)
    run: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Record":
        """A record read back from a report or journal (fields it does not know are an error)."""
        return cls(**{**d, "ci": tuple(d["ci"]) if d.get("ci") is not None else None})

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci is not None else None
        return jsonable(d)


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


def judge(claim_id: str, ci: tuple[float, float], expected: float, n: int | None = None,
          figure: str | None = None) -> tuple[str, str]:
    """The verdict of a value claim against its registry margin, and a sentence saying so (with, for an
    inconclusive verdict, how many images would decide it). Evaluators call ``decide``, which reads ``expected``
    from the registry."""
    from . import catalog

    m = catalog.margin(claim_id, figure)
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


def all_of(*verdicts: str) -> str:
    """A claim made of several figures: reproduced when every one is, not reproduced when any one is not,
    inconclusive otherwise."""
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    return NOT_REPRODUCED if NOT_REPRODUCED in verdicts else INCONCLUSIVE


UNDECLARED = "UNDECLARED"


@dataclass(frozen=True)
class Decision:
    """A verdict, what was expected (as the source states it) and a sentence on how the rule decided."""

    verdict: str
    expected: str
    note: str


def expectation(claim_id: str, figure: str, tier: str | None = None):
    """The registry's expectation of one figure of a claim on a tier (a clear error when it has none)."""
    from .sources import EXPECT

    options = EXPECT.get(claim_id, {}).get(figure)
    if options is None:
        raise KeyError(f"{claim_id} states no figure {figure!r} in the registry (verify/sources.py: EXPECT); it has "
                       f"{', '.join(EXPECT.get(claim_id, {})) or 'none'}")
    options = options if isinstance(options, tuple) else (options,)
    for e in options:
        if not e.tiers or tier is None or tier in e.tiers:
            return e
    raise KeyError(f"{claim_id}'s figure {figure!r} has no expectation on tier {tier!r}")


def decide(claim_id: str, figure: str, ci: tuple[float, float], tier: str | None = None,
           n: int | None = None) -> Decision:
    """The one verdict rule: a measured figure's CI against what the registry says the source expects of it
    (a value within the claim's margin, or a direction about a threshold)."""
    e = expectation(claim_id, figure, tier)
    if e.kind == "value":
        verdict, note = judge(claim_id, ci, e.value, n, figure)
        return Decision(verdict, f"{e.value:g} ({e.text})" if e.text else f"{e.value:g}", note)
    if e.kind in ("above", "below"):
        verdict = direction_verdict(ci, e.value, above=e.kind == "above")
        sign = ">" if e.kind == "above" else "<"
        return Decision(verdict, f"{sign} {e.value:g} ({e.text})",
                        f"direction: the whole CI {sign} {e.value:g} reproduces, the whole CI on the other side does not")
    raise ValueError(f"{claim_id} {figure}: a {e.kind!r} expectation is a gate; use gate_expectation")


def threshold(claim_id: str, figure: str, tier: str | None = None) -> float:
    """The number the registry states for a figure (a value's centre or a direction's threshold)."""
    return float(expectation(claim_id, figure, tier).value)


def gate_expectation(claim_id: str, family: str | None, tier: str | None = None) -> bool | None:
    """Whether the registry expects a model of this loss family (``softmax`` / ``sigmoid``) to pass the gate; None
    for a family the claim says nothing of."""
    if family is None:
        return None
    try:
        return expectation(claim_id, family, tier).kind == "pass"
    except KeyError:
        return None


def departures(claim_id: str, tier: str, config: dict, declared: dict | None = None) -> dict[str, dict]:
    """The fields of the source's configuration (sources.SOURCE) that ``config`` ran differently, each with its
    reason: declared by the evaluator, by the registry for (claim, tier), or for the tier; else ``UNDECLARED``."""
    from .sources import DEPARTURES, SOURCE

    source = SOURCE.get(claim_id, {})
    out = {}
    for key, want in source.items():
        if key not in config:
            continue
        run = config[key]
        if jsonable(run) == jsonable(want):
            continue
        reason = ((declared or {}).get(key) or DEPARTURES.get((claim_id, tier), {}).get(key)
                  or DEPARTURES.get(tier, {}).get(key) or UNDECLARED)
        out[key] = {"source": jsonable(want), "run": jsonable(run), "reason": reason}
    return out


def skipped(claim_id: str, tier: str, model: str, reason: str, expected: str = "") -> Record:
    return Record(claim_id, tier, model, SKIPPED, expected=expected, reason=reason)
