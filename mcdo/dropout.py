"""MC-dropout sites of a vision tower: inject, audit, and switch MC mode on and off.

Modes:
* ``as_published``: output dropout on every ``nn.Linear`` module of the tower, as the seed's
  ``inject_uniform_linear_dropout`` did. On open_clip's CLIP the attention's fused QKV is not
  a module and ``out_proj`` is called functionally by ``nn.MultiheadAttention``, so those
  wrappers never fire; the audit shows it.
* ``faithful``: every linear output of the tower gets independent dropout: the fused QKV and
  the output projection inside ``nn.MultiheadAttention`` included, and a final projection
  matrix (open_clip's ``visual.proj``) too.

Dropout is applied with a forward hook (or, for ``nn.MultiheadAttention`` in faithful mode, an
equivalent functional forward), scaled by 1/(1-p), only while MC mode is on; the model stays in
eval mode and normalisation layers are never touched.
"""
from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .masks import apply_drops, site_key

MODES = ("as_published", "faithful")


@dataclass(frozen=True)
class Site:
    name: str  # qualified name inside the tower; '<mha>.in_proj' for a fused QKV
    kind: str  # linear | mha_in_proj | mha_out_proj | tower_proj


@dataclass
class MCDropout:
    """The dropout sites injected into one tower, and the switch that turns them on."""

    tower: nn.Module
    p: float
    mode: str
    sites: list[Site] = field(default_factory=list)
    active: bool = False
    only: str | None = None  # restrict dropout to one site (audits)
    fired: Counter = field(default_factory=Counter)
    record_rates: bool = False
    sampler: str = "sparse"  # sparse | dense
    dropped: Counter = field(default_factory=Counter)
    seen: Counter = field(default_factory=Counter)
    # keys of the rows of the batch being run (``mcdo.masks``): masks become a function of (seed, image, pass,
    # site), set by the T-pass core per chunk; None: masks from torch's global generator (audits, loops)
    row_keys: torch.Tensor | None = None
    # whether a row whose drawn gaps fall short of its end draws more, reading a flag back from the device (None:
    # off CUDA only). Off, nothing is read back (no host sync), and a shortfall has probability < 1e-20 per row and
    # site (``mcdo.masks.draws``): both give the same masks unless it happens
    exact: bool | None = None
    _handles: list = field(default_factory=list)
    _patched: list = field(default_factory=list)

    def apply(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Dropout at site ``name`` when MC mode is on (counts the call either way).

        ``sampler="sparse"`` (default) draws only the dropped positions (exact, see
        ``sparse_drop_positions``); ``"dense"`` is ``F.dropout``, a full Bernoulli mask, as the seed ran it.
        """
        self.fired[name] += 1
        if not self.active or self.p == 0.0 or (self.only is not None and name != self.only):
            return x
        if self.sampler == "dense":
            y = F.dropout(x, self.p, training=True)
        elif self.row_keys is not None:
            y = apply_drops(x * (1.0 / (1.0 - self.p)), self.row_keys, site_key(name), self.p, self.exact)
        else:
            y = x * (1.0 / (1.0 - self.p))
            y.view(-1)[sparse_drop_positions(y.numel(), self.p, y.device)] = 0
        if self.record_rates:
            nonzero = x != 0
            self.dropped[name] += int(((y == 0) & nonzero).sum())
            self.seen[name] += int(nonzero.sum())
        return y

    def drop_prescaled(self, name: str, x: torch.Tensor, key: int | None = None, count: bool = True) -> torch.Tensor:
        """Dropout at ``name`` on an output whose linear layer was already scaled by 1/(1-p).

        The caller decides whether this site drops now (MC mode, ``only``); see ``fastpath``. ``key``: the site's
        ``site_key``, when the caller has it; ``count=False`` leaves ``fired`` alone (under ``torch.compile`` a
        counter's value would be guarded on, and every call would compile again).

        Only the dropped positions are drawn: the gaps between drops of i.i.d. Bernoulli(p)
        trials are i.i.d. Geometric(p), so ~p*n random numbers replace n (exact in distribution).
        """
        if count:
            self.fired[name] += 1
        if self.p == 0.0:
            return x
        if self.row_keys is not None:
            before = int((x != 0).sum()) if self.record_rates else 0
            apply_drops(x, self.row_keys, site_key(name) if key is None else key, self.p, self.exact)
            if self.record_rates:
                self.seen[name] += before
                self.dropped[name] += before - int((x != 0).sum())
            return x
        flat = x.view(-1)
        pos = sparse_drop_positions(flat.numel(), self.p, x.device)
        if self.record_rates:
            self.dropped[name] += int((flat[pos] != 0).sum())
            self.seen[name] += int((flat != 0).sum())
        flat[pos] = 0
        return x

    def remove(self) -> None:
        """Take every site out and restore the tower exactly."""
        for h in self._handles:
            h.remove()
        for mod in self._patched:
            del mod.forward  # back to the class's forward
        self._handles.clear()
        self._patched.clear()
        self.active = False

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sites]


def sparse_drop_positions(n: int, p: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """Indices dropped among n i.i.d. Bernoulli(p) trials, drawn as cumulative Geometric(p) gaps."""
    mean = n * p
    m = int(mean + 8.0 * (mean * (1 - p)) ** 0.5 + 16)
    gaps = torch.empty(m, device=device, dtype=torch.float64).geometric_(p)
    while float(gaps.sum()) < n:  # rare: not enough gaps to pass the end
        gaps = torch.cat([gaps, torch.empty(m, device=device, dtype=torch.float64).geometric_(p)])
    pos = torch.cumsum(gaps, 0).sub_(1).long()
    return pos[pos < n]


def _mha_forward(mha: nn.MultiheadAttention, ctl: MCDropout, name: str):
    original = type(mha).forward

    def forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None, **kw):
        if not ctl.active or ctl.p == 0.0:
            return original(mha, query, key, value, key_padding_mask=key_padding_mask, need_weights=need_weights,
                            attn_mask=attn_mask, **kw)
        if not (query is key and key is value) or key_padding_mask is not None:
            raise NotImplementedError("faithful dropout supports self-attention without padding masks only")
        x = query if mha.batch_first else query.transpose(0, 1)
        b, n, e = x.shape
        h = mha.num_heads
        qkv = ctl.apply(f"{name}.in_proj", F.linear(x, mha.in_proj_weight, mha.in_proj_bias))
        q, k, v = qkv.view(b, n, 3, h, e // h).permute(2, 0, 3, 1, 4)
        mask = attn_mask.to(q.dtype) if attn_mask is not None and attn_mask.dtype != torch.bool else attn_mask
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, n, e)
        o = ctl.apply(f"{name}.out_proj", F.linear(o, mha.out_proj.weight, mha.out_proj.bias))
        return (o if mha.batch_first else o.transpose(0, 1)), None

    return forward


def inject_uniform_linear_dropout(tower: nn.Module, p: float = 0.01, mode: str = "as_published") -> MCDropout:
    """Install dropout sites in a vision tower (inactive until ``mc_mode``); returns the controller."""
    if mode not in MODES:
        raise ValueError(f"unknown dropout mode {mode!r}; choose from {MODES}")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if getattr(tower, "_mcdo_dropout", None) is not None:
        raise RuntimeError("this tower already has MC-dropout sites; call .remove() on the old controller first")
    ctl = MCDropout(tower, p, mode)
    mha_out = set()
    if mode == "faithful":
        for name, mod in tower.named_modules():
            if isinstance(mod, nn.MultiheadAttention):
                mod.forward = _mha_forward(mod, ctl, name)
                ctl._patched.append(mod)
                ctl.sites += [Site(f"{name}.in_proj", "mha_in_proj"), Site(f"{name}.out_proj", "mha_out_proj")]
                mha_out.add(id(mod.out_proj))
    for name, mod in tower.named_modules():
        if isinstance(mod, nn.Linear) and id(mod) not in mha_out:
            ctl.sites.append(Site(name, "linear"))
            ctl._handles.append(mod.register_forward_hook(lambda m, i, o, _n=name: ctl.apply(_n, o)))
    if mode == "faithful" and isinstance(getattr(tower, "proj", None), nn.Parameter):
        ctl.sites.append(Site("proj", "tower_proj"))
        ctl._handles.append(tower.register_forward_hook(lambda m, i, o: ctl.apply("proj", o)))
    tower._mcdo_dropout = ctl
    original_remove = ctl.remove

    def remove() -> None:
        original_remove()
        tower._mcdo_dropout = None

    ctl.remove = remove
    return ctl


@contextlib.contextmanager
def mc_mode(ctl: MCDropout, p: float | None = None) -> Iterator[MCDropout]:
    """MC dropout on inside the block; the previous state (on/off, p, restriction) is restored after."""
    prev = (ctl.active, ctl.p, ctl.only)
    ctl.active = True
    if p is not None:
        ctl.p = p
    try:
        yield ctl
    finally:
        ctl.active, ctl.p, ctl.only = prev


@torch.no_grad()
def audit(ctl: MCDropout, example: torch.Tensor, probe_p: float = 0.5) -> dict:
    """Sites wrapped, sites whose code runs in a forward (firing), and sites that change the output.

    A site changes the output when dropout at that site alone (at ``probe_p``) moves the tower's
    output on ``example``; this is what MC dropout can actually sample.
    """
    tower = ctl.tower
    base = tower(example)
    ctl.fired.clear()
    with mc_mode(ctl, p=probe_p):
        tower(example)
        firing = [n for n in ctl.names if ctl.fired[n] > 0]
        changes = []
        for name in firing:
            ctl.only = name
            torch.manual_seed(0)
            if not torch.equal(tower(example), base):
                changes.append(name)
    wrapped = ctl.names
    kinds = Counter(s.kind for s in ctl.sites)
    return {"mode": ctl.mode, "wrapped": len(wrapped), "firing": len(firing), "changes_output": len(changes),
            "silent": [n for n in wrapped if n not in firing], "kinds": dict(kinds), "sites": wrapped}


def firing_sites(tower: nn.Module, p: float, mode: str, example: torch.Tensor) -> dict:
    """Sites wrapped and sites that fire in one forward of ``example`` (a cheap part of ``audit``), for records:
    the same model has other sites on other backends (open_clip's SigLIP2 tower against transformers')."""
    ctl = inject_uniform_linear_dropout(tower, p, mode)
    try:
        ctl.fired.clear()
        with torch.no_grad(), mc_mode(ctl):
            tower(example)
        return {"wrapped": len(ctl.names), "firing": sum(1 for n in ctl.names if ctl.fired[n] > 0)}
    finally:
        ctl.remove()
