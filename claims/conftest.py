"""Fixtures of the claim tests: one evaluation context per session, and a sink that writes the
records of the run to ``reports/pytest/`` (same format as ``mcdo claims``)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcdo import report
from mcdo.verify.engine import Context

_RECORDS: list = []


@pytest.fixture(scope="session")
def ctx() -> Context:
    return Context(seed=0, progress=False)


@pytest.fixture(scope="session")
def sink() -> list:
    return _RECORDS


def pytest_sessionfinish(session, exitstatus):
    if _RECORDS:
        out = Path(os.environ.get("MCDO_PYTEST_REPORT_DIR", "reports/pytest"))
        report.write(_RECORDS, out)
