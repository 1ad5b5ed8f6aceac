"""Fast MC forward for open_clip's ``VisionTransformer`` (the CLIP towers), exact in distribution.

Two savings that change no sampled value's distribution:
* the prefix (patch embedding up to the first dropout site's linear output) is deterministic,
  so it is computed once per image, not once per pass;
* with CLS pooling, the last block's attention query, output projection and MLP only matter
  for the CLS token; the other tokens' outputs (and their dropout masks) never reach the feature.
Weights are cast once to the compute dtype (bf16 on the CPU's matrix units), with inverted
dropout's 1/(1-p) and QuickGELU's 1.702 folded into them; layer norms accumulate in float32.
"""
from __future__ import annotations

import functools
import weakref
from typing import Callable

import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU
from torch import nn

from .dropout import MCDropout
from .masks import site_key

_QUICK = 1.702
TILE_TOKENS = 3200  # CPU: tokens per tile of passes (see ``PreparedRunner.suffix``)
# torch.compile modes for a fast path's T passes: "off" (eager), "default" (inductor's fused kernels),
# "reduce-overhead" (and CUDA graphs on a GPU), "max-autotune"; masks are unchanged, values agree to rounding
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")
# CPU, eager: linear layers run oneDNN on weights packed once into its blocked layout (as inductor's freezing does),
# not ``addmm``, which repacks them on every call: 5-25% faster per product on AVX-512 BF16 (bf16 and fp32)
PACK_CPU_WEIGHTS = True
_PREPARED: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def supports(tower: nn.Module) -> bool:
    """True for the open_clip ViT layout this path reproduces (CLS pooling, no attention pooler)."""
    from open_clip.transformer import VisionTransformer

    return (isinstance(tower, VisionTransformer) and tower.attn_pool is None and tower.pool_type == "tok"
            and not tower.output_tokens and tower.transformer.batch_first
            and all(isinstance(b.attn, nn.MultiheadAttention) and not hasattr(b, "ln_1_kv")
                    for b in tower.transformer.resblocks))


_COMPILED: dict[tuple, Callable] = {}


def _compiled(runner: type, mode: str) -> Callable:
    """A runner class's ``_suffix`` under ``torch.compile``, once per process and mode: every runner object shares it
    (compiling per object would compile again on every ``mc_sample`` call)."""
    key = (runner, mode)
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(runner._suffix, mode=mode, dynamic=False)
    return _COMPILED[key]


