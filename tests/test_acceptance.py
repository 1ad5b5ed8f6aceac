"""One judge behind both front doors (issue 34): ``mcdo claims`` and ``pytest claims`` apply the same rules
(``mcdo.verify.acceptance``), so a run that pytest fails, the CLI fails too, naming the rule."""
from __future__ import annotations

import pytest

from mcdo import cli
from mcdo.verify import catalog, engine, findings
from mcdo.verify.acceptance import Outcome, accept
from mcdo.verify.records import REPRODUCED, SKIPPED, UNDECLARED, Record


def _plant(monkeypatch, change):
    real = engine.evaluate

    def planted(claim_id, tier, ctx=None):
        records = real(claim_id, tier, ctx)
        for r in records:
            change(r)
        return records

    monkeypatch.setattr(engine, "evaluate", planted)


def test_mcdo_claims_exits_non_zero_on_a_planted_undeclared_departure(monkeypatch, tmp_path, capsys):
    args = ["claims", "--tier", "math", "--id", "OOD-01", "--out", str(tmp_path), "--quiet", "--no-figures"]
    assert cli.main(args) == 0
    capsys.readouterr()
    _plant(monkeypatch, lambda r: r.departures.update(planted=dict(source=1, run=2, reason=UNDECLARED)))
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "OOD-01/math: defect: OOD-01 on math: undeclared departures" in err and "planted = 2" in err


def test_mcdo_claims_exits_non_zero_when_a_claim_fails_without_a_finding(monkeypatch, tmp_path, capsys):
    _plant(monkeypatch, lambda r: setattr(r, "verdict", "not reproduced"))
    assert cli.main(["claims", "--tier", "math", "--id", "OOD-01", "--out", str(tmp_path), "--quiet",
                     "--no-figures"]) == 1
    assert "OOD-01/math: not reproduced" in capsys.readouterr().err


def _rec(verdict, **kw):
    return Record("OOD-01", "math", "m", verdict, measured=0.5, ci=(0.4, 0.6), **kw)


def test_the_rules_in_order():
    assert accept("OOD-01", "math", [_rec(REPRODUCED)]).outcome == Outcome.PASS
    assert accept("OOD-01", "math", [_rec(SKIPPED, reason="no GPU")]).outcome == Outcome.SKIP
    j = accept("OOD-01", "gpu", [_rec(SKIPPED, reason="no GPU")], strict_tiers={"gpu"})
    assert j.outcome == Outcome.DEFECT and "strict" in j.message
    bad = _rec(REPRODUCED)
    bad.departures = {"T": dict(source=64, run=32, reason=UNDECLARED)}
    assert accept("OOD-01", "math", [bad]).outcome == Outcome.DEFECT  # before the verdict is looked at
    assert accept("OOD-01", "math", [_rec("inconclusive")]).outcome == Outcome.NOT_REPRODUCED


def test_a_finding_is_an_expected_failure_only_with_its_recorded_figures():
    (claim, tier), _ = next(iter(catalog.FINDINGS.items()))
    rows = findings.load()[f"{claim}/{tier}"]
    records = [Record(claim, tier, r["model"].split(" [")[0], r["verdict"], measured=r["measured"],
                      ci=tuple(r["ci"]) if r.get("ci") else None,
                      variant=r["model"].split(" [")[1][:-1] if " [" in r["model"] else "") for r in rows]
    if all(r.verdict in (REPRODUCED, "consistent with source") for r in records):
        pytest.skip("the first finding's records all hold")
    assert accept(claim, tier, records).outcome == Outcome.EXPECTED_FAILURE
    moved = [Record(**{**r.__dict__, "measured": (r.measured or 0) + 10}) for r in records]
    assert accept(claim, tier, moved).outcome == Outcome.DEFECT  # drift
    held = [Record(**{**r.__dict__, "verdict": REPRODUCED}) for r in records]
    assert accept(claim, tier, held).outcome in (Outcome.UNEXPECTED_PASS, Outcome.DEFECT)


@pytest.mark.arch
def test_parametrize_with_claims_in_a_researchers_own_project(pytester, tmp_path, monkeypatch):
    """A throwaway project that never sees ``claims/``: ``parametrize_with_claims`` gives it MCD-07 on the
    researcher's checkpoint, run by the same engine and judge. Its smoke run passes; its full run on a
    softmax-loss model is judged by the softmax family's expectation (the gate fails), as ``pytest claims
    --model`` judges it."""
    from mcdo.testing import make_gpu_data_root, save_open_clip_checkpoint

    ckpt = save_open_clip_checkpoint("mcdo-tiny-clip", tmp_path / "mine.pt")
    data = make_gpu_data_root(tmp_path / "data")
    pytester.makepyfile(test_mine=f'''
import sys

from mcdo.testing import parametrize_with_claims

MINE = "mcdo-tiny-clip:{ckpt}"


@parametrize_with_claims([MINE], limit=2)
def test_smoke(model, claim):
    records = claim(model)
    assert "_harness" not in sys.modules and [r.verdict for r in records] == ["smoke run"]


@parametrize_with_claims([MINE], claims=["MCD-07"])
def test_full(model, claim):
    (record,) = claim(model)
    assert record.model == MINE and record.expected == "fail" and record.config["user_model"] is True
''')
    for k, v in dict(MCDO_DATA_ROOT=str(data), MCDO_ALLOW_CPU="1", MCDO_DEVICE="cpu",
                     MCDO_CACHE_DIR=str(tmp_path / "cache")).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("MCDO_RECORDED_DIR", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*2 passed*"])
    with pytest.raises(ValueError, match="not model-parametrised"):
        from mcdo.testing import parametrize_with_claims

        parametrize_with_claims(["tiny-clip"], claims=["OOD-04"])


def test_a_record_pooled_over_random_seeds_carries_no_seed(monkeypatch):
    """Issue 35.6: '3 seeds pooled' records carried config.seed = 0, so filtering by seed mixed them with seed 0's
    own; now seed is null and pooled_over lists the seeds, while a one-seed record keeps its seed."""
    def evaluator(ctx):
        return [Record("OOD-01", "math", "pooled", REPRODUCED, config=dict(seeds=[0, 1, 2])),
                Record("OOD-01", "math", "one", REPRODUCED, config=dict(seeds=[0])),
                Record("OOD-01", "math", "seed 2", REPRODUCED, config=dict(seed=2, seeds=[0, 1, 2]))]

    engine.implemented()
    monkeypatch.setitem(engine._EVALUATORS, ("OOD-01", "math"), evaluator)
    pooled, one, own = engine.evaluate("OOD-01", "math", engine.Context(seed=0))
    assert pooled.config["seed"] is None and pooled.config["pooled_over"] == [0, 1, 2]
    assert one.config["seed"] == 0 and "pooled_over" not in one.config
    assert own.config["seed"] == 2 and "pooled_over" not in own.config
