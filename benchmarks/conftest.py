"""Collects images/s of every benchmark and prints core/naive ratios measured in the same run."""
from __future__ import annotations

import platform

import pytest
import torch

RESULTS: dict[tuple, float] = {}


@pytest.fixture
def record():
    def put(key: tuple, images_per_s: float) -> None:
        RESULTS[key] = images_per_s

    return put


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    cpu = platform.processor() or platform.machine()
    tr.write_sep("=", f"T-pass throughput (images/s), {torch.get_num_threads()} threads, {cpu}")
    tr.write_line(f"{'model':16s} {'T':>3s} {'batch':>5s} {'impl':12s} {'img/s':>9s} {'x naive':>8s}")
    for (model, T, batch, impl), ips in sorted(RESULTS.items()):
        naive = RESULTS.get((model, T, 1, "naive_fp32"))
        ratio = f"{ips / naive:8.2f}" if naive else ""
        tr.write_line(f"{model:16s} {T:3d} {batch:5d} {impl:12s} {ips:9.3f} {ratio}")
