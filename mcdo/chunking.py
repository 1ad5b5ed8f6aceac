"""How many images per batch and rows per chunk the T-pass core runs at once on a device.

On a CPU: one image per batch, 64 rows per chunk (larger chunks only add page faults there). On CUDA: as many rows
as fit in a share of the device's free memory, measured rather than guessed: one MC forward of a few rows under
``torch.cuda.max_memory_allocated`` gives the bytes per row, and ``rows_for`` turns free memory into rows. Either
can be overridden (``mc_sample(batch_size=..., max_rows=...)``); since masks are keyed by (seed, image, pass,
site), results do not depend on the choice.
"""
from __future__ import annotations

import torch
from torch import nn

CPU_DEFAULT = (1, 64)
MEMORY_SHARE = 0.6  # of the free memory at the start of a run: the rest for the allocator's slack and the caller
MAX_ROWS = 8192


def rows_for(free_bytes: int, per_row_bytes: int, share: float = MEMORY_SHARE, cap: int = MAX_ROWS) -> int:
    """Rows that fit in ``share`` of ``free_bytes`` at ``per_row_bytes`` each (at least 1, at most ``cap``)."""
    if per_row_bytes <= 0:
        raise ValueError(f"bytes per row must be positive, got {per_row_bytes}")
    return int(max(1, min(cap, share * free_bytes // per_row_bytes)))


CUDA_BATCH = 64  # images per batch on CUDA: fixed, so a batch's content (its cache key) does not follow free memory


def batch_for(max_rows: int) -> int:
    """Images per batch on CUDA: ``CUDA_BATCH``, fewer only when a chunk cannot hold one pass of that many. Not
    derived from free memory beyond that, so a resumed run splits the images as the interrupted one did and finds
    its cached batches."""
    return max(1, min(CUDA_BATCH, max_rows))


def measure_row_bytes(run_rows, rows: int = 8) -> int:
    """Peak CUDA bytes per row of ``run_rows(rows)`` (a callable running one chunk of ``rows`` rows)."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    run_rows(rows)
    torch.cuda.synchronize()
    return max(1, (torch.cuda.max_memory_allocated() - base) // rows)


def choose(tower: nn.Module, image_size: tuple[int, int] | None, T: int, batch_size: int | None,
           max_rows: int | None, run_rows=None) -> tuple[int, int, str]:
    """``(batch_size, max_rows, why)``: the caller's values where given, else the device's defaults."""
    device = next(tower.parameters()).device
    if batch_size is not None and max_rows is not None:
        return batch_size, max_rows, "given"
    if device.type != "cuda" or run_rows is None:
        b, r = CPU_DEFAULT
        return batch_size or b, max_rows or r, f"{device.type} defaults"
    free, _ = torch.cuda.mem_get_info(device)
    per_row = measure_row_bytes(run_rows)
    rows = max_rows or rows_for(free, per_row)
    return batch_size or batch_for(rows), rows, (f"{rows} rows fit {MEMORY_SHARE:.0%} of {free / 2**30:.1f} GiB free "
                                                   f"at {per_row / 2**20:.1f} MiB per row")
