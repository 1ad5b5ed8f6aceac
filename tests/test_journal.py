"""mcdo claims as a run that loses nothing: the claims.jsonl journal, --resume, and a merged report that lists the
runs it holds (issue 23)."""
import json

import pytest

from mcdo import cli


def test_a_killed_claims_run_keeps_its_records_and_resume_reuses_them(tmp_path, monkeypatch):
    """Issue 23: each record is in claims.jsonl as soon as it is decided; --resume evaluates only what the journal
    lacks for the same commit and settings, and a run with other settings starts afresh."""
    from mcdo.verify import engine

    real, calls = engine.evaluate, []

    def killed_at_the_second(claim_id, tier, ctx):
        calls.append(claim_id)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(claim_id, tier, ctx)

    argv = ["claims", "--tier", "math", "--id", "OOD-01", "--id", "OOD-02", "--out", str(tmp_path), "--quiet",
            "--no-figures"]
    monkeypatch.setattr(engine, "evaluate", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        cli.main(argv)
    lines = [json.loads(x) for x in (tmp_path / "claims.jsonl").read_text().splitlines()]
    assert [d["id"] for d in lines] == ["OOD-01"] and lines[0]["resume_key"]["seed"] == 0
    assert not (tmp_path / "claims.json").exists()  # the report itself is only written whole

    def counting(claim_id, tier, ctx):
        calls.append(claim_id)
        return real(claim_id, tier, ctx)

    calls.clear()
    monkeypatch.setattr(engine, "evaluate", counting)
    assert cli.main(argv + ["--resume"]) == 0
    assert calls == ["OOD-02"]
    recs = json.loads((tmp_path / "claims.json").read_text())["records"]
    assert [r["id"] for r in recs] == ["OOD-01", "OOD-02"] and recs[0]["run"] != recs[1]["run"]
    calls.clear()
    assert cli.main(argv + ["--resume", "--seed", "1"]) == 0  # other settings: nothing to reuse
    assert calls == ["OOD-01", "OOD-02"]


def test_a_merged_report_lists_the_runs_it_holds(tmp_path):
    """Issue 23: a partial run merged into a report says so and lists each run (commit, wall time, records),
    instead of stamping its own time and commit over records it did not make."""
    base = ["claims", "--tier", "math", "--out", str(tmp_path), "--quiet", "--no-figures"]
    assert cli.main(base + ["--id", "OOD-01", "--id", "OOD-02"]) == 0
    md = (tmp_path / "claims.md").read_text()
    assert "Merged report" not in md and "wall time" in md
    assert cli.main(base + ["--id", "OOD-02"]) == 0
    payload = json.loads((tmp_path / "claims.json").read_text())
    assert len(payload["runs"]) == 2 and sorted(r["records"] for r in payload["runs"].values()) == [1, 1]
    md = (tmp_path / "claims.md").read_text()
    assert "**Merged report**: 2 records from 2 runs" in md
    assert md.count("mcdo claims") >= 2 and md.count(" records") >= 2
    assert cli.main(base + ["--id", "OOD-01", "--id", "OOD-02"]) == 0  # both replaced: one run again
    assert len(json.loads((tmp_path / "claims.json").read_text())["runs"]) == 1


def _records(claim_id: str, tier: str, n: int):
    from mcdo.verify.records import Record

    return [Record(claim_id, tier, f"model-{i}", "reproduced", float(i), (0.0, 1.0)) for i in range(n)]


def test_resume_reuses_a_pair_only_with_all_its_records(tmp_path, capsys):
    """Issue 36.9: a line cut by a kill or a full disk, or damaged later, used to leave its pair 'done' with the
    records before it (14 of 15 resumed, without a word). A pair is now done only with every record; the damaged
    line is named and its pair evaluated again."""
    from mcdo.journal import Journal

    key = {"commit": "c", "seed": 0}
    path = tmp_path / "claims.jsonl"
    j = Journal(path, key)
    j.append(_records("MCD-03", "recorded", 3))
    j.append(_records("MCD-04", "recorded", 2))
    lines = path.read_text().splitlines()
    assert len(lines) == 5
    path.write_text("\n".join(lines[:2] + [lines[2][: len(lines[2]) // 2]] + lines[3:]) + "\n")  # MCD-03's third cut
    resumed = Journal(path, key, resume=True)
    assert set(resumed.done) == {("MCD-04", "recorded")} and len(resumed.done[("MCD-04", "recorded")]) == 2
    assert resumed.damaged == [3] and resumed.incomplete == [("MCD-03", "recorded")]
    kept = path.read_text().splitlines()
    assert len(kept) == 2 and all('"MCD-04"' in x for x in kept)  # rewritten whole, the incomplete pair dropped
    assert [p.name for p in tmp_path.iterdir()] == ["claims.jsonl"]  # no temporary file left
    # a line lost entirely (a record missing, nothing damaged): the pair is incomplete all the same
    j = Journal(path, key, resume=True)
    j.append(_records("MCD-05", "recorded", 3))
    lines = path.read_text().splitlines()
    path.write_text("\n".join(x for x in lines if '"model-1"' not in x or '"MCD-05"' not in x) + "\n")
    again = Journal(path, key, resume=True)
    assert ("MCD-05", "recorded") in again.incomplete and ("MCD-05", "recorded") not in again.done
    assert again.damaged == []


def test_resume_after_a_finished_run_reuses_every_record(tmp_path, capsys):
    """The report rewrites claims.jsonl at the end of a run with each pair's count: a --resume then reuses all."""
    from mcdo.verify import engine

    argv = ["claims", "--tier", "math", "--id", "OOD-01", "--id", "OOD-02", "--out", str(tmp_path), "--quiet",
            "--no-figures"]
    assert cli.main(argv) == 0
    calls = []
    real = engine.evaluate

    def counting(claim_id, tier, ctx):
        calls.append(claim_id)
        return real(claim_id, tier, ctx)

    import pytest as _pytest

    with _pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "evaluate", counting)
        assert cli.main(argv + ["--resume"]) == 0
    assert calls == [] and "damaged" not in capsys.readouterr().err


def test_an_unknown_claim_id_is_a_usage_error(capsys):
    """Issue 36.8: exit 2 for a usage or selection error (it was 1, the code of a run that failed)."""
    assert cli.main(["claims", "--id", "NOPE-1", "--tier", "math"]) == 2
    assert "unknown claim id(s) NOPE-1" in capsys.readouterr().err
