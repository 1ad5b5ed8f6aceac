import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh, seeded generator per test: results never depend on test order."""
    return np.random.default_rng(20261122)
