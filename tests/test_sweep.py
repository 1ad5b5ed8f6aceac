"""``mcdo sweep``: shards from every launcher, two shards giving exactly the one-shard result, a killed shard
completed by a rerun without redoing finished cells, and the report."""
import json

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


def test_a_killed_shard_is_completed_without_redoing_finished_cells(tmp_path, monkeypatch, capsys):
    real, calls = sweep.run_cell, []

    def dies_after_one(cell, *a, **k):
        if calls:
            raise KeyboardInterrupt  # the job is killed while on its second cell
        calls.append(cell.id)
        return real(cell, *a, **k)

    monkeypatch.setattr(sweep, "run_cell", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        main(["sweep", *GRID, "--out", str(tmp_path / "s")])
    assert len(_cells(tmp_path / "s")) == 1 and not list((tmp_path / "s" / "cells").glob("*.tmp*"))
    first = _cells(tmp_path / "s")
    reran = []
    monkeypatch.setattr(sweep, "run_cell", lambda cell, *a, **k: reran.append(cell.id) or real(cell, *a, **k))
    assert main(["sweep", *GRID, "--out", str(tmp_path / "s")]) == 0
    assert len(reran) == 3 and calls[0] not in reran
    assert len(_cells(tmp_path / "s")) == 4 and _cells(tmp_path / "s")[f"{calls[0]}.json"] == first[f"{calls[0]}.json"]


def test_sweep_refuses_a_bad_grid(tmp_path, capsys):
    assert main(["sweep", "--models", "nope", "--out", str(tmp_path)]) == 2
    assert main(["sweep", "--models", "tiny-clip", "--T", "1", "--out", str(tmp_path)]) == 2
    assert "T at least 2" in capsys.readouterr().err


def test_one_gpu_per_xdist_worker(monkeypatch):
    from mcdo import env

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert env.gpu_for_worker("gw3", 2) == "1" and env.gpu_for_worker("gw0", 4) == "0"
    assert env.gpu_for_worker("master", 2) is None and env.gpu_for_worker("gw1", 0) is None
