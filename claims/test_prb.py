"""Claims of seed PRB (see ../shared/CLAIMS.md), one test per (claim, tier)."""
import pytest

from _harness import check, params


@pytest.mark.parametrize("claim_id,tier", params("PRB"))
def test_prb_claim(claim_id, tier, ctx, sink):
    check(claim_id, tier, ctx, sink)
