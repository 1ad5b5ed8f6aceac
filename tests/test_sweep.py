"""``mcdo sweep``: shards from every launcher, two shards giving exactly the one-shard result, a killed shard
completed by a rerun without redoing finished cells, and the report."""
import json

import numpy as np
import pytest

from mcdo import sweep
from mcdo.cli import main

pytestmark = pytest.mark.usefixtures("isolated_cache")
GRID = ["--models", "tiny-clip,tiny-siglip", "--p", "0.1", "--T", "4,8", "--trials", "3", "--n-images", "6",
        "--random-weights", "--quiet"]


def test_shards_come_from_the_flag_torchrun_or_slurm():
    assert sweep.shard_of("1/4", {}) == (1, 4, "--shard")
    assert sweep.shard_of(None, {"RANK": "2", "WORLD_SIZE": "3"})[:2] == (2, 3)
    assert sweep.shard_of(None, {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "8"})[:2] == (5, 8)
    assert sweep.shard_of(None, {"SLURM_ARRAY_TASK_ID": "11", "SLURM_ARRAY_TASK_MIN": "10",
                                 "SLURM_ARRAY_TASK_MAX": "13"})[:2] == (1, 4)
    assert sweep.shard_of(None, {}) == (0, 1, "one shard")
    # issue 20: an array with a step (--array=0-12:4) is 4 shards, its tasks 0, 4, 8, 12 shards 0..3
    step = {"SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "12", "SLURM_ARRAY_TASK_STEP": "4",
            "SLURM_ARRAY_TASK_COUNT": "4"}
    assert [sweep.shard_of(None, {**step, "SLURM_ARRAY_TASK_ID": str(t)})[:2] for t in (0, 4, 8, 12)] == \
        [(0, 4), (1, 4), (2, 4), (3, 4)]
    with pytest.raises(ValueError, match="list"):
        sweep.shard_of(None, {**step, "SLURM_ARRAY_TASK_ID": "5"})
    for bad, name in (({"RANK": "1"}, "WORLD_SIZE"), ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK"),
                      ({"SLURM_ARRAY_TASK_ID": "3"}, "SLURM_ARRAY_TASK_MAX"),
                      ({"SLURM_ARRAY_TASK_ID": "a", "SLURM_ARRAY_TASK_COUNT": "2"}, "SLURM_ARRAY_TASK_ID")):
        with pytest.raises(ValueError, match=name):
            sweep.shard_of(None, bad)
    for bad in ("4/4", "x", "1-2"):
        with pytest.raises(ValueError):
            sweep.shard_of(bad, {})
    cells = sweep.grid(["a", "b"], [0.01, 0.05], [4, 8], ["as_published"], ["world"])
    assert len(cells) == 8 and sorted(sweep.mine(cells, 0, 3) + sweep.mine(cells, 1, 3) + sweep.mine(cells, 2, 3)) \
        == cells


def _cells(out):
    return {p.name: json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))}


def test_two_shards_give_exactly_the_one_shard_result(tmp_path, capsys):
    assert main(["sweep", *GRID, "--out", str(tmp_path / "one")]) == 0
    for i in (1, 0):  # any order
        assert main(["sweep", *GRID, "--shard", f"{i}/2", "--out", str(tmp_path / "two")]) == 0
    one, two = _cells(tmp_path / "one"), _cells(tmp_path / "two")
    assert len(one) == 4 and one.keys() == two.keys()
    for k in one:
        assert one[k]["traces"] == two[k]["traces"] and one[k]["gate"] == two[k]["gate"]
    report = (tmp_path / "two" / "sweep.md").read_text()
    assert "tiny-siglip" in report and "T for SNR 2" in report and (tmp_path / "two" / "sweep_reliability.png").is_file()
    # issue 23: each cell's SNR, ICC and Spearman with a bootstrap CI over its images, stored and printed; the CI is
    # the one a naive resampling loop gives (images resampled, trials kept paired)
    from mcdo import stats as S

    cell = next(iter(one.values()))
    traces = np.asarray(cell["traces"])
    rng, boots = np.random.default_rng(cell["seed"]), []
    for _ in range(sweep.N_BOOT):
        idx = rng.integers(0, traces.shape[1], traces.shape[1])
        boots.append(S.snr(traces[:, idx]))
    assert cell["gate_ci"]["snr"] == pytest.approx(list(np.percentile(boots, [2.5, 97.5])), rel=1e-9)
    lo, hi = cell["gate_ci"]["icc"]
    assert lo <= cell["gate"]["icc"] <= hi and hi > lo
    assert f"{cell['gate']['snr']:.2f} [{cell['gate_ci']['snr'][0]:.2f}, {cell['gate_ci']['snr'][1]:.2f}]" in report


