"""The claim framework: registry coverage, verdict rules, skip reasons, reports and the CLI."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from mcdo import cli, report
from mcdo.errors import MissingResource
from mcdo.verify import catalog, engine
from mcdo.verify.records import (INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, SKIPPED, Record, direction_verdict,
                                 value_verdict)

CLAIMS_MD = Path(__file__).resolve().parents[2] / "shared" / "CLAIMS.md"


def test_registry_holds_every_id_of_claims_md():
    if not CLAIMS_MD.is_file():
        pytest.skip(f"no CLAIMS.md at {CLAIMS_MD} (it lives in ../shared beside the checkout)")
    text = CLAIMS_MD.read_text()
    ids = set(re.findall(r"^\| ([A-Z]{3}-\d\d) \|", text, re.M))
    assert ids == set(catalog.BY_ID)
    # and with the same tiers
    for row in re.findall(r"^\| ([A-Z]{3}-\d\d) \|.*\| ([^|]*) \|$", text, re.M):
        cid, tiers = row
        named = set(re.findall(r"\b(math|arch|recorded|proxy|gpu)\b", tiers))
        assert named == set(catalog.get(cid).tiers), cid


def test_value_and_direction_rules():
    assert value_verdict((0.45, 0.52), 0.49, 0.005) == REPRODUCED
    assert value_verdict((0.50, 0.52), 0.49, 0.005) == NOT_REPRODUCED
    assert value_verdict((0.40, 0.4951), 0.50, 0.005) == REPRODUCED  # touches the precision interval
    assert direction_verdict((0.51, 0.6), 0.5) == REPRODUCED
    assert direction_verdict((0.45, 0.6), 0.5) == INCONCLUSIVE
    assert direction_verdict((0.3, 0.45), 0.5) == NOT_REPRODUCED
    assert direction_verdict((-0.3, -0.1), 0.0, above=False) == REPRODUCED


def test_unknown_id_and_wrong_tier_are_clear_errors():
    with pytest.raises(KeyError, match="known ids"):
        engine.evaluate("MCD-99", "math")
    with pytest.raises(ValueError, match="its tiers are"):
        engine.evaluate("MCD-03", "math")
    with pytest.raises(ValueError, match="unknown tier"):
        catalog.pairs(("nope",))


def test_unimplemented_claim_is_skipped_never_passed():
    missing = [p for p in catalog.pairs() if p not in engine.implemented()]
    assert missing, "nothing is unimplemented: then this test has nothing to check"
    rec = engine.evaluate(*missing[0])
    assert [r.verdict for r in rec] == [SKIPPED] and rec[0].reason == "not implemented"


def test_missing_recorded_dir_is_a_skip_naming_the_variable(monkeypatch):
    monkeypatch.delenv("MCDO_RECORDED_DIR", raising=False)
    (rec,) = engine.evaluate("MCD-03", "recorded", engine.Context())
    assert rec.verdict == SKIPPED and "MCDO_RECORDED_DIR" in rec.reason
    monkeypatch.setenv("MCDO_RECORDED_DIR", "/nonexistent/place")
    (rec,) = engine.evaluate("MCD-03", "recorded", engine.Context())
    assert rec.verdict == SKIPPED and "exp0_nested_mc" in rec.reason


def test_evaluator_registration_is_guarded():
    with pytest.raises(ValueError, match="not registered on tier"):
        engine.evaluates("MCD-03", "math")
    with pytest.raises(ValueError, match="two evaluators"):
        engine.evaluates("MCD-02", "math")(lambda ctx: [])


def _records():
    return [Record("MCD-03", "recorded", "clip_b32", REPRODUCED, 1.01, (0.9, 1.1), "1.0", "ok"),
            Record("MCD-08", "recorded", "clip_b32", NOT_REPRODUCED, float("nan"), None, "0.25", "a | b"),
            Record("OOD-03", "gpu", "-", SKIPPED, reason="not implemented")]


def test_report_lists_every_id_and_counts_coverage(tmp_path):
    paths = report.write(_records(), tmp_path)
    md = paths["md"].read_text()
    for cid in catalog.BY_ID:
        assert f"| {cid} |" in md
    assert "recorded 2/" in md and "gpu 0/" in md
    data = json.loads(paths["json"].read_text())
    assert {r["id"] for r in data["records"]} == {"MCD-03", "MCD-08", "OOD-03"}
    assert data["records"][1]["measured"] == "nan"  # JSON stays valid
    assert len(paths["jsonl"].read_text().splitlines()) == 3


def test_cli_list_and_math_tier(tmp_path, capsys):
    assert cli.main(["claims", "--list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in listed] == [c.id for c in catalog.CLAIMS]
    assert cli.main(["claims", "--tier", "math", "--id", "MCD-14", "--out", str(tmp_path), "--quiet",
                     "--no-figures"]) == 0
    data = json.loads((tmp_path / "claims.json").read_text())
    assert {(r["id"], r["tier"]) for r in data["records"]} == {("MCD-14", "math")}
    assert all(isinstance(r["measured"], float) and len(r["ci"]) == 2 for r in data["records"])
    with pytest.raises(SystemExit, match="unknown claim"):
        cli.main(["claims", "--id", "XYZ-01"])


def test_recorded_reader_on_a_synthetic_folder(tmp_path, monkeypatch, rng):
    folder = tmp_path / "exp0_nested_mc" / "clip_b32"
    folder.mkdir(parents=True)
    paths = np.array([f"/x/imagenet_val/n0144076{i % 3}/img{i}.JPEG" for i in range(6)])
    np.savez(folder / "exp0_trials_T4.npz", trial_pre=rng.random((3, 6)).astype(np.float32),
             trial_post=rng.random((3, 6)).astype(np.float32), paths=paths)
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(tmp_path))
    from mcdo.data import recorded as R

    t = R.nested_trials("clip_b32", 4)
    assert t.pre.shape == (3, 6) and t.pre.dtype == np.float64
    assert t.synsets[:3] == ["n01440760", "n01440761", "n01440762"]
    with pytest.raises(MissingResource, match="exp0_trials_T16.npz; this model has T = 4"):
        R.nested_trials("clip_b32", 16)


def test_snr_prediction_follows_a_simulated_one_over_T_law(rng):
    """Trial noise variance c/T with fixed image signal: the predictor recovers SNR at 4x the passes."""
    from mcdo import stats as S
    from mcdo.verify.mcd.recorded import passes_needed, predicted_snr

    n, k, sig, c = 3000, 10, 1.0, 8.0
    truth = rng.normal(scale=sig, size=n)
    short = truth[None, :] + rng.normal(scale=np.sqrt(c / 16), size=(k, n))
    long = truth[None, :] + rng.normal(scale=np.sqrt(c / 64), size=(k, n))
    assert predicted_snr(short, 16, 64) == pytest.approx(S.snr(long), rel=0.08)
    # bias-corrected SNR per pass is sig^2 / c: ICC 0.75 needs SNRc = 3 -> T = 3 c / sig^2 = 24
    assert passes_needed(short, 16)["icc"] == pytest.approx(24, rel=0.1)


def test_each_evaluator_lives_in_its_family_and_tier_module():
    """A newcomer finds any claim's code in one hop: (OOD-07, proxy) is in mcdo/verify/ood/proxy.py."""
    engine.implemented()
    misplaced = {pair: fn.__module__ for pair, fn in engine._EVALUATORS.items()
                 if fn.__module__ != f"mcdo.verify.{pair[0].split('-')[0].lower()}.{pair[1]}"}
    assert not misplaced
