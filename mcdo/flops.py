"""FLOP accounting for the T-pass core: what one pass of a tower costs, what the machine can do, and the share of it
a run achieved.

``pass_flops`` counts one deterministic forward of one image with ``torch.utils.flop_counter`` (matrix products,
convolutions and attention: 2 per multiply-add). A run of T passes per image at ``images_per_s`` achieves
``images_per_s * T * pass_flops`` FLOP/s; it is set against the device's peak where it is known (``PEAKS``, dense
tensor-core figures from the vendors' data sheets) and against the machine's matrix-product rate measured now
(``matmul_rate``: the fastest of a few 2048 x 2048 products), which is the honest ceiling on a CPU. The core's
fast path skips work the count includes (the last block's non-CLS tokens, the deterministic prefix after the
first pass), so its "achieved" figure counts useful FLOPs of a full pass, as a user compares models.
"""
from __future__ import annotations

import time

import torch
from torch import nn

# dense peaks (FLOP/s) by device-name fragment: bf16 tensor cores, fp32 without tensor cores (TF32 excluded)
PEAKS = {
    "H100 SXM": {"bfloat16": 989e12, "float32": 67e12},
    "H100 PCIe": {"bfloat16": 756e12, "float32": 51e12},
    "H100": {"bfloat16": 989e12, "float32": 67e12},
    "H200": {"bfloat16": 989e12, "float32": 67e12},
    "A100": {"bfloat16": 312e12, "float32": 19.5e12},
    "L4": {"bfloat16": 121e12, "float32": 30e12},
}


def pass_flops(tower: nn.Module, image_size: int, device: str | torch.device | None = None) -> int:
    """FLOPs of one deterministic forward of one image through ``tower``."""
    from torch.utils.flop_counter import FlopCounterMode

    device = device or next(tower.parameters()).device
    x = torch.zeros(1, 3, image_size, image_size, device=device)
    counter = FlopCounterMode(display=False, custom_mapping=attention_ops())
    # with gradients on: under no_grad nn.MultiheadAttention takes a fused kernel the counter does not know (CLIP
    # B-32 would count 5.9 instead of 8.7 GFLOP), and timm's towers fail the counter's module tracking
    with torch.enable_grad(), counter:
        tower(x)
    return int(counter.get_total_flops())


def attention_ops() -> dict:
    """Attention kernels the counter's registry lacks (the CPU's fused SDPA): counted as the two token-token
    products, as the registry counts the CUDA ones."""
    from torch.utils.flop_counter import sdpa_flop_count

    def sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    ops = [getattr(torch.ops.aten, n, None) for n in ("_scaled_dot_product_flash_attention_for_cpu",)]
    return {op: sdpa for op in ops if op is not None}


def device_peak(device: str | torch.device) -> dict[str, float] | None:
    """The device's dense peak FLOP/s per dtype, where known (CUDA devices in ``PEAKS``); None otherwise."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAKS.items() if k in name), None)


def matmul_rate(dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", n: int = 2048,
                repeats: int = 3) -> float:
    """The fastest of ``repeats`` n x n matrix products in ``dtype`` on ``device``, in FLOP/s (after a warm-up)."""
    device = torch.device(device)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best


def achieved(images_per_s: float, T: int, flops_per_pass: int) -> float:
    """FLOP/s a run achieved: every image's T passes at the full pass's cost."""
    return images_per_s * T * flops_per_pass


def count_flops(fn, *args, **kwargs) -> tuple[int, object]:
    """Floating-point operations of the matrix products and attention kernels ``fn(*args, **kwargs)`` runs (torch's
    own flop formulas), and its result. A plain dispatch mode without FlopCounterMode's module tracking, so code
    under ``no_grad`` through timm's towers can be counted. ``inference_mode`` hides every op from dispatch modes
    (it would count 0), so it is refused."""
    from torch.utils._python_dispatch import TorchDispatchMode

    if torch.is_inference_mode_enabled():
        raise RuntimeError("count_flops cannot see operations under torch.inference_mode (they would count as 0): "
                           "count outside it, under torch.no_grad")
    from torch.utils.flop_counter import flop_registry, shape_wrapper

    formulas = {**flop_registry, **{k: shape_wrapper(v) for k, v in attention_ops().items()}}

    class _Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = formulas.get(func._overloadpacket)
            if formula is not None:
                _Count.total += int(formula(*args, **kwargs, out_val=out))
            return out

    with _Count():
        result = fn(*args, **kwargs)
    return _Count.total, result
