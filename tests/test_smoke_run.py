"""Smoke runs (``mcdo claims --limit N``, ``pytest claims --limit N``; issue 33): every implemented gpu claim's
chain on at most N images per data set and the fewest MC trials and passes, on a CPU (``MCDO_ALLOW_CPU=1``), with
random-weight stand-ins for the registry's models and every data set in its documented layout
(``mcdo.testing.make_gpu_data_root``). A smoke record never judges its claim."""
from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from mcdo.models.classifier import FINETUNED_CLIP
from mcdo.verify import catalog, engine
from mcdo.verify.records import SKIPPED, SMOKE, UNDECLARED

pytestmark = [pytest.mark.arch, pytest.mark.slow]

STAND_INS = {"clip-vit-b-32": "tiny-clip", "clip-vit-b-32-laion2b": "tiny-clip", "clip-vit-b-16": "tiny-clip",
             "clip-vit-l-14-336": "tiny-clip", "siglip-vit-b-16": "tiny-siglip", "siglip2-vit-b-16": "tiny-siglip",
             "siglip-so400m-14-384": "tiny-siglip", "siglip2-so400m-14-378": "tiny-siglip",
             "siglip2-so400m-16-384": "tiny-siglip", FINETUNED_CLIP: "test_vit"}


@pytest.fixture(scope="module")
def gpu_root(tmp_path_factory):
    from mcdo.testing import make_gpu_data_root

    return make_gpu_data_root(tmp_path_factory.mktemp("gpu-data"))


@pytest.fixture
def smoke_env(gpu_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MCDO_DATA_ROOT", str(gpu_root))
    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    monkeypatch.setenv("MCDO_ALLOW_CPU", "1")
    monkeypatch.setenv("MCDO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MCDO_RECORDED_DIR", raising=False)
    monkeypatch.delenv("MCDO_SIGLIP2_BACKEND", raising=False)
    return gpu_root


def test_subset_keeps_classes_and_the_floor():
    from mcdo.verify.prerequisites import subset

    labels = np.repeat(np.arange(5), 4)
    keep = subset(labels, 5, seed=0)
    assert len(keep) == 5 and set(labels[keep]) == set(range(5))
    keep = subset(labels, 3, seed=0, min_per_class=2)
    assert len(keep) == 10 and all((labels[keep] == c).sum() == 2 for c in range(5))
    assert np.array_equal(subset(labels, 7, 3), subset(labels, 7, 3))  # seeded


def test_one_data_set_found_by_two_claims_gets_each_its_own_floor(tmp_path, monkeypatch):
    """Claims find ImageNet val with different floors (MCD's 8 images, BVL's none): in one run, whichever claim ran
    first must not decide the other's size (``pytest claims`` runs BVL before MCD; MCD-07 got 1 readable image)."""
    from mcdo.data.folders import ImageList
    from mcdo.verify.engine import Context
    from mcdo.verify.prerequisites import ensure_ready

    monkeypatch.setenv("MCDO_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("MCDO_ALLOW_CPU", "1")
    full = ImageList("val", tmp_path, tuple(tmp_path / f"{i}.jpg" for i in range(40)), np.repeat(np.arange(10), 4),
                     "test")

    def plain(root):
        return full

    def floored(root):
        return full

    floored.min_images = 8
    ctx = Context(limit=2, require_gpu=False)
    assert len(ensure_ready(ctx, [], {"val": plain}, "x")["val"]) == 2
    assert len(ensure_ready(ctx, [], {"val": floored}, "x")["val"]) == 8
    assert len(ensure_ready(ctx, [], {"val": plain}, "x")["val"]) == 2


def test_every_gpu_claim_completes_a_smoke_run(smoke_env):
    ctx = engine.Context(n_boot=20, progress=False, pretrained=False, stand_ins=STAND_INS, limit=2)
    implemented = engine.implemented()
    carried = []
    for claim_id, tier in catalog.pairs(("gpu",)):
        records = engine.evaluate(claim_id, tier, ctx)  # an evaluator error raises here
        if (claim_id, tier) not in implemented:
            assert [r.reason for r in records] == ["not implemented"]
            continue
        for r in records:
            assert r.verdict == SMOKE, (claim_id, r.model, r.verdict, r.reason)
            assert r.config["limit"] == 2 and r.departures["limit"]["run"] == 2
            assert all(d["reason"] != UNDECLARED for d in r.departures.values()), (claim_id, r.departures)
            assert r.config["gpu_waived"].startswith("MCDO_ALLOW_CPU=1")
            assert r.details["verdict_had_it_run_whole"] in ("reproduced", "not reproduced", "inconclusive",
                                                           "consistent with source")
        carried.append(claim_id)
    assert len(carried) == len(implemented & set(catalog.pairs(("gpu",))))
    mcd = engine.evaluate("MCD-03", "gpu", ctx)[0]
    assert mcd.config["trials"] == 3 and mcd.config["T"] == 4  # the fewest trials and passes


def test_mcdo_claims_limit_writes_smoke_records_apart_and_passes(smoke_env, tmp_path, monkeypatch, capsys):
    """The CLI's smoke run: records under OUT/smoke, exit 0 when every selected chain completed, 1 when one
    skipped (here: the data root removed for a second run)."""
    from mcdo import cli

    monkeypatch.setattr(engine, "Context", functools.partial(engine.Context, n_boot=20, pretrained=False,
                                                             stand_ins=STAND_INS))
    monkeypatch.chdir(tmp_path)
    args = ["claims", "--tier", "gpu", "--id", "MCD-07", "--id", "BVL-03", "--limit", "2", "--quiet", "--no-figures"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "every selected gpu claim's chain completed" in out
    data = json.loads((tmp_path / "reports" / "smoke" / "claims.json").read_text())
    verdicts = {r["verdict"] for r in data["records"]}
    assert verdicts == {SMOKE} and not (tmp_path / "reports" / "claims.json").exists()
    monkeypatch.setenv("MCDO_DATA_ROOT", str(tmp_path / "nothing"))
    (tmp_path / "nothing").mkdir()
    assert cli.main(args + ["--replace"]) == 1
    assert "did not complete" in capsys.readouterr().err


def test_limit_must_be_positive(capsys):
    from mcdo import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["claims", "--limit", "0"])
    assert e.value.code == 2 and "0 is not a positive number" in capsys.readouterr().err
    assert SKIPPED != SMOKE
