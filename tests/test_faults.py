"""Faults, bad input and interrupted runs: nothing lost, nothing silently wrong.

Damaged recorded files and caches, interrupted writes and passes, partial runs, out-of-range options and bad
settings: each either recovers (naming what it recomputed) or stops with one line that names the setting and the
fix."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mcdo import cli, env, report, scores
from mcdo.sampling import mc_sample
from mcdo.testing import make_recorded_run, random_encoder
from mcdo.verify import catalog
from mcdo.verify.records import SKIPPED, Record

pytestmark = [pytest.mark.math, pytest.mark.usefixtures("isolated_cache")]


# ---------------------------------------------------------------- the report survives


@pytest.fixture
def damaged_recorded(tmp_path, monkeypatch):
    """The published layout (two models, T = 4, 16, 64, K = 10) with three files damaged."""
    root = make_recorded_run(tmp_path / "rec", {"clip_b32": 0.8, "siglip2_b16": 0.02}, Ts=(4, 16, 64), trials=10,
                             n_images=80)
    clip, sig = root / "exp0_nested_mc/clip_b32", root / "exp0_nested_mc/siglip2_b16"
    (clip / "exp0_trials_T64.npz").write_bytes((clip / "exp0_trials_T64.npz").read_bytes()[:300])  # truncated
    z = dict(np.load(sig / "exp0_trials_T16.npz"))
    np.savez(sig / "exp0_trials_T16.npz", trial_pre=z["trial_pre"], post=z["trial_post"], paths=z["paths"])  # renamed
    z = dict(np.load(sig / "exp0_trials_T4.npz"))
    np.savez(sig / "exp0_trials_T4.npz", trial_pre=z["trial_pre"][:1], trial_post=z["trial_post"][:1],
             paths=z["paths"])  # K = 1
    monkeypatch.setenv("MCDO_RECORDED_DIR", str(root))
    return root


def test_damaged_recorded_folder_still_writes_every_record(damaged_recorded, tmp_path, capsys):
    out = tmp_path / "reports"
    rc = cli.main(["claims", "--tier", "math", "--tier", "recorded", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    # no evaluator error; the fabricated run's figures are not the source's, so the judge fails those pairs (exit 1,
    # each named), as pytest claims would on this folder
    assert rc == 1 and "evaluator errors" not in err and "fail the harness's rules" in err
    payload = json.loads((out / "claims.json").read_text())
    got = {(r["id"], r["tier"]) for r in payload["records"]}
    assert got == set(catalog.pairs(("math", "recorded")))  # every pair has its record
    recs = {(r["id"], r["model"]): r for r in payload["records"] if r["tier"] == "recorded"}  # registry names
    assert recs[("MCD-03", "clip-vit-b-32")]["verdict"] == SKIPPED and "exp0_trials_T64.npz" in recs[("MCD-03", "clip-vit-b-32")]["reason"]
    assert "unreadable" in recs[("MCD-03", "clip-vit-b-32")]["reason"]
    assert recs[("MCD-05", "siglip2-vit-b-16")]["verdict"] != SKIPPED  # its T = 64 file is intact
    assert "no trial_post" in recs[("MCD-15", "siglip2-vit-b-16")]["reason"]
    assert (out / "claims.md").is_file() and (out / "claims.jsonl").is_file()
    # the figure is drawn without the unreadable models and says so, or says why it could not be
    md = (out / "claims.md").read_text()
    assert "reliability_vs_T_recorded.png" in md or "figure not drawn" in md


def test_math_tier_with_a_damaged_recorded_folder(damaged_recorded, tmp_path):
    out = tmp_path / "reports"
    assert cli.main(["claims", "--tier", "math", "--out", str(out), "--quiet"]) == 0
    assert {r["tier"] for r in json.loads((out / "claims.json").read_text())["records"]} == {"math"}


def test_a_figure_that_fails_is_a_line_in_the_report(tmp_path, monkeypatch):
    from mcdo import figures
    from mcdo.verify.report_figures import make_figures

    def broken(out):
        raise np.exceptions.AxisError("injected")

    monkeypatch.setattr(figures, "reliability_vs_T", broken)
    got, notes = make_figures([], None, tmp_path)
    assert any("injected" in n and "reliability" in n for n in notes)


def _records(n: int, tier: str = "math") -> list[Record]:
    pairs = [p for p in catalog.pairs((tier,))][:n]
    return [Record(c, t, "m", "reproduced", 1.0, (0.9, 1.1), reason="old") for c, t in pairs]


def test_report_files_are_replaced_all_together_or_not_at_all(tmp_path, monkeypatch):
    report.write(_records(3), tmp_path)
    before = {p.name: p.read_text() for p in tmp_path.glob("claims.*")}
    real = type(tmp_path).write_text

    def failing(self, text, *a, **k):
        if ".claims.md.tmp" in self.name:
            raise KeyboardInterrupt  # killed while writing the markdown
        return real(self, text, *a, **k)

    monkeypatch.setattr(type(tmp_path), "write_text", failing)
    with pytest.raises(KeyboardInterrupt):
        report.write(_records(5, "recorded"), tmp_path)
    monkeypatch.undo()
    after = {p.name: p.read_text() for p in tmp_path.glob("claims.*")}
    assert after == before and not list(tmp_path.glob(".claims*"))


def test_a_partial_run_merges_into_the_full_report(tmp_path):
    old = _records(4, "recorded") + _records(2, "math")
    report.write(old, tmp_path)
    assert cli.main(["claims", "--tier", "math", "--id", "OOD-01", "--out", str(tmp_path), "--quiet",
                     "--no-figures"]) == 0
    recs = json.loads((tmp_path / "claims.json").read_text())["records"]
    assert {(r["id"], r["tier"]) for r in recs} >= {(r.id, r.tier) for r in old if r.id != "OOD-01"}
    new = [r for r in recs if r["id"] == "OOD-01"]
    assert len(new) == 1 and new[0]["reason"] != "old"
    # --replace: this run's records only
    assert cli.main(["claims", "--tier", "math", "--id", "OOD-01", "--out", str(tmp_path), "--quiet",
                     "--no-figures", "--replace"]) == 0
    assert [r["id"] for r in json.loads((tmp_path / "claims.json").read_text())["records"]] == ["OOD-01"]


def test_selecting_nothing_is_an_error_and_writes_nothing(tmp_path, capsys):
    assert cli.main(["claims", "--id", "MCD-01", "--tier", "math", "--out", str(tmp_path), "--quiet"]) == 2
    assert "nothing selected" in capsys.readouterr().err and not (tmp_path / "claims.json").exists()


# ---------------------------------------------------------------- caches: keyed right, damage recomputed


def _counting(monkeypatch):
    import mcdo.sampling as sampling

    calls = []
    real = sampling._run_batch
    monkeypatch.setattr(sampling, "_run_batch", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_sample_cache_is_keyed_on_weights_and_every_setting(tmp_path, monkeypatch):
    a, b = random_encoder("tiny-clip", 0), random_encoder("tiny-clip", 1)  # same class, other weights
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    kw = dict(T=8, p=0.05, batch_size=2, cache_dir=tmp_path / "s", progress=False)
    calls = _counting(monkeypatch)
    ra = mc_sample(a.vision_tower, x, **kw)
    assert len(calls) == 2
    rb = mc_sample(b.vision_tower, x, **kw)  # no model_name: the weights decide
    assert len(calls) == 4 and not np.allclose(scores.trace_pre(ra), scores.trace_pre(rb))
    mc_sample(a.vision_tower, x, **kw)
    assert len(calls) == 4  # a rerun computes nothing
    for change in (dict(p=0.3), dict(T=9), dict(seed=1), dict(dtype="bfloat16"), dict(mode="faithful"),
                   dict(keep_samples=True)):
        n = len(calls)
        mc_sample(a.vision_tower, x, **{**kw, **change})
        assert len(calls) == n + 2, change
    n = len(calls)  # the chunk size does not change a result (keyed masks, tests/test_masks.py): reused, not redone
    mc_sample(a.vision_tower, x, **{**kw, "max_rows": 3})
    assert len(calls) == n
    import mcdo.sampling as sampling

    monkeypatch.setattr(sampling, "SAMPLER_VERSION", sampling.SAMPLER_VERSION + 1)  # a sampler change
    n = len(calls)
    mc_sample(a.vision_tower, x, **kw)
    assert len(calls) == n + 2


def test_damaged_sample_shard_is_named_and_recomputed(tmp_path, monkeypatch):
    enc = random_encoder("tiny-clip")
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    kw = dict(T=8, p=0.05, batch_size=2, cache_dir=tmp_path / "s", progress=False)
    ref = mc_sample(enc.vision_tower, x, **kw)
    shard = sorted((tmp_path / "s").glob("*.npz"))[0]
    shard.write_bytes(shard.read_bytes()[:50])
    calls = _counting(monkeypatch)
    with pytest.warns(UserWarning, match=shard.name):
        again = mc_sample(enc.vision_tower, x, **kw)
    assert len(calls) == 1
    np.testing.assert_array_equal(again.var_pre, ref.var_pre)


def test_damaged_feature_shard_and_text_cache_are_recomputed(data_root):
    from mcdo.data.folders import imagenet_val
    from mcdo.features import image_features
    from mcdo.zeroshot import class_embeddings

    enc = random_encoder("tiny-clip")
    ids = imagenet_val(data_root)
    full = image_features(enc, ids, batch_size=4, shard=4, progress=False)
    shard = sorted((env.cache_dir() / "features").rglob("*.npz"))[1]
    shard.write_bytes(b"PK\x03\x04 truncated")
    with pytest.warns(UserWarning, match=shard.name):
        again = image_features(enc, ids, batch_size=4, shard=4, progress=False)
    np.testing.assert_allclose(again.features, full.features, atol=1e-6)
    names = ["goldfish", "tench", "shark"]
    emb = class_embeddings(enc, names, "mcm")
    (cached,) = (env.cache_dir() / "text").rglob("mcm-*.npy")
    cached.write_bytes(cached.read_bytes()[:20])
    with pytest.warns(UserWarning, match="cannot be read"):
        np.testing.assert_allclose(class_embeddings(enc, names, "mcm"), emb, atol=1e-6)


def test_text_embeddings_resume_after_an_interruption(monkeypatch):
    from mcdo.zeroshot import class_embeddings, imagenet_classnames

    enc = random_encoder("tiny-clip")
    names = imagenet_classnames()[:120]
    ref = class_embeddings(enc, names, "mcm", cache=False)
    real, calls = enc._encode_text, []

    def dying(t):
        if len(calls) >= 2:
            raise KeyboardInterrupt
        calls.append(len(t))
        return real(t)

    monkeypatch.setattr(enc, "_encode_text", dying)
    with pytest.raises(KeyboardInterrupt):
        class_embeddings(enc, names, "mcm", batch_size=50, shard_classes=50)
    calls.clear()
    monkeypatch.setattr(enc, "_encode_text", lambda t: calls.append(len(t)) or real(t))
    got = class_embeddings(enc, names, "mcm", batch_size=50, shard_classes=50)
    assert sum(calls) == 20  # the first two shards of 50 were kept; only the last 20 classes are encoded again
    np.testing.assert_allclose(got, ref, atol=1e-6)


# ---------------------------------------------------------------- bad input: one line naming the setting


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "warm"])
def test_ood_rejects_a_bad_temperature(value, data_root, capsys):
    rc = cli.main(["ood", "--model", "tiny-clip", "--random-weights", "--data-root", str(data_root), "--quiet",
                   "--temperature", value])
    assert rc == 2 and "--temperature" in capsys.readouterr().err


@pytest.mark.parametrize("args,needle", [(["--bs", "0"], "--bs"), (["--workers", "-1"], "--workers"),
                                         (["--device", "cuda:7"], "--device"), (["--device", "nonsense"], "--device")])
def test_ood_rejects_bad_options(args, needle, data_root, capsys):
    rc = cli.main(["ood", "--model", "tiny-clip", "--random-weights", "--data-root", str(data_root), "--quiet", *args])
    assert rc == 2 and needle in capsys.readouterr().err


@pytest.mark.parametrize("var,value,needle", [
    ("MCDO_DEVICE", "cuda", "no CUDA GPU"), ("MCDO_DEVICE", "nonsense", "not a torch device"),
    ("MCDO_CACHE_DIR", "FILE", "is a file"), ("MCDO_CACHE_DIR", "/proc/mcdo-cache", "cannot be written")])
def test_bad_settings_are_one_line(var, value, needle, data_root, tmp_path, monkeypatch, capsys):
    if value == "FILE":
        value = str(tmp_path / "a-file")
        (tmp_path / "a-file").write_text("x")
    if var == "MCDO_DEVICE" and value == "cuda" and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible here")
    monkeypatch.setenv(var, value)
    rc = cli.main(["ood", "--model", "tiny-clip", "--random-weights", "--data-root", str(data_root), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and var in err and needle in err and "Traceback" not in err
    assert cli.main(["claims", "--tier", "math", "--id", "OOD-01", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert var in capsys.readouterr().err


@pytest.mark.parametrize("kw,needle", [
    (dict(batch_size=0), "batch_size"), (dict(batch_size=-2), "batch_size"), (dict(T=2.5), "T must"),
    (dict(T=0), "T must"), (dict(max_rows=0), "max_rows"), (dict(p=1.0), "p must"), (dict(p=float("nan")), "p must"),
    (dict(images=torch.zeros(0, 3, 32, 32)), "non-empty"), (dict(images=torch.zeros(2, 3, 64, 64)), "takes 32x32")])
def test_sampler_rejects_bad_arguments(kw, needle):
    enc = random_encoder("tiny-clip")
    args = dict(images=torch.zeros(2, 3, 32, 32), T=4, progress=False) | kw
    with pytest.raises(ValueError, match=needle):
        mc_sample(enc.vision_tower, **args)


def test_one_pass_scores_say_they_need_two():
    enc = random_encoder("tiny-clip")
    r = mc_sample(enc.vision_tower, torch.randn(2, 3, 32, 32), T=1, keep_samples=True, progress=False)
    assert np.all(np.isnan(scores.trace_pre(r)))  # documented: a variance of one pass is undefined
    for name in ("angular_var", "effective_rank", "top_eigenvalue"):
        with pytest.raises(ValueError, match="T >= 2"):
            scores.score(r, name)


# ---------------------------------------------------------------- small things a user notices


def test_cache_dir_with_a_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    enc = random_encoder("tiny-clip")
    mc_sample(enc.vision_tower, torch.randn(1, 3, 32, 32), T=2, cache_dir="~/mcdo-samples", progress=False)
    assert list((tmp_path / "home/mcdo-samples").glob("*.npz")) and not (tmp_path / "~").exists()


def test_default_workers_fit_the_machine():
    import os

    assert 0 <= env.default_workers() <= min(4, len(os.sched_getaffinity(0)))


def test_unreadable_files_are_named(data_root, tmp_path, capsys):
    rc = cli.main(["ood", "--model", "tiny-clip", "--random-weights", "--data-root", str(data_root), "--quiet",
                   "--bs", "4", "--ood-dataset", "SUN", "--out", str(tmp_path)])
    assert rc == 0 and "broken.JPEG" in capsys.readouterr().out
    row = json.loads(next(tmp_path.glob("tiny-clip-seed-random-*.jsonl")).read_text().splitlines()[0])
    assert any(p.endswith("broken.JPEG") for p in row["config"]["unreadable_files"]["ImageNet-1k val"])


def test_keep_samples_peaks_near_the_size_of_the_samples():
    """The process's peak memory grows by about 1.5x the returned samples (measured: 1.53x; 2.59x before the samples
    were written in place, for this configuration), measured in a fresh process (ru_maxrss) so that nothing else in
    the test session counts; max_rows is small so that activations do not dominate."""
    import subprocess
    import sys

    code = """
