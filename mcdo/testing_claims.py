"""The claims as a library (scikit-learn's ``parametrize_with_checks``): a researcher's own test file runs the
model-parametrised claims on their own models, judged by the same rules and writing the same records as
``pytest claims`` and ``mcdo claims`` (``mcdo.verify.acceptance``)::

    from mcdo.testing import parametrize_with_claims

    @parametrize_with_claims(["ViT-B-32:/path/to/finetuned.pt"])
    def test_my_model(model, claim):
        claim(model)

One case per (claim, tier, model), named ``MCD-07-gpu-<model>``; each model judged by its loss family's
expectation. ``limit=N`` makes them smoke runs (``--limit``), ``claims=`` picks claims by id.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable


class ClaimCheck:
    """One (claim, tier) as a callable check: ``claim(model)`` evaluates it on ``model`` and applies the judge
    (a skip, a failure for a broken rule, an AssertionError for a claim the model does not hold); it returns the
    records, also kept in ``.records``."""

    def __init__(self, claim_id: str, tier: str, limit: int | None = None):
        self.claim_id, self.tier, self.limit, self.records = claim_id, tier, limit, []

    def __repr__(self) -> str:
        return f"{self.claim_id}-{self.tier}"

    def __call__(self, model: str, ctx=None) -> list:
        from .verify import engine
        from .verify.acceptance import accept

        ctx = ctx or engine.Context(progress=False, limit=self.limit)
        self.records = engine.evaluate(self.claim_id, self.tier, dataclasses.replace(ctx, user_model=model))
        act_on(accept(self.claim_id, self.tier, self.records, ctx.strict_tiers, model))
        return self.records


def act_on(j) -> None:
    """What a pytest test does with a judgement (``verify.acceptance``): skip; fail for a broken rule (never
    absorbed by a strict xfail: ``pytest.fail`` is not an AssertionError); an AssertionError for a claim that does
    not hold (absorbed only where a strict xfail marks a registered finding); nothing for a pass, a smoke run or
    an unexpected pass (which a strict xfail marker turns into a failure)."""
    import pytest

    from .verify.acceptance import Outcome

    if j.outcome == Outcome.SKIP:
        pytest.skip(j.message)
    if j.outcome == Outcome.DEFECT:
        pytest.fail(j.message)
    if j.outcome in (Outcome.NOT_REPRODUCED, Outcome.EXPECTED_FAILURE):
        raise AssertionError(j.message)


def parametrize_with_claims(models: Iterable[str], claims: Iterable[str] | None = None, limit: int | None = None):
    """A ``pytest.mark.parametrize("model,claim", ...)`` over every model-parametrised claim (``catalog.
    user_model_pairs``) and each of ``models`` (any ``--model`` spec: a registry name, ARCH:TAG,
    ARCH:/path/ckpt.pt, hf-hub:ORG/NAME, a folder). An unknown claim id is an error here, not an empty test."""
    import pytest

    from .model_specs import get_spec
    from .verify import catalog

    models = list(models)
    for m in models:
        get_spec(m)  # a wrong name is said at collection, with the registry's suggestion
    pairs = catalog.user_model_pairs()
    if claims is not None:
        wanted = set(claims)
        unknown = wanted - {c for c, _ in pairs}
        if unknown:
            raise ValueError(f"parametrize_with_claims: {', '.join(sorted(unknown))} not model-parametrised; the "
                             f"claims that are: {', '.join(c for c, _ in pairs)}")
        pairs = [p for p in pairs if p[0] in wanted]
    return pytest.mark.parametrize("model,claim", [pytest.param(m, ClaimCheck(c, t, limit), id=f"{c}-{t}-{m}")
                                                   for m in models for c, t in pairs])
