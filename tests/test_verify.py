"""The claim framework: registry coverage, verdict rules, skip reasons, reports and the CLI."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from mcdo import cli, report
from mcdo.errors import MissingResource
from mcdo.verify import catalog, engine
from mcdo.verify.records import (CONSISTENT, INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, SKIPPED, Record,
                                 direction_verdict, equivalence_verdict, judge, n_to_decide)

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
        extra = set(catalog.EXTRA_TIERS.get(cid, {}))
        assert named == set(catalog.get(cid).tiers) - extra and not named & extra, cid


def test_value_and_direction_rules():
    assert equivalence_verdict((0.45, 0.52), 0.49, 0.05) == REPRODUCED
    assert equivalence_verdict((0.55, 0.60), 0.49, 0.05) == NOT_REPRODUCED
    assert equivalence_verdict((0.40, 0.52), 0.49, 0.05) == INCONCLUSIVE  # straddles the lower edge
    # a wide CI confirms nothing (the old rule called MCD-03's [0.886, 1.151] against 1.0 +- 0.05 reproduced, and
    # would have for any CI overlapping 0.95..1.05)
    assert equivalence_verdict((0.5, 1.5), 1.0, 0.2) == INCONCLUSIVE
    # MCD-09 proxy seed 1: 0.110 [0.009, 0.209] is not "~0": it is inconclusive against 0 +- 0.1
    verdict, note = judge("MCD-09", (0.009, 0.209), 0.0, n=400)
    assert verdict == INCONCLUSIVE and "images would decide" in note and "Cohen" in note
    assert direction_verdict((0.51, 0.6), 0.5) == REPRODUCED
    assert direction_verdict((0.45, 0.6), 0.5) == INCONCLUSIVE
    assert direction_verdict((0.3, 0.45), 0.5) == NOT_REPRODUCED
    assert direction_verdict((-0.3, -0.1), 0.0, above=False) == REPRODUCED


def test_n_to_decide_by_simulation(rng):
    """Half-width ~ 1/sqrt(n): the predicted n makes the CI fit inside the margin, checked by simulating means."""
    # centre 0.05 from expected 0, margin 0.1: room 0.05; half-width 0.1 at n = 400 -> 400 * (0.1 / 0.05)^2 = 1600
    assert n_to_decide((-0.05, 0.15), 0.0, 0.1, 400) == pytest.approx(1600)
    sd = 0.1 * np.sqrt(400) / 1.96  # the per-image sd that gives half-width 0.1 at n = 400
    n = n_to_decide((-0.05, 0.15), 0.0, 0.1, 400)
    for factor, verdict in ((1.25, REPRODUCED), (0.75, INCONCLUSIVE)):  # a quarter more decides, a quarter less not
        means = rng.normal(0.05, sd, size=(4000, int(factor * n))).mean(axis=1)
        assert equivalence_verdict(tuple(np.quantile(means, [0.025, 0.975])), 0.0, 0.1) == verdict, factor
    assert n_to_decide((0.1, 0.3), 0.0, 0.2, 50) == float("inf")  # centred on the edge


def test_every_implemented_value_claim_has_a_margin_with_a_reason():
    value_claims = {c for c, _ in engine.implemented() if catalog.get(c).comparison == "value"}
    assert value_claims <= set(catalog.MARGINS)
    assert all(len(m.why) > 20 for m in catalog.MARGINS.values())
    # one table, one margin: PRB-02's two approximate counts are judged alike
    assert catalog.margin("PRB-02").relative


def test_summary_checks_are_labelled_consistent_not_reproduced(monkeypatch):
    if not (CLAIMS_MD.parent / "recorded").is_dir():
        pytest.skip("needs ../shared/recorded")
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(CLAIMS_MD.parent / "recorded"))
    for claim_id in ("MCD-11", "MCD-12", "MCD-18"):
        (r,) = engine.evaluate(claim_id, "recorded", engine.Context(progress=False))
        assert r.verdict == CONSISTENT and "not a reproduction" in r.reason, (claim_id, r.verdict)


def test_bootstrap_of_trials_resamples_images_not_trials(rng):
    """The recorded tier's CI resamples images (axis 1 of [K, N]): each image's value is constant across trials
    here, so resampling trials would give a zero-width CI; resampling images matches a naive loop."""
    from mcdo import stats as S

    x = np.repeat(rng.normal(size=(1, 50)), 6, axis=0)  # [K=6, N=50]

    def mean_of_image_means(a):
        return float(a.mean())

    lo, hi = S.bootstrap_ci(mean_of_image_means, x, axis=1, n_boot=300, seed=3)
    assert hi - lo > 0.1
    r = np.random.default_rng(3)
    naive = [x[:, r.integers(0, 50, 50)].mean() for _ in range(300)]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(naive, [0.025, 0.975])))


def test_unknown_id_and_wrong_tier_are_clear_errors():
    with pytest.raises(KeyError, match="known ids"):
        engine.evaluate("MCD-99", "math")
    with pytest.raises(ValueError, match="its tiers are"):
        engine.evaluate("MCD-03", "math")
    with pytest.raises(ValueError, match="unknown tier"):
        catalog.pairs(("nope",))


def test_unimplemented_claim_is_skipped_never_passed(monkeypatch):
    """Every registered pair has an evaluator today (MCD-16's gpu tier was the last); one taken out of the
    engine's table is skipped as 'not implemented', never passed."""
    engine.implemented()
    pair = ("MCD-16", "gpu")
    monkeypatch.delitem(engine._EVALUATORS, pair)
    assert pair not in engine.implemented()
    rec = engine.evaluate(*pair)
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
    assert cli.main(["claims", "--id", "XYZ-01"]) == 2  # a usage error (issue 36.8), named on stderr
    assert "unknown claim id(s) XYZ-01" in capsys.readouterr().err


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
    n, k, sig, c = 3000, 10, 1.0, 8.0
    truth = rng.normal(scale=sig, size=n)
    short = truth[None, :] + rng.normal(scale=np.sqrt(c / 16), size=(k, n))
    long = truth[None, :] + rng.normal(scale=np.sqrt(c / 64), size=(k, n))
    assert S.predicted_snr(S.snr(short), 16, k, 64) == pytest.approx(S.snr(long), rel=0.08)
    # bias-corrected SNR per pass is sig^2 / c: ICC 0.75 needs SNRc = 3 -> T = 3 c / sig^2 = 24
    assert S.passes_needed(S.snr(short), 16, k)["icc"] == pytest.approx(24, rel=0.1)


def test_each_evaluator_lives_in_its_family_and_tier_module():
    """A newcomer finds any claim's code in one hop: (OOD-07, proxy) is in mcdo/verify/ood/proxy.py."""
    engine.implemented()
    misplaced = {pair: fn.__module__ for pair, fn in engine._EVALUATORS.items()
                 if fn.__module__ != f"mcdo.verify.{pair[0].split('-')[0].lower()}.{pair[1]}"}
    assert not misplaced


def test_claims_list_prints_what_judges(capsys):
    """Issue 34: ``--list`` printed ``expected: "1.0"`` and the dead ``expected_value``; now each claim's entry holds
    the figures' margins with their reasons, the source's expectation and configuration, the gate, the declared
    departures per tier and the findings: changing any of them changes the listing."""
    import json

    from mcdo.verify import sources

    assert cli.main(["claims", "--list"]) == 0
    listing = {e["id"]: e for e in json.loads(capsys.readouterr().out)}
    assert set(listing) == set(catalog.BY_ID)
    m03, b03, m07 = listing["MCD-03"], listing["BVL-03"], listing["MCD-07"]
    assert m03["margins"]["MCD-03"]["size"] == catalog.MARGINS["MCD-03"].size and m03["margins"]["MCD-03"]["why"]
    assert m03["source_configuration"] == sources.SOURCE.get("MCD-03")
    assert {"lambda_image", "lambda_text", "ece20", "nlpd", "baseline_ece20", "BVL-03"} <= set(b03["margins"])
    assert m07["gate"] == dict(sources.GATE) and m07["expect"]["sigmoid"]["kind"] == "pass"
    assert m07["findings"]["proxy"]["figures"] and "departures" in m07 and m07["departures"]["proxy"]["model"]


def test_every_evaluator_is_found_by_grepping_its_claim_id():
    """Issue 34: MCD-03..06 were registered in loops, so ``grep '@evaluates("MCD-03"'`` found nothing. Each
    (claim, tier) now has its own decorator with the id written out, in its family and tier module."""
    import re
    from pathlib import Path

    engine.implemented()
    root = Path(engine.__file__).parent
    for (claim_id, tier), fn in engine._EVALUATORS.items():
        text = (root / claim_id.split("-")[0].lower() / f"{tier}.py").read_text()
        assert re.search(rf'@evaluates\("{claim_id}", (TIER|"{tier}")\)', text), (claim_id, tier)
    assert "for _id, _args in FIGURE_CLAIMS" not in (root / "mcd" / "gpu.py").read_text()


def test_ci_run_fails_without_the_shared_folder(tmp_path):
    """CI always has ../shared: a run without it would skip the recorded tier and stay green, so it fails."""
    import shutil
    import subprocess

    repo = tmp_path / "clone"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parents[1] / ".ci/run", repo / ".ci/run")
    out = subprocess.run(["bash", str(repo / ".ci/run")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "../shared" in out.stderr


def test_a_crashing_evaluator_is_never_an_expected_failure(monkeypatch):
    """A finding's strict xfail expects the claim's AssertionError only: an evaluator that crashes (here an
    AxisError injected into MCD-13's proxy evaluator) raises through and fails the test."""
    import _harness

    marks = {p.id: p.marks for p in _harness.params("MCD")}
    for claim_id, tier in catalog.FINDINGS:
        if claim_id.startswith("MCD"):
            (xfail,) = [m for m in marks[f"{claim_id}-{tier}"] if m.name == "xfail"]
            assert xfail.kwargs["strict"] and xfail.kwargs["raises"] is AssertionError

    def crash(ctx):
        raise np.exceptions.AxisError("injected")

    monkeypatch.setitem(engine._EVALUATORS, ("MCD-13", "proxy"), crash)
    with pytest.raises(np.exceptions.AxisError):
        _harness.check("MCD-13", "proxy", engine.Context(progress=False), [])


def test_findings_text_comes_from_the_data_and_drift_is_caught():
    from mcdo.verify import findings

    data = findings.load()
    assert set(data) == {f"{c}/{t}" for c, t in catalog.FINDINGS}  # every finding has its figures
    claim_id, tier = "MCD-13", "proxy"
    rows = data[f"{claim_id}/{tier}"]
    text = findings.text(claim_id, tier)
    assert all(f"{r['measured']:.3f}" in text for r in rows)
    fresh = [Record(claim_id, tier, r["model"], r["verdict"], r["measured"], tuple(r["ci"]) if r["ci"] else None)
             for r in rows]
    findings.check(claim_id, tier, fresh)  # the figures as recorded: no drift
    fresh[0].measured += 0.5
    with pytest.raises(findings.FindingDrift, match="moved"):
        findings.check(claim_id, tier, fresh)
    assert not issubclass(findings.FindingDrift, AssertionError)


def test_finding_figures_may_move_within_their_own_interval_but_not_change_verdict(monkeypatch, tmp_path):
    from mcdo.verify import findings

    monkeypatch.setattr(findings, "PATH", tmp_path / "f.json")
    monkeypatch.setitem(catalog.FINDINGS, ("MCD-13", "proxy"), "test")
    findings.PATH.write_text('{"MCD-13/proxy": [{"model": "m", "verdict": "inconclusive", "measured": 0.003, '
                             '"ci": [-0.035, 0.041]}]}')

    def check(measured, lo, hi, verdict="inconclusive"):
        findings.check("MCD-13", "proxy", [Record("MCD-13", "proxy", "m", verdict, measured, (lo, hi))])

    check(0.010, -0.0098, 0.0305)  # every figure within the recorded half-width (0.038): same finding
    with pytest.raises(findings.FindingDrift):
        check(0.050, 0.0, 0.1)  # the value moved by more than its interval allows
    check(0.005, -0.03, 0.04, verdict="reproduced")  # an edge crossed by figures within 0.02: another CPU's rounding
    with pytest.raises(findings.FindingDrift):
        check(0.03, 0.001, 0.07, verdict="reproduced")  # crossed by a figure that moved further: drift
    findings.PATH.write_text('{"MCD-13/proxy": [{"model": "m", "verdict": "not reproduced", "measured": -0.01, '
                             '"ci": [-0.019, -0.001]}]}')
    with pytest.raises(findings.FindingDrift):
        check(-0.005, 0.001, 0.009, verdict="reproduced")  # a decided verdict turned over: always drift


def test_strict_tier_turns_a_gpu_skip_into_a_failure(tmp_path):
    """Issue 23: on a nightly GPU runner that lost its GPU or weights, `pytest claims -m gpu` skipped all 29 and
    exited 0. Under --strict-tier gpu (or MCDO_STRICT=1) such a skip fails the run, naming what is missing."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, MCDO_DATA_ROOT=str(tmp_path), MCDO_PYTEST_REPORT_DIR=str(tmp_path / "r"))
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "claims/test_ood.py", "-k",
            "OOD-03-gpu", "-o", "addopts="]
    plain = subprocess.run(base, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    strict = subprocess.run(base + ["--strict-tier", "gpu"], cwd=root, env=env, capture_output=True, text=True,
                            timeout=600)
    by_env = subprocess.run(base, cwd=root, env=dict(env, MCDO_STRICT="1"), capture_output=True, text=True,
                            timeout=600)
    assert plain.returncode == 0 and "1 skipped" in plain.stdout, plain.stdout[-1500:]
    assert strict.returncode == 1 and "skipped under --strict-tier gpu" in strict.stdout, strict.stdout[-1500:]
    assert by_env.returncode == 1


def test_version_and_usage_errors_exit_2(capsys):
    from mcdo import __version__
    from mcdo.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"mcdo {__version__}"
    with pytest.raises(SystemExit) as e:
        main(["ood", "--no-such-option"])
    assert e.value.code == 2


def test_every_results_file_says_where_it_came_from(tmp_path, monkeypatch):
    """Issue 23: claims.json held commit, coverage, figures, notes and records only. It (like every tool's
    results) now records package versions, Python, the device, the date, the command line, the commit with its
    dirty flag and the variables mcdo reads."""
    from mcdo import report
    from mcdo.env import PROVENANCE_PACKAGES, provenance

    monkeypatch.setenv("MCDO_SEED_NOTE", "x")
    p = provenance("cpu", "fp32")
    assert set(p["packages"]) == set(PROVENANCE_PACKAGES) and p["packages"]["torch"]
    assert p["environment"]["MCDO_SEED_NOTE"] == "x" and p["dtype"] == "fp32" and p["command"]
    assert p["commit"] and p["date"].endswith("+00:00")
    report.write([Record("MCD-02", "math", "m", REPRODUCED, 0.1, (0.0, 0.2))], tmp_path)
    payload = json.loads((tmp_path / "claims.json").read_text())
    assert payload["provenance"]["packages"]["numpy"] and payload["provenance"]["python"]


def test_the_grid_legend_names_every_symbol_in_the_grid():
    """A smoke run's grid showed ⚙ in 27 cells and a legend without it."""
    r = Record("MCD-03", "gpu", "m", "reproduced")
    r.verdict = "smoke run"
    legend = [line for line in report.markdown([r]).splitlines() if "not evaluated in this run" in line][0]
    assert "⚙ smoke run" in legend and "✅ reproduced" in legend
    legend = [line for line in report.markdown([Record("MCD-03", "gpu", "m", "skipped")]).splitlines()
              if "not evaluated in this run" in line][0]
    assert "⚙" not in legend and "⏭ skipped" in legend
