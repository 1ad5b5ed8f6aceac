"""Collects images/s and achieved FLOP/s of every benchmark and prints them with the core/naive ratios measured in
the same run, as a share of this machine's measured matrix-product rate (and of the device's peak on a GPU)."""
from __future__ import annotations

import platform

import pytest
import torch

RESULTS: dict[tuple, dict] = {}
RATES: dict[str, dict[str, float]] = {}  # device -> dtype -> measured matrix-product FLOP/s
AUTO: dict[str, str] = {}  # device -> the dtype core_auto ran, and why


def pytest_addoption(parser):
    parser.addoption("--all-models", action="store_true", default=False,
                     help="also run every registered model against batch repeat under bf16 autocast")
    parser.addoption("--sweep-t", type=int, default=16, help="passes per image for --all-models (default 16)")


@pytest.fixture
def record():
    def put(key: tuple, images_per_s: float, **extra) -> None:
        RESULTS[key] = dict(ips=images_per_s, **extra)

    return put


@pytest.fixture
def auto_note():
    """Where a benchmark notes which dtype ``dtype="auto"`` ran on a device, and why (printed in the summary)."""
    return AUTO


@pytest.fixture
def machine_rates():
    """This device's fp32 and bf16 matrix-product rates, measured once per session (before the first case)."""
    from mcdo import env
    from mcdo.flops import matmul_rate

    device = env.device()
    if device not in RATES:
        RATES[device] = {name: matmul_rate(dt, device) for name, dt in (("float32", torch.float32),
                                                                        ("bfloat16", torch.bfloat16))}
    return device, RATES[device]


def strongest_baseline(model: str, T: int) -> tuple[str, float | None]:
    """The fastest of the ways a user would write T passes (the seed's loop, batch repeat fp32 / bf16 autocast) measured
    for this model and T in this run: (its name, images/s)."""
    runs = [(impl, r["ips"]) for (m, t, _, impl), r in RESULTS.items()
            if m == model and t == T and impl in ("naive_fp32", "repeat_fp32", "repeat_bf16")]
    return max(runs, key=lambda kv: kv[1]) if runs else ("", None)


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    from mcdo.flops import device_peak

    tr = terminalreporter
    cpu = platform.processor() or platform.machine()
    tr.write_sep("=", f"T-pass throughput, {torch.get_num_threads()} threads, {cpu}")
    for device, rates in RATES.items():
        peak = device_peak(device)
        tr.write_line(f"{device}: measured 2048^2 matmul fp32 {rates['float32'] / 1e9:.0f} GFLOP/s, bf16 "
                      f"{rates['bfloat16'] / 1e9:.0f} GFLOP/s"
                      + (f"; peak bf16 {peak['bfloat16'] / 1e12:.0f}, fp32 {peak['float32'] / 1e12:.0f} TFLOP/s"
                         if peak else ""))
    tr.write_line("x best: images/s over the strongest baseline (seed's loop, batch repeat fp32 or bf16 autocast) of the same "
                  "model and T in this run; %mm: achieved FLOP-equivalents over the measured matmul rate of the case's dtype")
    tr.write_line(f"{'model':16s} {'T':>3s} {'batch':>5s} {'impl':11s} {'dtype':9s} {'img/s':>9s} {'x naive':>7s} "
                  f"{'x best':>7s} {'best':>11s} {'GFLOP/s':>8s} {'%mm':>6s} {'%peak':>6s}")
    for (model, T, batch, impl), r in sorted(RESULTS.items()):
        naive = RESULTS.get((model, T, 1, "naive_fp32"))
        ratio = f"{r['ips'] / naive['ips']:7.2f}" if naive else " " * 7
        best_name, best = strongest_baseline(model, T)
        vs_best = f"{r['ips'] / best:7.2f}" if best else " " * 7
        gf = r.get("flops_per_s", float("nan"))
        rates = RATES.get(r.get("device", ""), {})
        peak = device_peak(r["device"]) if r.get("device") else None
        share = f"{100 * gf / rates[r['dtype']]:6.1f}" if r.get("dtype") in rates else " " * 6
        tr.write_line(f"{model:16s} {T:3d} {batch:5d} {impl:11s} {r.get('dtype', ''):9s} {r['ips']:9.3f} {ratio} "
                      f"{vs_best} {best_name:>11s} {gf / 1e9:8.1f} {share} "
                      + (f"{100 * gf / peak[r['dtype']]:6.1f}" if peak and r.get("dtype") in peak else ""))
    for device, what in AUTO.items():
        tr.write_line(f"core_auto on {device}: {what}")
