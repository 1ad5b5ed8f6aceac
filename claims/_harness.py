"""Parametrization of claim tests over the registry, and the one assertion they share."""
from __future__ import annotations

import pytest

from mcdo.verify import catalog, engine, findings
from mcdo.testing_claims import act_on
from mcdo.verify.acceptance import accept


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
    """Evaluate, keep the records, and act on the one judge's outcome (``mcdo.verify.acceptance``, which
    ``mcdo claims`` applies too) as any test of the claims does (``mcdo.testing_claims.act_on``)."""
    records = engine.evaluate(claim_id, tier, ctx)
    sink.extend(records)
    act_on(accept(claim_id, tier, records, ctx.strict_tiers, ctx.user_model))
