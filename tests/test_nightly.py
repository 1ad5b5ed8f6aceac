"""The nightly GPU workflow and its first night (issue 33): the workflow's steps, a benchmark step that is safe
with an empty store, and the install pinned to what CI ran. actionlint itself runs in ``.ci/run``."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly-gpu.yml"


@pytest.fixture(scope="module")
def steps():
    yaml = pytest.importorskip("yaml")
    job = yaml.safe_load(WORKFLOW.read_text())["jobs"]["claims-gpu"]
    assert job["env"]["MCDO_STRICT"] == "1"
    return job["steps"]


def _runs(steps) -> list[str]:
    return [s["run"] for s in steps if "run" in s]


def test_workflow_runs_the_gate_the_claims_and_the_first_night_safe_benchmarks_in_order(steps):
    runs = _runs(steps)
    order = ["-c constraints.txt", "mcdo doctor --require gpu", "--limit 2", "pytest claims -m gpu",
             "scripts/nightly_bench.py"]
    at = [next(i for i, r in enumerate(runs) if key in r) for key in order]
    assert at == sorted(at), runs
    assert not any("--benchmark-compare" in r for r in runs)  # only through nightly_bench, which checks for a baseline


def test_workflow_uploads_reports_and_benchmarks_when_a_step_failed(steps):
    upload = [s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert upload and all(s.get("if") == "${{ always() }}" for s in upload)
    gather = [s for s in steps if "run" in s and "reports/benchmarks" in s["run"]]
    assert gather and gather[0]["if"] == "${{ always() }}"
    assert "reports/" in upload[0]["with"]["path"]


def test_workflow_mcdo_commands_parse(steps):
    """Each ``mcdo`` command of the workflow is one the CLI accepts (a renamed option fails here, not at night)."""
    from mcdo.cli import build_parser

    parser, _ = build_parser()
    for run in _runs(steps):
        for line in run.splitlines():
            if line.strip().startswith("mcdo "):
                parser.parse_args(line.split()[1:])


@pytest.mark.slow
def test_benchmark_step_saves_a_baseline_on_the_first_night_and_compares_after(tmp_path):
    """With an empty store: three runs, the last saved, the gate from scripts/bench_noise.py; the next night
    compares with it. (The plain recipe, ``--benchmark-compare`` on an empty store, exits 4.)"""
    store = tmp_path / "bench"
    select = ["--", "-k", "tiny-clip-T1-b1-naive_fp32", "-q", "-p", "no:randomly"]
    cmd = [sys.executable, str(ROOT / "scripts" / "nightly_bench.py"), "--storage", str(store), *select]
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "first night: baseline saved" in first.stdout
    assert re.fullmatch(r"\d+%\n", (store / "gate.txt").read_text())
    assert len(list(store.glob("*/0001_*.json"))) == 1 and len(list((store / "noise").glob("run*.json"))) == 3
    # the second night compares with the gate read from BENCH_GATE, set wide here: the test checks the plumbing
    # (a compare happens, with the gate), never this machine's timing, which a busy CI machine would move
    import os

    second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "BENCH_GATE": "10000%"})
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    said = second.stdout + second.stderr
    assert "--benchmark-compare-fail=min:10000%" in said and "Comparing against benchmarks from" in said
    assert len(list(store.glob("*/0002_*.json"))) == 1


def test_install_is_pinned_to_what_ci_ran():
    """Every dependency of the package and its test extra is pinned in constraints.txt, each pin admitted by the
    package's own range, and the README's install and .ci/run both use it."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in meta["dependencies"] + meta["optional-dependencies"]["test"]]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])
    assert "-c constraints.txt" in (ROOT / ".ci" / "run").read_text()
    assert "pip install -e '.[test]' -c constraints.txt" in (ROOT / "README.md").read_text()


def test_readme_duration_table_is_the_workload_accounting():
    """The README's per-claim durations are generated (``workload.readme_table``), never typed."""
    from mcdo.verify import workload

    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- estimate:begin -->\n", 1)[1].split("\n<!-- estimate:end -->", 1)[0]
    assert table == workload.readme_table()


def test_workload_covers_every_gpu_claim_and_counts_as_flops_does(monkeypatch):
    """Every gpu claim has its work listed; the meta-device count of one image pass equals ``flops.pass_flops`` on
    the built tower (CLIP B-32), and a claim's FLOPs are its passes times that (a naive sum)."""
    import open_clip

    from mcdo.flops import pass_flops
    from mcdo.verify import catalog, workload
    from mcdo.verify.mcd.gpu import GPU

    assert set(workload.WORK) == {c for c, _ in catalog.pairs(("gpu",))}
    image, text = workload.unit_flops("clip-vit-b-32")
    tower = open_clip.create_model("ViT-B-32-quickgelu").visual
    assert image == pass_flops(tower, 224) and text > 0
    n = GPU["n_synsets"] * GPU["per_synset"]
    passes = GPU["trials"] * GPU["T"] + len(GPU["blur_radius"]) * GPU["T"] + 1
    assert workload.flops(workload.WORK["MCD-03"]) == n * passes * image
    rows, total = workload.estimate(["MCD-03", "MCD-04"], rate=1e12)
    assert total == rows[0].seconds == rows[1].seconds  # the same reliability run: counted once together


def test_mcdo_claims_estimate_prints_the_selected_gpu_claims(capsys, monkeypatch):
    from mcdo.cli import main

    monkeypatch.setenv("MCDO_DEVICE", "cpu")
    assert main(["claims", "--estimate", "--id", "MCD-16", "--id", "OOD-03"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| MCD") or line.startswith("| OOD")]
    assert [r.split(" | ")[0] for r in rows] == ["| MCD-16", "| OOD-03"] and "An estimate, not a measurement" in out
    assert main(["claims", "--estimate", "--tier", "proxy"]) == 2
