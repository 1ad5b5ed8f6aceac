"""Claims of seed BVL (see ../shared/CLAIMS.md), one test per (claim, tier)."""
import pytest

from _harness import check, params


@pytest.mark.parametrize("claim_id,tier", params("BVL"))
def test_bvl_claim(claim_id, tier, ctx, sink):
    check(claim_id, tier, ctx, sink)