class PreparedRunner:
    """What every fast path shares: weights prepared once per (tower, dtype, p, mode) in the compute dtype with the
    firing sites' 1/(1-p) folded in, dropout on those pre-scaled outputs, and reused output buffers. A subclass says
    which parameters to scale (``_prepare``) and runs ``prefix`` / ``suffix``."""

    def __init__(self, tower: nn.Module, ctl: MCDropout, dtype: torch.dtype, compile: str = "off"):
        if compile not in COMPILE_MODES:
            raise ValueError(f"unknown compile mode {compile!r}; choose from {', '.join(COMPILE_MODES)}")
        self.tower, self.ctl, self.dtype, self.compile = tower, ctl, dtype, compile
        self.faithful = ctl.mode == "faithful"
        self.p = ctl.p
        self._buffers: dict[tuple, torch.Tensor] = {}
        self._step = self._suffix if compile == "off" else functools.partial(_compiled(type(self), compile), self)
        self._site_keys = {n: site_key(n) for n in ctl.names}  # hashed once here, not traced (hashlib breaks graphs)
        self.packed: dict[str, torch.Tensor] = {}
        first = next(tower.parameters(), None)
        self._pack = (PACK_CPU_WEIGHTS and compile == "off" and dtype in (torch.float32, torch.bfloat16)
                      and (first is None or first.device.type == "cpu") and torch.backends.mkldnn.is_available()
                      and hasattr(torch.ops.mkldnn, "_linear_pointwise"))

    def _prepare(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _suffix(self, state: tuple[torch.Tensor, torch.Tensor], t: int) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def suffix(self, state: tuple[torch.Tensor, torch.Tensor], t: int) -> torch.Tensor:
        """t independent MC passes of every image in the state: features [t * B, D] (pass-major).

        On a CPU the passes run in tiles of about ``TILE_TOKENS`` tokens, so that a layer's activations stay in
        cache between the products that read them (measured on a 2-core AMX VM with ``addmm``: SigLIP2 B-16 at 64
        rows x 196 tokens 0.40 images/s, at 8 rows 0.53; with oneDNN's packed weights on a 2-core AVX-512 BF16 VM,
        min of three interleaved runs of T = 64: 1600 tokens 6.50 s, 3200 6.14 s, 4800 6.34 s, 6400 6.29 s; CLIP B-32
        two images 1600 2.61 s, 3200 2.59 s); each tile's rows keep their own mask keys, so the result does not
        depend on the tiling."""
        b, tokens = state[0].shape[0], state[0].shape[1]
        per = t if state[0].device.type != "cpu" else max(1, TILE_TOKENS // (tokens * b))
        if per >= t:
            return self._step(state, t)
        keys, out = self.ctl.row_keys, None
        try:
            for j in range(0, t, per):
                k = min(per, t - j)
                self.ctl.row_keys = None if keys is None else keys[j * b:(j + k) * b]
                y = self._step(state, k)
                if out is None:
                    out = torch.empty(t * b, y.shape[-1], dtype=y.dtype, device=y.device)
                out[j * b:(j + k) * b] = y
        finally:
            self.ctl.row_keys = keys
        return out

    def _check_p(self) -> None:
        if self.ctl.p != self.p:  # weights were scaled for another p
            self.p, self.w = self.ctl.p, self._weights()

    def _weights(self) -> dict[str, torch.Tensor]:
        """Prepared weights, reused across runs while the tower's parameters are unchanged."""
        params = list(self.tower.parameters())
        version = tuple((id(q), q._version, q.data_ptr()) for q in params)
        key = (type(self).__name__, self.dtype, float(self.ctl.p), self.faithful)
        per_tower = _PREPARED.setdefault(self.tower, {})
        hit = per_tower.get(key)
        if hit is not None and hit[0] == version:
            self.packed = hit[2]
            return hit[1]
        w = self._prepare()
        self.packed = {}  # oneDNN's packed copies, made at first use (``_lin``)
        per_tower[key] = (version, w, self.packed)
        return w

    def _drop(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Dropout on a pre-scaled output; where this site does not drop, undo the 1/(1-p) scaling."""
        ctl, eager = self.ctl, self.compile == "off"  # compiled: no call counts (audits run the eager tower)
        if ctl.active and (ctl.only is None or ctl.only == name):
            return ctl.drop_prescaled(name, x, self._site_keys.get(name), count=eager)
        if eager:
            ctl.fired[name] += 1
        return x if ctl.p == 0.0 else x * (1.0 - ctl.p)

    def _ln(self, name: str, x: torch.Tensor) -> torch.Tensor:
        mod = self.tower.get_submodule(name)  # CPU and CUDA kernels accumulate bf16 input in fp32
        return F.layer_norm(x, mod.normalized_shape, self.w[f"{name}.weight"], self.w[f"{name}.bias"], mod.eps)

    def _lin(self, name: str, x: torch.Tensor, buffer: str | None = None, weight: str | None = None,
             bias: str | None = None) -> torch.Tensor:
        """x @ W^T + b (parameters ``name.weight`` / ``name.bias`` unless named). On a CPU, eager: oneDNN on the
        weight packed once; elsewhere ``addmm``, with ``buffer`` into a reused buffer (fresh large tensors cost page
        faults)."""
        wk, bk = weight or f"{name}.weight", bias or f"{name}.bias"
        w, b = self.w[wk], self.w.get(bk)
        if self._pack and x.is_contiguous():
            if wk not in self.packed:  # a refusal is kept too (None): oneDNN is asked once per weight
                self.packed[wk] = self._packed(w)
            packed = self.packed[wk]
            if packed is not None:
                return torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")
        if buffer is None or b is None or self.compile != "off":  # compiled: the compiler plans the memory
            return F.linear(x, w, b)
        x2 = x.reshape(-1, x.shape[-1])
        key = (buffer, x2.shape[0], w.shape[0], x.device)
        out = self._buffers.get(key)
        if out is None:
            out = self._buffers[key] = torch.empty(x2.shape[0], w.shape[0], dtype=self.dtype, device=x.device)
        torch.addmm(b, x2, w.t(), out=out)
        return out.view(*x.shape[:-1], w.shape[0])

    def _packed(self, w: torch.Tensor) -> torch.Tensor | None:
        """``w`` in oneDNN's blocked layout for products of about ``TILE_TOKENS`` rows; None where oneDNN refuses it
        (a CPU without the dtype's kernels), and that product keeps ``addmm``."""
        try:
            packed = torch.ops.mkldnn._reorder_linear_weight(w, TILE_TOKENS)
            torch.ops.mkldnn._linear_pointwise(w.new_zeros(1, w.shape[1]), packed, None, "none", [], "")  # runs here
            return packed
        except (RuntimeError, AttributeError):  # AttributeError: a torch build without the op
            return None


class CLIPViTRunner(PreparedRunner):
    """prefix(images) -> state once per image; suffix(state, t) -> features [t * B, D] with dropout."""

    def __init__(self, tower: nn.Module, ctl: MCDropout, dtype: torch.dtype = torch.float32, compile: str = "off"):
        if not supports(tower):
            raise ValueError("CLIPViTRunner needs an open_clip VisionTransformer with CLS pooling")
        super().__init__(tower, ctl, dtype, compile)
        self.blocks = list(tower.transformer.resblocks)
        self.prefix_name = "transformer.resblocks"
        self.quick_gelu = all(isinstance(b.mlp.gelu, QuickGELU) for b in self.blocks)
        self.w = self._weights()

    def _prepare(self) -> dict[str, torch.Tensor]:
        """Weights in the compute dtype; every firing site's linear pre-scaled by 1/(1-p) (inverted dropout)."""
        scale = 1.0 / (1.0 - self.ctl.p)
        sites = []
        for i in range(len(self.blocks)):
            b = f"{self.prefix_name}.{i}"
            sites += [f"{b}.mlp.c_fc.", f"{b}.mlp.c_proj."]
            if self.faithful:
                sites += [f"{b}.attn.in_proj_", f"{b}.attn.out_proj."]
        if self.faithful:
            sites.append("proj")
        w = {}
        for n, p in self.tower.named_parameters():
            p = p.detach().double()
            if any(n.startswith(s) if s.endswith((".", "_")) else n == s for s in sites):
                p = p * scale
            if self.quick_gelu and ".mlp.c_fc." in n:  # QuickGELU(h) = silu(1.702 h) / 1.702
                p = p * _QUICK
            if self.quick_gelu and n.endswith(".mlp.c_proj.weight"):
                p = p / _QUICK
            w[n] = p.to(self.dtype)
        return w

    # -- pieces ---------------------------------------------------------------------------------
    def _ls(self, i: int, which: str, x: torch.Tensor) -> torch.Tensor:
        key = f"{self.prefix_name}.{i}.{which}.gamma"
        return x * self.w[key] if key in self.w else x

    def _qkv(self, i: int, x: torch.Tensor) -> torch.Tensor:
        b = f"{self.prefix_name}.{i}"
        return self._lin(f"{b}.attn.in_proj", self._ln(f"{b}.ln_1", x), weight=f"{b}.attn.in_proj_weight",
                         bias=f"{b}.attn.in_proj_bias")

    def _attn(self, i: int, qkv: torch.Tensor, cls_only: bool) -> torch.Tensor:
        b = f"{self.prefix_name}.{i}"
        if self.faithful:
            qkv = self._drop(f"{b}.attn.in_proj", qkv)
        B, L, three_e = qkv.shape
        e = three_e // 3
        h = self.blocks[i].attn.num_heads
        q, k, v = qkv.view(B, L, 3, h, e // h).permute(2, 0, 3, 1, 4)
        if cls_only:
            q = q[:, :, :1]
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, q.shape[2], e)
        o = self._lin(f"{b}.attn.out_proj", o, buffer="attn_out")
        return self._drop(f"{b}.attn.out_proj", o) if self.faithful else o

    def _fc(self, i: int, x: torch.Tensor, buffer: str | None = "fc") -> torch.Tensor:
        b = f"{self.prefix_name}.{i}"
        return self._lin(f"{b}.mlp.c_fc", self._ln(f"{b}.ln_2", x), buffer)

    def _mlp_rest(self, i: int, h: torch.Tensor) -> torch.Tensor:
        b = f"{self.prefix_name}.{i}"
        h = self._drop(f"{b}.mlp.c_fc", h)
        h = F.silu(h, inplace=True) if self.quick_gelu else self.blocks[i].mlp.gelu(h)
        return self._drop(f"{b}.mlp.c_proj", self._lin(f"{b}.mlp.c_proj", h, buffer="mlp_out"))

    # -- the two halves -------------------------------------------------------------------------
    @torch.no_grad()
    def prefix(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Everything before the first dropout: (residual stream, first site's linear output)."""
        self._check_p()
        t = self.tower
        x = F.conv2d(images.to(self.dtype), self.w["conv1.weight"], stride=t.conv1.stride)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.w["class_embedding"].view(1, 1, -1).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.w["positional_embedding"]
        x = self._ln("ln_pre", x)
        qkv = self._qkv(0, x)
        if self.faithful:  # the first site is block 0's fused QKV
            return x, qkv
        x = x + self._ls(0, "ls_1", self._attn(0, qkv, cls_only=len(self.blocks) == 1)).clone()
        return x, self._fc(0, x, buffer=None)

    def _suffix(self, state: tuple[torch.Tensor, torch.Tensor], t: int) -> torch.Tensor:
        """t independent MC passes of every image in the state: features [t * B, D] (pass-major)."""
        x, first = (s.repeat(t, *([1] * (s.dim() - 1))) for s in state)
        last = len(self.blocks) - 1
        for i in range(len(self.blocks)):
            cls_only = i == last
            if i == 0 and not self.faithful:
                h = first
            else:
                qkv = first if i == 0 else self._qkv(i, x)
                a = self._ls(i, "ls_1", self._attn(i, qkv, cls_only))
                x = x[:, :1] + a if cls_only else x.add_(a)  # x is this pass batch's own tensor
                h = self._fc(i, x)
            x.add_(self._ls(i, "ls_2", self._mlp_rest(i, h)))
        pooled = self._ln("ln_post", x[:, 0])
        out = pooled @ self.w["proj"]
        if self.faithful:
            out = self._drop("proj", out)
        return out.float()
