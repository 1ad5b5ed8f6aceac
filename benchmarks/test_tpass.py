"""Throughput of T MC-dropout passes: the core against what a user would write instead, side by side in one run.

naive_fp32: ``for t in range(T): tower(batch)`` with dropout through module hooks, as the seed ran it.
repeat_fp32 / repeat_bf16: the batch repeated T times and run in one forward with dense dropout (``F.dropout``), as
torch-uncertainty's MC-dropout wrapper does; bf16 under ``torch.autocast``, on a device that multiplies bf16 natively.
core_*: ``mc_sample`` (batch repetition in chunks, exact fast path, sparse masks), fp32, bf16 and ``auto`` (what
``mcdo.precision`` picks for the device, printed with its reason). The summary gives each case's ratio to the
strongest baseline (loop or batch repeat) measured for the same model and T in the same run. Each case also reports achieved FLOP/s (a full
pass's FLOPs, ``mcdo.flops``) as a share of this machine's matrix-product rate measured in the same session, and of
the device's peak on a known GPU. CLIP ViT-B-32 and SigLIP2 ViT-B-16 at T = 64 are the issue's cases.
Compare commits with ``--benchmark-autosave`` / ``--benchmark-compare`` (see README).
"""
from __future__ import annotations

import pytest
import torch

from mcdo import env
from mcdo.dropout import inject_uniform_linear_dropout, mc_mode
from mcdo.models import load
from mcdo.precision import resolve
from mcdo.sampling import mc_sample

MODELS = {"tiny-clip": 8, "clip-vit-b-32": 2, "siglip2-vit-b-16": 1}  # model -> images per round
_FLOPS: dict = {}
_ENCODERS: dict = {}


def _tower(name):
    if name not in _ENCODERS:
        _ENCODERS[name] = load(name, pretrained=False, device=env.device())  # MCDO_DEVICE=cuda for a GPU
    return _ENCODERS[name]


def _images(name):
    size = _tower(name).spec.image_size
    x = torch.randn(MODELS.get(name, 1), 3, size, size, generator=torch.Generator().manual_seed(0))
    return x.to(env.device())


def naive_loop(tower, images, T, p=0.01):
    """The seed's loop: T full passes over the batch, one after another, dropout by hooks."""
    ctl = inject_uniform_linear_dropout(tower, p, "as_published")
    ctl.sampler = "dense"  # F.dropout, as the seed's code
    try:
        with torch.no_grad(), mc_mode(ctl):
            out = torch.stack([tower(images) for _ in range(T)])
        if out.is_cuda:
            torch.cuda.synchronize()  # time the work, not its launch
        return out
    finally:
        ctl.remove()


def batch_repeat(tower, images, T, p=0.01, dtype=torch.float32):
    """torch-uncertainty's way: the batch repeated T times, one forward, dense dropout (autocast for bf16)."""
    ctl = inject_uniform_linear_dropout(tower, p, "as_published")
    ctl.sampler = "dense"
    x = images.repeat(T, 1, 1, 1)
    try:
        with torch.no_grad(), mc_mode(ctl), torch.autocast(x.device.type, dtype=dtype, enabled=dtype != torch.float32):
            out = tower(x).float().view(T, images.shape[0], -1)
        if out.is_cuda:
            torch.cuda.synchronize()
        return out
    finally:
        ctl.remove()


BASELINES = ("naive_fp32", "repeat_fp32", "repeat_bf16")
IMPLS = (("naive_fp32", (1,)), ("repeat_fp32", (1,)), ("repeat_bf16", (1,)), ("core_fp32", (1,)),
         ("core_bf16", (1, 2)), ("core_auto", (1,)), ("core_auto_compiled", (1,)))
CASES = [(m, T, b, impl) for m in MODELS for T in ((64,) if m == "siglip2-vit-b-16" else (1, 16, 64))
         for impl, batches in IMPLS for b in batches
         if not (m == "siglip2-vit-b-16" and impl == "core_bf16")  # SigLIP2 B-16: T = 64; auto is bf16 where native
         and not ((impl.startswith("repeat") or impl.endswith("compiled")) and T != 64)]  # the peers at the T


def _registered() -> list[str]:
    from mcdo.models.registry import REGISTRY

    return [name for name, spec in REGISTRY.items() if not spec.tiny and spec.family != "proxy"]


SWEEP = [(m, impl) for m in _registered() for impl in ("repeat_bf16", "core_auto")]


def compile_mode(device: torch.device) -> str:
    """The compiled core's mode: CUDA graphs on a GPU (the eager path launches many small kernels), inductor's
    fused kernels elsewhere."""
    return "reduce-overhead" if device.type == "cuda" else "default"


