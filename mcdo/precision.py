"""Which floating-point type the T-pass core multiplies in: ``dtype="auto"``.

bf16 halves the bytes moved and, where the hardware multiplies it natively, runs the matrix products at 2-16x the
fp32 rate: CUDA GPUs from Ampere on, CPUs with AMX or AVX-512 BF16. Elsewhere (an AVX2-only CPU) bf16 is emulated:
measured on a 2048 x 2048 product, under 1 GFLOP/s against 128 for fp32, so "auto" takes fp32 there. The choice
and its reason go into every result's config.
"""
from __future__ import annotations

import functools
import platform

import torch

NATIVE_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``; empty where they cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def auto_dtype(device: str | torch.device = "cpu") -> tuple[str, str]:
    """The dtype "auto" picks on ``device`` and why."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if torch.cuda.is_bf16_supported():
            return "bfloat16", f"CUDA {name} multiplies bf16 natively"
        return "float32", f"CUDA {name} has no native bf16 (before Ampere)"
    if device.type != "cpu":
        return "float32", f"{device.type}: bf16 speed not known here, fp32 kept"
    native = sorted(set(NATIVE_CPU_FLAGS) & cpu_flags())
    if native:
        return "bfloat16", f"this CPU multiplies bf16 natively ({', '.join(native)})"
    return "float32", (f"bf16 is emulated on this CPU ({platform.machine()}, no AMX or AVX-512 BF16): hundreds of "
                       "times slower than fp32")


def resolve(dtype: str, device: str | torch.device = "cpu") -> tuple[str, str]:
    """``dtype`` as given, or what "auto" picks on ``device``; with the reason for the record."""
    if dtype == "auto":
        return auto_dtype(device)
    return dtype, "asked for"


def bf16_native(device: str | torch.device = "cpu") -> bool:
    """Whether bf16 runs natively on ``device`` (what "auto" decides on)."""
    return auto_dtype(device)[0] == "bfloat16"
