"""Parametrization of claim tests over the registry, and the one assertion they share."""
from __future__ import annotations

import pytest

from mcdo.verify import catalog, engine, findings
from mcdo.verify.records import CONSISTENT, REPRODUCED, SKIPPED, SMOKE, UNDECLARED


def params(family: str) -> list:
    """One pytest param per (claim, tier) of a family: tier marker, and strict xfail for recorded findings."""
    out = []
    for claim_id, tier in catalog.pairs(family=family):
        marks = [getattr(pytest.mark, tier)]
        if tier == "proxy":
            marks.append(pytest.mark.slow)
        if (claim_id, tier) in catalog.FINDINGS:  # only the measured failure is expected: an exception fails the test
            marks.append(pytest.mark.xfail(strict=True, raises=AssertionError,
                                           reason=f"measured not to reproduce: {findings.text(claim_id, tier)}"))
        out.append(pytest.param(claim_id, tier, marks=marks, id=f"{claim_id}-{tier}"))
    return out


def user_params(models: list[str]) -> list:
    """One pytest param per (model-parametrised claim, tier) and user's model (``catalog.user_model_pairs``), with
    the tier's marker; no strict xfail: a user's model is judged by its family's expectation alone."""
    return [pytest.param(claim_id, tier, model, marks=[getattr(pytest.mark, tier)], id=f"{claim_id}-{tier}-{model}")
            for model in models for claim_id, tier in catalog.user_model_pairs()]


def check(claim_id: str, tier: str, ctx: engine.Context, sink: list) -> None:
    """Evaluate, keep the records, skip with the reason when something is missing, assert the claim."""
    records = engine.evaluate(claim_id, tier, ctx)
    sink.extend(records)
    judged = [r for r in records if r.verdict != SKIPPED]
    if not judged:
        if tier in ctx.strict_tiers:  # a nightly GPU runner that lost its GPU or weights
            pytest.fail(f"{claim_id} on {tier} skipped under --strict-tier {tier}: {records[0].reason}")
        pytest.skip(f"{claim_id} on {tier}: {records[0].reason}")
    # a configuration that differs from the source's without a declared reason is a defect, never an expected
    # failure (pytest.fail is not an AssertionError, so a strict xfail does not absorb it)
    undeclared = [f"{r.model}: {k} = {v['run']!r} (source: {v['source']!r})" for r in judged
                  for k, v in r.departures.items() if v["reason"] == UNDECLARED]
    if undeclared:
        pytest.fail(f"{claim_id} on {tier}: undeclared departures from the source's configuration (declare them "
                    f"in mcdo/verify/sources.py: DEPARTURES): {'; '.join(undeclared)}")
    if any(r.verdict == SMOKE for r in judged):  # --limit: the chain completed; nothing of the claim is judged
        return
    if (claim_id, tier) in catalog.FINDINGS and not ctx.user_model:
        findings.check(claim_id, tier, records)  # FindingDrift, not AssertionError: never an expected failure
    failed = [r for r in judged if r.verdict not in (REPRODUCED, CONSISTENT)]
    assert not failed, "; ".join(
        f"{r.model}: {r.verdict}, measured {r.measured} CI {r.ci} vs {r.expected} ({r.reason})" for r in failed)
