"""Fixtures of the claim tests: one evaluation context per session, and a sink that writes the
records of the run to ``reports/pytest/`` (same format as ``mcdo claims``)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcdo import report
from mcdo.verify.engine import Context

_RECORDS: list = []


def pytest_addoption(parser):
    parser.addoption("--strict-tier", action="append", default=[], metavar="TIER",
                     help="a claim of this tier that skips (no GPU, weights or data) fails the run instead; "
                          "repeatable; MCDO_STRICT=1 means --strict-tier gpu (for nightly GPU runners)")


def strict_tiers(config) -> set[str]:
    """The tiers whose skips fail the run: --strict-tier, and gpu when MCDO_STRICT=1."""
    tiers = set(config.getoption("--strict-tier") or [])
    if os.environ.get("MCDO_STRICT") == "1":
        tiers.add("gpu")
    return tiers


def pytest_configure(config):
    """Under pytest-xdist (``pytest claims -m gpu -n <GPUs>``) each worker takes one GPU of the machine, before any
    CUDA call of the worker; a CUDA_VISIBLE_DEVICES set by the user is left alone."""
    from mcdo.env import gpu_for_worker, visible_gpus

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and "CUDA_VISIBLE_DEVICES" not in os.environ:
        gpu = gpu_for_worker(worker, visible_gpus())
        if gpu is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu


@pytest.fixture(scope="session")
def ctx(request) -> Context:
    return Context(seed=0, progress=False, strict_tiers=frozenset(strict_tiers(request.config)))


@pytest.fixture(scope="session")
def sink() -> list:
    return _RECORDS


def pytest_sessionfinish(session, exitstatus):
    if _RECORDS:
        out = Path(os.environ.get("MCDO_PYTEST_REPORT_DIR", "reports/pytest"))
        report.write(_RECORDS, out)
