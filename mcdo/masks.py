"""Dropout masks as a function of (seed, image, pass, site) only: the same image gets the same masks whatever the
batch size, chunking, shard, runner or device count, so two correct runs of one experiment agree image by image.

A counter-based generator (SplitMix64's mixer on int64 tensors) replaces a stateful one: each (row, site) has its
own stream, keyed by the row's (seed, image content, pass index) and the site's index, and the j-th number of a
stream is ``mix(stream_key + j)``, computed for every row at once on the row's device. As before, only the dropped
positions are drawn (exact in distribution): the gaps between drops of i.i.d. Bernoulli(p) trials are i.i.d.
Geometric(p), ``1 + floor(log(V) / log(1 - p))`` for V uniform on (0, 1]. Positions are counted along each row's own
elements, so a site computed for the CLS token only (the fast path's last block) sees exactly the drops the full
site has in its first token.

On a CPU a row whose gaps fall short of its end gets more (exact). On CUDA nothing is read back to the host: each
row draws mean + 10 s.d. + 32 gaps, short of the end with probability below 1e-20 per row and site.
"""
from __future__ import annotations

import hashlib
import math

import torch

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as a signed int64
_M1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_M2 = -7723592293110705685  # 0x94D049BB133111EB


def _lsr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 (torch shifts arithmetically)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def mix(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser on int64 tensors (wrapping arithmetic): a bijection that scrambles every bit."""
    z = x + _GOLDEN
    z = (z ^ _lsr(z, 30)) * _M1
    z = (z ^ _lsr(z, 27)) * _M2
    return z ^ _lsr(z, 31)


def uniform(keys: torch.Tensor) -> torch.Tensor:
    """A float64 uniform on (0, 1] per int64 key (53 random bits)."""
    return _lsr(mix(keys), 11).double().add_(1.0).mul_(2.0**-53)  # the logical shift leaves 53 bits


def image_keys(images: torch.Tensor, seed: int, block: int = 64) -> torch.Tensor:
    """One int64 key per image from its content (the bits of its float32 pixels, each mixed with its position) and
    the run's seed, computed on the images' device with integer arithmetic (exact, order-free: the same key on a
    CPU and a GPU, with nothing read back to the host)."""
    x = images.detach().float().contiguous()
    bits = x.view(x.shape[0], -1).view(torch.int32).to(torch.int64)
    salt = mix(torch.arange(bits.shape[1], dtype=torch.int64, device=x.device))
    sums = torch.cat([mix(bits[s:s + block] + salt).sum(dim=1) for s in range(0, bits.shape[0], block)])
    return mix(sums + mix(torch.tensor(int(seed), dtype=torch.int64, device=x.device)))


def row_keys(keys: torch.Tensor, passes: torch.Tensor) -> torch.Tensor:
    """Keys of the rows of a pass-major repeated batch (row j * B + i is pass ``passes[j]`` of image i), from the
    images' ``keys`` (``image_keys``)."""
    p = passes.to(keys.device, torch.int64)
    return mix(keys[None, :] + mix(p)[:, None] * 2).reshape(-1)


def site_key(name: str) -> int:
    """A site's stream index from its qualified name: the same site has the same masks in every dropout mode and
    runner (the fast path names its sites as the tower's modules)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little", signed=True)


def draws(n_row: int, p: float, exact: bool = False) -> int:
    """Gaps drawn per row at once. On CUDA (not ``exact``) the cap: mean + 10 s.d. + 32. With ``exact`` a shortfall
    draws more (the streams are counter-based, so the drops do not depend on this), and mean + 4 s.d. + 8 falls short
    for about one row in 40000 at p = 0.01 (scipy's Binomial tail: 2.0e-5 to 2.8e-5 for rows of 150k to 3.1M
    elements, 1.3e-7 at 768): fewer numbers drawn and mixed for every row."""
    mean = n_row * p
    sd = math.sqrt(mean * (1 - p))
    return int(mean + 4.0 * sd + 8) if exact else int(mean + 10.0 * sd + 32)


def _ends(keys: torch.Tensor, site: int, n_row: int, p: float, exact: bool) -> torch.Tensor:
    """Each row's cumulative gaps (1-based drop positions, increasing), as ``[rows, m]``; with ``exact`` every row's
    last one lies past ``n_row``."""
    stream = mix(keys + mix(torch.tensor(int(site), dtype=torch.int64, device=keys.device)))
    m, log1mp = draws(n_row, p, exact), math.log1p(-p)
    start, pos = 0, None
    while True:
        j = torch.arange(start, start + m, dtype=torch.int64, device=keys.device)
        gaps = torch.floor(torch.log(uniform(stream[:, None] + j[None, :])) / log1mp).add_(1.0)
        part = torch.cumsum(gaps.clamp_(max=float(n_row) + 1).long(), dim=1)  # a huge gap only has to pass the end
        pos = part if pos is None else torch.cat([pos, part + pos[:, -1:]], dim=1)
        if not exact or bool((pos[:, -1] > n_row).all()):
            return pos
        start += m


def drop_positions(keys: torch.Tensor, site: int, n_row: int, p: float, exact: bool | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Dropped positions of each row as ``(rows, positions)`` index pairs: each row's i.i.d. Bernoulli(p) drops over
    its ``n_row`` elements, from the row's stream at ``site``. ``exact`` (default: off a CUDA device) draws more
    gaps for a row that falls short of its end, reading a flag back from the device; otherwise ``positions`` may
    hold values >= ``n_row``, which the caller ignores."""
    exact = keys.device.type != "cuda" if exact is None else exact
    pos = _ends(keys, site, n_row, p, exact) - 1
    r = torch.arange(keys.numel(), device=keys.device)[:, None].expand_as(pos)
    if not exact:
        return r, pos
    keep = pos < n_row
    return r[keep], pos[keep]


def drop_index(keys: torch.Tensor, site: int, n_row: int, p: float) -> torch.Tensor:
    """The drops of ``drop_positions`` (exact) as flat indices into ``[rows, n_row]``, where a draw past a row's end
    repeats that row's first drop instead of being filtered out (zeroing twice is zeroing once): two boolean
    selections fewer, about half the cost of a site's masks on a CPU. Rows without a drop fall back to the filter."""
    ends = _ends(keys, site, n_row, p, True)
    idx = ends + (torch.arange(keys.numel(), device=keys.device) * n_row - 1)[:, None]
    inside = ends <= n_row
    if bool(inside[:, 0].all()):
        return torch.where(inside, idx, idx[:, :1]).view(-1)
    return idx[inside]


def zero_sparse(flat: torch.Tensor, rows: torch.Tensor, pos: torch.Tensor) -> None:
    """Zero the listed in-row positions of ``flat [rows, n_row]`` (every position valid)."""
    flat[rows, pos] = 0


def zero_dense(flat: torch.Tensor, rows: torch.Tensor, pos: torch.Tensor) -> None:
    """The same without boolean indexing (no host sync on CUDA): positions past a row's end go to a spare slot,
    and the zeros are applied as one multiplication by a keep-mask."""
    n, n_row = flat.shape
    idx = torch.where(pos < n_row, rows * n_row + pos, torch.full_like(pos, n * n_row))
    keep = torch.ones(n * n_row + 1, dtype=flat.dtype, device=flat.device)
    keep.index_fill_(0, idx.reshape(-1), 0)
    flat.view(-1).mul_(keep[:-1])


def apply_drops(x: torch.Tensor, keys: torch.Tensor, site: int, p: float, exact: bool | None = None) -> torch.Tensor:
    """Zero ``x``'s dropped positions in place (rows along dim 0, as many as ``keys``) and return it. ``exact``
    (default: off a CUDA device) as in ``drop_positions``; without it nothing is read back to the host."""
    rows = keys.numel()
    if x.shape[0] != rows:
        raise ValueError(f"a dropout site's output has {x.shape[0]} rows along dim 0 but the batch has {rows}: keyed "
                         "masks need batch-first outputs")
    flat = x.view(rows, -1)  # site outputs are contiguous: a view, so the zeros land in x
    exact = x.device.type != "cuda" if exact is None else exact
    if exact:
        flat.view(-1).index_fill_(0, drop_index(keys, site, flat.shape[1], p), 0)
    else:
        zero_dense(flat, *drop_positions(keys, site, flat.shape[1], p, False))
    return x