def _pass_flops(name) -> int:
    if name not in _FLOPS:
        from mcdo.flops import pass_flops

        _FLOPS[name] = pass_flops(_tower(name).vision_tower, _tower(name).spec.image_size)
    return _FLOPS[name]


@pytest.mark.parametrize("model,T,batch,impl", CASES, ids=[f"{m}-T{T}-b{b}-{i}" for m, T, b, i in CASES])
def test_tpass_throughput(benchmark, record, auto_note, machine_rates, model, T, batch, impl):
    tower, x = _tower(model).vision_tower, _images(model)
    device = next(tower.parameters()).device
    if impl == "naive_fp32":
        fn = lambda: naive_loop(tower, x, T)  # noqa: E731
    elif impl.startswith("repeat"):
        if impl == "repeat_bf16" and resolve("auto", device)[0] != "bfloat16":
            pytest.skip(f"{device} does not multiply bf16 natively ({resolve('auto', device)[1]}): autocast would "
                        "emulate it")
        fn = lambda: batch_repeat(tower, x, T, dtype=torch.bfloat16 if impl == "repeat_bf16" else torch.float32)  # noqa: E731
    else:
        dtype = {"core_bf16": "bfloat16", "core_fp32": "float32", "core_auto": "auto",
                 "core_auto_compiled": "auto"}[impl]
        mode = compile_mode(device) if impl.endswith("compiled") else "off"  # compiled in the warm-up round
        fn = lambda: mc_sample(tower, x, T=T, p=0.01, batch_size=batch, max_rows=64, dtype=dtype,  # noqa: E731
                               progress=False, compile=mode)
    rounds = 3 if model == "tiny-clip" else (1 if impl in BASELINES[:2] and T == 64 else 2)
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1, iterations=1)
    ips = x.shape[0] / benchmark.stats.stats.mean
    ran, why = (("bfloat16", "autocast") if impl == "repeat_bf16" else ("float32", "baseline")
                if impl in BASELINES else resolve(dtype, device))
    flops = ips * T * _pass_flops(model)
    benchmark.extra_info.update(images_per_s=ips, passes_per_s=ips * T, device=str(device), dtype=ran, dtype_reason=why,
                                flops_per_pass=_pass_flops(model), flops_per_s=flops,
                                matmul_rate=machine_rates[1])
    if impl.endswith("compiled"):
        benchmark.extra_info["compile"] = mode
    if impl == "core_auto":
        auto_note[str(device)] = f"{ran} ({why})"
    record((model, T, batch, impl), ips, flops_per_s=flops, dtype=ran, device=machine_rates[0])


@pytest.mark.parametrize("model,impl", SWEEP, ids=[f"registry-{m}-{i}" for m, i in SWEEP])
def test_every_registered_model_against_batch_repeat(request, benchmark, record, auto_note, machine_rates, model, impl):
    """The core (``auto``) against the strongest baseline measured on the T = 64 cases (batch repeat under bf16
    autocast) for every registered model, one image at ``--sweep-t`` passes (16 by default: at 64 the baseline takes
    minutes per SO400M case on a CPU). The issue's targets: >= 2x on every model, >= 85% of the bf16 matmul rate for
    SigLIP2's towers. Opt-in: ``--all-models`` (about 12 minutes on a 2-core CPU at T = 16)."""
    if not request.config.getoption("--all-models"):
        pytest.skip("every registered model: pass --all-models (SO400M takes minutes per case on a CPU)")
    T = request.config.getoption("--sweep-t")
    tower, x, pass_flops = _tower(model).vision_tower, _images(model)[:1], _pass_flops(model)
    device = next(tower.parameters()).device
    if impl == "repeat_bf16":
        if resolve("auto", device)[0] != "bfloat16":
            pytest.skip(f"{device} does not multiply bf16 natively: autocast would emulate it")
        fn = lambda: batch_repeat(tower, x, T, dtype=torch.bfloat16)  # noqa: E731
        ran, why = "bfloat16", "autocast"
    else:
        fn = lambda: mc_sample(tower, x, T=T, p=0.01, batch_size=1, max_rows=64, dtype="auto",  # noqa: E731
                               progress=False)
        ran, why = resolve("auto", device)
    try:
        benchmark.pedantic(fn, rounds=1, warmup_rounds=1, iterations=1)
    finally:
        if impl == "core_auto":  # the model's last case: two SO400M held at once would not fit a 24 GB machine
            _ENCODERS.pop(model, None)
    ips = 1 / benchmark.stats.stats.mean
    flops = ips * T * pass_flops
    benchmark.extra_info.update(images_per_s=ips, device=str(device), dtype=ran, dtype_reason=why, flops_per_s=flops,
                                matmul_rate=machine_rates[1])
    record((model, T, 1, impl), ips, flops_per_s=flops, dtype=ran, device=machine_rates[0])