def test_a_killed_shard_is_completed_without_redoing_finished_cells(tmp_path, monkeypatch, capsys):
    real, calls = sweep.run_cell, []

    def dies_after_one(cell, *a, **k):
        if calls:
            raise KeyboardInterrupt  # the job is killed while on its second cell
        calls.append(cell)
        return real(cell, *a, **k)

    monkeypatch.setattr(sweep, "run_cell", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        main(["sweep", *GRID, "--out", str(tmp_path / "s")])
    assert len(_cells(tmp_path / "s")) == 1 and not list((tmp_path / "s" / "cells").glob("*.tmp*"))
    first = _cells(tmp_path / "s")
    reran = []
    monkeypatch.setattr(sweep, "run_cell", lambda cell, *a, **k: reran.append(cell) or real(cell, *a, **k))
    assert main(["sweep", *GRID, "--out", str(tmp_path / "s")]) == 0
    assert len(reran) == 3 and calls[0] not in reran
    after = _cells(tmp_path / "s")
    assert len(after) == 4 and all(after[k] == v for k, v in first.items())


def _folder(root, n=4, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


SMALL = ["--models", "tiny-clip", "--p", "0.1", "--T", "4", "--trials", "2", "--n-images", "6", "--random-weights",
         "--quiet"]


def test_other_settings_or_another_folder_of_the_same_name_are_other_cells(tmp_path, capsys):
    """Issue 20: a cell counted as done when a file of its name existed, so changing --trials (or --seed, or
    --n-images) or a second folder with the same basename reported the old figures."""
    out = tmp_path / "s"
    one, two = _folder(tmp_path / "x" / "val"), _folder(tmp_path / "y" / "val", seed=1)
    assert main(["sweep", *SMALL, "--data", f"{one},{two}", "--out", str(out)]) == 0
    cells = _cells(out)
    assert len(cells) == 2 and {c["key"]["data"] for c in cells.values()} == {str(one.resolve()), str(two.resolve())}
    assert main(["sweep", *[a if a != "2" else "3" for a in SMALL], "--data", str(one), "--out", str(out)]) == 0
    report = (out / "sweep.md").read_text()
    rows = [ln for ln in report.splitlines() if ln.startswith("| tiny-clip")]
    assert len(rows) == 1 and "| 3 |" in rows[0] and "not finished" not in report  # only this run's settings
    assert len(_cells(out)) == 3  # the 2-trial cells are kept, not reused


def test_a_damaged_or_foreign_cell_file_is_recomputed(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", *SMALL, "--out", str(out)]) == 0
    (path,) = (out / "cells").glob("*.json")
    good = json.loads(path.read_text())
    for junk in ("[]", "{}", "{not json"):
        path.write_text(junk)
        with pytest.warns(UserWarning, match="run again"):
            assert main(["sweep", *SMALL, "--out", str(out)]) == 0
        assert json.loads(path.read_text())["traces"] == good["traces"]


def test_one_bad_cell_fails_alone_and_the_report_says_why(tmp_path, capsys):
    out = tmp_path / "s"
    empty = tmp_path / "broken"
    (empty / "a").mkdir(parents=True)
    (empty / "a" / "0.png").write_bytes(b"not an image")
    assert main(["sweep", *SMALL, "--data", f"world,{empty}", "--out", str(out)]) == 1
    report = (out / "sweep.md").read_text()
    assert "| world |" in report and "1 cells failed" in report and "broken" in report


def test_bad_settings_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "run_cell", lambda *a, **k: pytest.fail("a cell ran"))
    assert main(["sweep", *SMALL, "--trials", "1", "--out", str(tmp_path)]) == 2
    assert "--trials 1" in capsys.readouterr().err
    assert main(["sweep", *SMALL, "--n-images", "1", "--out", str(tmp_path)]) == 2
    assert main(["sweep", *SMALL, "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2


def test_sweep_refuses_a_bad_grid(tmp_path, capsys):
    assert main(["sweep", "--models", "nope", "--out", str(tmp_path)]) == 2
    assert main(["sweep", "--models", "tiny-clip", "--random-weights", "--T", "1", "--out", str(tmp_path)]) == 2
    assert "T at least 2" in capsys.readouterr().err


def test_torchrun_ranks_take_their_local_gpu_and_mps_is_refused(monkeypatch):
    """Issue 20: nothing read LOCAL_RANK, so torchrun's ranks all took GPU 0; MCDO_DEVICE=mps passed the check and
    then crashed every command."""
    import torch

    from mcdo import env

    monkeypatch.delenv("MCDO_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert env.device() == "cuda:2"
    monkeypatch.setenv("LOCAL_RANK", "two")
    with pytest.raises(env.SettingError, match="LOCAL_RANK"):
        env.device()
    monkeypatch.setenv("MCDO_DEVICE", "mps")
    with pytest.raises(env.SettingError, match="MCDO_DEVICE='mps'"):
        env.device()


def test_one_gpu_per_xdist_worker(monkeypatch):
    from mcdo import env

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert env.gpu_for_worker("gw3", 2) == "1" and env.gpu_for_worker("gw0", 4) == "0"
    assert env.gpu_for_worker("master", 2) is None and env.gpu_for_worker("gw1", 0) is None


def test_sweep_limit_is_a_smoke_run_with_cells_of_its_own(tmp_path, capsys):
    """``mcdo sweep --limit N`` (issue 33): at most N images and 2 trials per cell, said on the console; its cells
    are keyed by those settings, so a full run into the same folder never reuses them."""
    out = tmp_path / "s"
    assert main(["sweep", *GRID, "--limit", "4", "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("smoke run (--limit 4)")
    cells = _cells(out)
    assert cells and all(len(c["traces"]) == 2 and len(c["traces"][0]) == 4 for c in cells.values())


def test_cell_names_are_shell_safe_for_path_named_models():
    """Issue 36.5: a model named by its path made cell files starting with '-' (``cat`` read them as options)."""
    import re

    for model in ("/models/my ft.pt", "ViT-B-16:/abs/ckpt.pt", "hf-hub:org/name", "-odd"):
        cid = sweep.Cell(model, 0.01, 16, "as_published", "world").id
        assert re.fullmatch(r"[A-Za-z0-9._+][A-Za-z0-9._+-]*", cid), cid


def test_a_slurm_list_array_points_at_shard():
    """Issue 36.14: ``--array=1,3,5,7`` (MIN 1, MAX 7, COUNT 4) made task 5 shard 4 of 4, refused without saying
    what to do; the message now points at --shard."""
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "7",
           "SLURM_ARRAY_TASK_COUNT": "4"}
    with pytest.raises(ValueError, match="--shard i/n"):
        sweep.shard_of(None, env)


def test_sweep_names_unreadable_images_and_refuses_a_folder_with_none(tmp_path):
    """Issue 36.14: a folder with no readable image gave 'stack expects a non-empty TensorList'; unreadable files
    were skipped without a word."""
    from mcdo.models import load
    from mcdo.testing import make_probe_folder

    enc = load("tiny-clip", pretrained=False)
    folder = make_probe_folder(tmp_path / "d", per_class=3)  # one broken file among them
    with pytest.warns(UserWarning, match="1 unreadable image"):
        x = sweep._images(str(folder), enc, 100)
    assert x.shape[0] == len([p for p in folder.rglob("*") if p.is_file()]) - 1
    for p in folder.rglob("*"):
        if p.is_file():
            p.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="no readable image"):
        sweep._images(str(folder), enc, 100)
