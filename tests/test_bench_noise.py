"""scripts/bench_noise.py: the run-to-run spread of each benchmark's best round and the gate derived from it, against
a direct computation."""
import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_noise", ROOT / "scripts" / "bench_noise.py")
bench_noise = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_noise)


def _file(path, mins):
    path.write_text(json.dumps({"benchmarks": [{"fullname": k, "stats": {"min": v, "mean": 3 * v}}
                                               for k, v in mins.items()]}))
    return path


def test_spread_and_gate_match_a_direct_computation(tmp_path, capsys):
    a = _file(tmp_path / "a.json", {"x": 1.00, "y": 2.0, "only_a": 5.0})
    b = _file(tmp_path / "b.json", {"x": 1.03, "y": 1.9})
    c = _file(tmp_path / "c.json", {"x": 0.99, "y": 2.02})
    s = bench_noise.spreads([bench_noise.minima(p) for p in (a, b, c)])
    assert set(s) == {"x", "y"}  # only benchmarks present in every run
    assert abs(s["x"] - (1.03 / 0.99 - 1)) < 1e-12 and abs(s["y"] - (2.02 / 1.9 - 1)) < 1e-12
    assert bench_noise.tolerance(s) == 13  # 2 x 6.3% -> 12.6 -> 13
    assert bench_noise.main([str(a), str(b), str(c)]) == 0
    assert "min:13%" in capsys.readouterr().out
