"""The one judge of a claim's records, behind both front doors (``pytest claims`` and ``mcdo claims``).

The acceptance rules, in the order they are applied to one (claim, tier):

1. nothing judged (every record skipped): a skip, or a defect on a strict tier (a nightly runner that lost its GPU,
   weights or data; ``MCDO_STRICT=1`` means the gpu tier);
2. a configuration that departs from the source's without a declared reason: a defect, never an expected failure;
3. a smoke run (``--limit``): the chain completed, nothing is judged;
4. a registered finding (``catalog.FINDINGS``): its figures must match ``findings.json`` (drift is a defect), and
   the claim must still fail (a finding that now reproduces is an unexpected pass, as a strict xfail);
5. otherwise every judged record must be reproduced (or consistent with the source's own summary).

pytest maps the outcome to skip / fail / an assertion (which a strict xfail absorbs for a finding); ``mcdo claims``
prints every rule that failed and exits 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from . import catalog, findings
from .records import CONSISTENT, REPRODUCED, SKIPPED, SMOKE, UNDECLARED, Record


class Outcome(StrEnum):
    PASS = "pass"
    SKIP = "skip"
    SMOKE = "smoke"
    EXPECTED_FAILURE = "expected failure"  # a registered finding, measured again as recorded
    NOT_REPRODUCED = "not reproduced"  # fails the claim without a registered finding
    UNEXPECTED_PASS = "unexpected pass"  # a registered finding that now reproduces
    DEFECT = "defect"  # a rule of the harness broken: strict skip, undeclared departure, finding drift


FAILING = (Outcome.NOT_REPRODUCED, Outcome.UNEXPECTED_PASS, Outcome.DEFECT)


@dataclass
class Judgement:
    claim: str
    tier: str
    outcome: Outcome
    message: str

    @property
    def failed(self) -> bool:
        return self.outcome in FAILING


def accept(claim_id: str, tier: str, records: list[Record], strict_tiers=frozenset(),
          user_model: str | None = None) -> Judgement:
    """The outcome of one (claim, tier) from its records, by the rules above."""
    def out(outcome: Outcome, message: str = "") -> Judgement:
        return Judgement(claim_id, tier, outcome, message)

    judged = [r for r in records if r.verdict != SKIPPED]
    if not judged:
        reason = records[0].reason if records else "no record"
        if tier in strict_tiers:
            return out(Outcome.DEFECT, f"{claim_id} on {tier} skipped under --strict-tier {tier}: {reason}")
        return out(Outcome.SKIP, f"{claim_id} on {tier}: {reason}")
    undeclared = [f"{r.model}: {k} = {v['run']!r} (source: {v['source']!r})" for r in judged
                  for k, v in r.departures.items() if v["reason"] == UNDECLARED]
    if undeclared:
        return out(Outcome.DEFECT, f"{claim_id} on {tier}: undeclared departures from the source's configuration "
                                   f"(declare them in mcdo/verify/sources.py: DEPARTURES): {'; '.join(undeclared)}")
    if any(r.verdict == SMOKE for r in judged):
        return out(Outcome.SMOKE, f"{claim_id} on {tier}: smoke run, the chain completed")
    failed = [r for r in judged if r.verdict not in (REPRODUCED, CONSISTENT)]
    detail = "; ".join(f"{r.model}: {r.verdict}, measured {r.measured} CI {r.ci} vs {r.expected} ({r.reason})"
                       for r in failed)
    if (claim_id, tier) in catalog.FINDINGS and not user_model:
        try:
            findings.check(claim_id, tier, records)
        except findings.FindingDrift as e:
            return out(Outcome.DEFECT, str(e))
        if not failed:
            return out(Outcome.UNEXPECTED_PASS, f"{claim_id} on {tier} is a registered finding (measured not to "
                                                "reproduce) but every record now holds: update catalog.FINDINGS")
        return out(Outcome.EXPECTED_FAILURE, detail)
    if failed:
        return out(Outcome.NOT_REPRODUCED, detail)
    return out(Outcome.PASS)


def accept_all(records: list[Record], strict_tiers=frozenset()) -> list[Judgement]:
    """One judgement per (claim, tier) present in ``records``, in their order."""
    pairs: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        pairs.setdefault((r.id, r.tier), []).append(r)
    return [accept(c, t, rs, strict_tiers) for (c, t), rs in pairs.items()]