import resource, torch
from mcdo.testing import random_encoder
from mcdo.sampling import mc_sample
enc = random_encoder("tiny-clip")
x = torch.randn(1000, 3, 32, 32, generator=torch.Generator().manual_seed(0))
mc_sample(enc.vision_tower, x[:8], T=4, batch_size=8, max_rows=256, progress=False)  # warm-up: allocator, weights
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
r = mc_sample(enc.vision_tower, x, T=256, batch_size=8, max_rows=256, keep_samples=True, progress=False)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024 / r.samples.nbytes)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    ratio = float(out.stdout.strip().splitlines()[-1])
    assert ratio < 2.0, ratio


def test_weights_fingerprint_follows_in_place_changes():
    """The fingerprint is memoised per tower but recomputed after any parameter changes in place."""
    from mcdo.sampling import weights_fingerprint

    tower = random_encoder("tiny-clip").vision_tower
    before = weights_fingerprint(tower)
    assert weights_fingerprint(tower) == before
    with torch.no_grad():
        tower.proj.add_(1e-3)
    assert weights_fingerprint(tower) != before
    with torch.no_grad():
        tower.proj.sub_(1e-3)
    fresh = random_encoder("tiny-clip").vision_tower  # same weights, another module
    assert weights_fingerprint(fresh) == weights_fingerprint(random_encoder("tiny-clip").vision_tower)


def test_doctor_flags_bad_settings_instead_of_crashing(monkeypatch, tmp_path):
    """Issue 20: doctor did not flag a bad MCDO_DEVICE or cache folder and crashed on a bad MCDO_SIGLIP2_BACKEND."""
    from mcdo import doctor

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("MCDO_DEVICE", "mps")
    monkeypatch.setenv("MCDO_CACHE_DIR", str(blocker))
    monkeypatch.setenv("MCDO_SIGLIP2_BACKEND", "nope")
    text = doctor.report()
    for setting in ("MCDO_DEVICE", "MCDO_CACHE_DIR", "MCDO_SIGLIP2_BACKEND"):
        line = next(ln for ln in text.splitlines() if ln.startswith(setting))
        assert "BAD" in line, line
