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
    parser.addoption("--model", action="append", default=[], metavar="SPEC", dest="user_models",
                     help="also run the model-parametrised gpu claims on this model (repeatable; MCDO_MODELS "
                          "takes a comma-separated list): a registry name, ARCH:TAG or ARCH:/path/ckpt.pt "
                          "(open_clip), hf-hub:ORG/NAME, ORG/NAME or a folder (transformers)")
    parser.addoption("--limit", type=int, default=None, metavar="N",
                     help="a smoke run of the gpu tier (as mcdo claims --limit): at most N images per data set, the "
                          "fewest MC trials; a gpu claim passes when its chain completes, none is judged")


def user_models(config) -> list[str]:
    """The user's models: --model, then MCDO_MODELS (comma-separated), each once; a name no form matches is a
    usage error at collection, with the forms and the registry."""
    from mcdo.model_specs import unknown_model

    names = [*config.getoption("user_models"), *os.environ.get("MCDO_MODELS", "").split(",")]
    names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    bad = [unknown_model(n) for n in names if unknown_model(n)]
    if bad:
        raise pytest.UsageError("--model / MCDO_MODELS: " + "; ".join(bad))
    return names


def pytest_generate_tests(metafunc):
    """claims/test_user_model_claims.py: one case per (model-parametrised claim, tier, user's model), none without
    --model / MCDO_MODELS (its test is then deselected, not skipped)."""
    if "user_model" in metafunc.fixturenames:
        from _harness import user_params

        metafunc.parametrize("claim_id,tier,user_model", user_params(user_models(metafunc.config)))


def pytest_collection_modifyitems(config, items):
    empty = [i for i in items if i.originalname == "test_claim_on_user_model" and "NOTSET" in i.name]
    if empty:
        config.hook.pytest_deselected(items=empty)
        items[:] = [i for i in items if i not in empty]


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
    limit = request.config.getoption("--limit")
    if limit is not None and limit < 1:
        raise pytest.UsageError(f"--limit {limit}: give a positive number of images")
    return Context(seed=0, progress=False, strict_tiers=frozenset(strict_tiers(request.config)), limit=limit)


@pytest.fixture(scope="session")
def sink() -> list:
    return _RECORDS


def pytest_sessionfinish(session, exitstatus):
    if _RECORDS:
        default = "reports/pytest" + ("-smoke" if session.config.getoption("--limit") else "")
        out = Path(os.environ.get("MCDO_PYTEST_REPORT_DIR", default))
        report.write(_RECORDS, out)
