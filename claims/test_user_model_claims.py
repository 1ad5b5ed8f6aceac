"""The model-parametrised claims on the user's own models: ``pytest claims -m gpu --model SPEC`` (or MCDO_MODELS),
one case per (claim, tier, model) beside the seed's, judged by the expectation of the model's loss family."""
import dataclasses

from _harness import check


def test_claim_on_user_model(claim_id, tier, user_model, ctx, sink):
    check(claim_id, tier, dataclasses.replace(ctx, user_model=user_model), sink)
