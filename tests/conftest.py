import numpy as np
import pytest


@pytest.fixture
def rng():
    """A fresh, seeded generator per test: results never depend on test order."""
    return np.random.default_rng(20261122)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """ImageNet-style synset folders (one corrupt file) and the four MOS layouts (``mcdo.testing``)."""
    from mcdo.testing import make_image_folders

    return make_image_folders(tmp_path_factory.mktemp("data"))


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A fresh MCDO_CACHE_DIR per test: nothing cached by one test is read by another."""
    monkeypatch.setenv("MCDO_CACHE_DIR", str(tmp_path / "cache"))
