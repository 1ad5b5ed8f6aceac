"""The registry judges (issue 19): every verdict reads the seed's number from ``verify/sources.py``, so changing
the registry changes the verdict, no evaluator types a number or a verdict rule of its own, and every record's
departures from the source's configuration are declared."""
from __future__ import annotations

import ast
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from mcdo import stats as S
from mcdo.verify import catalog, engine, records, sources
from mcdo.verify.records import NOT_REPRODUCED, REPRODUCED, SKIPPED, UNDECLARED

pytestmark = pytest.mark.math
VERIFY = Path(records.__file__).parent


def _options(claim_id):
    for figure, opts in sources.EXPECT[claim_id].items():
        for e in (opts if isinstance(opts, tuple) else (opts,)):
            yield figure, e


def _tier(claim_id, e):
    return e.tiers[0] if e.tiers else catalog.get(claim_id).tiers[0]


CASES = [pytest.param(c, f, e, id=f"{c}-{f}-{_tier(c, e)}") for c in sources.EXPECT for f, e in _options(c)
         if e.kind in ("value", "above", "below")]


def _reproducing_ci(claim_id, e):
    """A CI the expectation calls reproduced: tight at the value, or just on the claimed side of a threshold."""
    if e.kind == "value":
        half = catalog.margin(claim_id).half_width(e.value)
        return (e.value - half / 4, e.value + half / 4)
    step = max(abs(e.value), 1.0) * 0.05
    lo = e.value + step if e.kind == "above" else e.value - 3 * step
    return (lo, lo + 2 * step)


@pytest.mark.parametrize("claim_id,figure,e", CASES)
def test_perturbing_the_registry_changes_the_verdict(claim_id, figure, e, monkeypatch):
    """timm-style, over the registry: on fixed measurements, moving the expected value (or flipping a direction)
    in the registry turns a reproduced verdict into a not-reproduced one."""
    tier = _tier(claim_id, e)
    ci = _reproducing_ci(claim_id, e)
    assert records.decide(claim_id, figure, ci, tier).verdict == REPRODUCED
    if e.kind == "value":
        half = catalog.margin(claim_id).half_width(e.value)
        moved = dataclasses.replace(e, value=e.value + 3 * max(half, abs(e.value) * 0.5, 1e-3))
    else:
        moved = dataclasses.replace(e, kind="below" if e.kind == "above" else "above")
    table = dict(sources.EXPECT[claim_id])
    opts = table[figure]
    table[figure] = tuple(moved if o is e else o for o in opts) if isinstance(opts, tuple) else moved
    monkeypatch.setitem(sources.EXPECT, claim_id, table)
    assert records.decide(claim_id, figure, ci, tier).verdict == NOT_REPRODUCED


def test_every_value_expectation_has_a_margin():
    missing = [c for c in sources.EXPECT for _, e in _options(c) if e.kind == "value" and c not in catalog.MARGINS]
    assert not missing


def test_no_evaluator_types_a_verdict_rule_or_calls_the_raw_rules():
    """Evaluators measure; only records.decide / gate_expectation turn a figure into a verdict, so no evaluator
    imports or calls judge, direction_verdict or equivalence_verdict (the rules that take a typed number)."""
    raw = {"judge", "direction_verdict", "equivalence_verdict"}
    offenders = []
    for path in VERIFY.rglob("*.py"):
        if path.name in ("records.py",):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and any(a.name in raw for a in node.names):
                offenders.append(f"{path.relative_to(VERIFY)} imports {[a.name for a in node.names if a.name in raw]}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in raw:
                offenders.append(f"{path.relative_to(VERIFY)}:{node.lineno}")
    assert not offenders


@pytest.fixture
def published(monkeypatch):
    from mcdo import env

    root = Path(__file__).resolve().parents[2] / "shared" / "recorded"
    if not (root / "exp0_nested_mc").is_dir():
        pytest.skip(f"the recorded folder is not at {root}")
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(root))
    assert env.recorded_dir() == root
    return root


RECORDED = [c for c, t in catalog.pairs(("recorded",))]


@pytest.mark.recorded
@pytest.mark.parametrize("claim_id", RECORDED)
def test_recorded_verdicts_follow_the_registry(claim_id, published, monkeypatch):
    """On the published measurements, each recorded-tier claim's verdicts change when its registry expectation
    is moved far (a value by 3 margins, a direction flipped, a gate's pass and fail swapped): the evaluator reads
    the registry, it does not retype the seed's number."""
    def run():
        return engine.evaluate(claim_id, "recorded", engine.Context(n_boot=200, progress=False))

    first = run()
    before = [r.verdict for r in first]
    assert SKIPPED not in before
    original = dict(sources.EXPECT[claim_id])
    # a value moved far away, or (for a value not reproduced) moved onto the measurement; a direction flipped
    for move in ("far", "onto"):
        table = {}
        for figure, opts in original.items():
            new = []
            for e in (opts if isinstance(opts, tuple) else (opts,)):
                if e.kind == "value":
                    half = catalog.margin(claim_id).half_width(e.value)
                    value = (e.value + 3 * max(half, abs(e.value) * 0.5, 0.05) if move == "far"
                             else float(np.mean(first[0].ci)))
                    e = dataclasses.replace(e, value=value)
                else:
                    e = dataclasses.replace(e, kind={"above": "below", "below": "above", "pass": "fail",
                                                     "fail": "pass"}[e.kind])
                new.append(e)
            table[figure] = tuple(new)
        monkeypatch.setitem(sources.EXPECT, claim_id, table)
        if [r.verdict for r in run()] != before:
            return
    pytest.fail(f"{claim_id}: no perturbation of the registry changed its verdicts {before}")


def test_departures_are_computed_and_an_undeclared_one_is_flagged():
    cfg = dict(sources.SOURCE["MCD-03"], n_images=200, p=0.05)
    d = records.departures("MCD-03", "recorded", cfg)
    assert d["n_images"]["reason"] == sources.DEPARTURES["recorded"]["n_images"]
    assert d["p"]["run"] == 0.05 and d["p"]["source"] == 0.01
    assert records.departures("MCD-03", "gpu", dict(sources.SOURCE["MCD-03"], p=0.05))["p"]["reason"] == UNDECLARED
    declared = records.departures("MCD-03", "gpu", dict(sources.SOURCE["MCD-03"], p=0.05), {"p": "asked for"})
    assert declared["p"]["reason"] == "asked for"
    assert records.departures("MCD-03", "gpu", dict(sources.SOURCE["MCD-03"])) == {}


def test_sweep_t_needed_reaches_the_gate_in_a_simulation():
    """Known per-pass SNR, the sweep's K = 5 trials at T = 16: at the T the sweep names, the SNR estimated over
    5 trials reaches 2 on average (the formula without the +1/K correction named too few passes)."""
    from mcdo.sweep import t_needed

    rng = np.random.default_rng(0)
    n, k = 4000, 5
    for per_pass in (0.01, 0.03, 0.1):
        signal = rng.normal(0, np.sqrt(per_pass), n)  # SNR(T) = per_pass * T with unit noise per pass
        short = signal + rng.normal(0, np.sqrt(1 / 16), (k, n))
        T = t_needed(S.snr(short), 16, k)
        reached = [S.snr(signal + rng.normal(0, np.sqrt(1 / T), (k, n))) for _ in range(5)]
        assert np.mean(reached) == pytest.approx(2.0, rel=0.12), (per_pass, T, reached)
        naive = 16 * 2.0 / S.snr(short)
        assert naive < T or math.isclose(naive, T, rel_tol=0.05)
