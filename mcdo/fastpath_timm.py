"""Fast MC forward for timm ViT towers (open_clip's SigLIP and SigLIP2, timm's own ViTs), exact in distribution.

The same savings as the CLIP fast path (``mcdo.fastpath``), on timm's layout, where every ``nn.Linear`` is a dropout
site in both modes (timm's attention has a fused ``qkv`` module, so nothing is silent):
* the prefix (patch embedding, position embedding, first layer norm and block 0's ``qkv`` product) is deterministic:
  once per image, not once per pass;
* with attention-pool (MAP) heads, as on SigLIP, every token feeds the pool's keys and values, so every block runs on
  every token; the pool's latent query product is deterministic (once per call, dropped per row), and its MLP runs
  on the pooled token only, as timm's does. With class-token pooling the last block runs for the class token only;
* weights cast once to the compute dtype with dropout's 1/(1-p) folded into every site's linear layer (exact: the
  scaling comes before each activation), layer norms accumulating in float32, large outputs in reused buffers.

Masks are the T-pass core's keyed ones (``mcdo.masks``), drawn at the tower's own module names on outputs of the
same per-row shape, so this runner draws exactly the masks the generic hook runner draws.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import MCDropout
from .fastpath import PreparedRunner

_POOLS = ("map", "token", "avg")


def _split(tower: nn.Module) -> tuple[nn.Module, str, list[tuple[str, nn.Module]]] | None:
    """(trunk, its name prefix, the modules after it) for a bare timm ViT or open_clip's ``TimmModel``."""
    from timm.models.vision_transformer import VisionTransformer

    if type(tower) is VisionTransformer:
        return tower, "", []
    trunk = getattr(tower, "trunk", None)
    if type(trunk) is VisionTransformer and type(tower).__name__ == "TimmModel":
        head = tower.head
        tail = list(head.named_children()) if isinstance(head, nn.Sequential) else [("", head)]
        return trunk, "trunk.", [(f"head.{n}" if n else "head", m) for n, m in tail]
    return None


def _norm_ok(m: nn.Module) -> bool:
    return isinstance(m, nn.Identity) or (isinstance(m, nn.LayerNorm) and m.elementwise_affine
                                          and getattr(m, "bias", None) is not None)


def gelu_form(act: nn.Module) -> str | None:
    """'none' (erf) or 'tanh' for the GELU modules of torch and timm (SO400M SigLIP2 uses timm's ``GELUTanh``);
    None for any other activation."""
    if isinstance(act, nn.GELU):
        return act.approximate
    name = type(act).__name__
    return {"GELUTanh": "tanh", "GELU": "none"}.get(name) if type(act).__module__.startswith("timm.") else None


def _mlp_ok(m: nn.Module) -> bool:
    from timm.layers import Mlp

    return (type(m) is Mlp and gelu_form(m.act) is not None and isinstance(m.norm, nn.Identity)
            and isinstance(m.fc1, nn.Linear) and isinstance(m.fc2, nn.Linear))


def supports_timm(tower: nn.Module) -> bool:
    """True for the timm ViT layout this path reproduces: plain pre-norm blocks (fused qkv, GELU MLP, optional layer
    scale), and a MAP, class-token or average pool, followed by linear or identity layers."""
    from timm.layers import AttentionPoolLatent, LayerScale
    from timm.models.vision_transformer import Attention, Block

    parts = _split(tower)
    if parts is None:
        return False
    t, _, tail = parts
    if t.global_pool not in _POOLS or not _norm_ok(t.norm) or not _norm_ok(t.fc_norm):
        return False
    if not (isinstance(t.head, (nn.Identity, nn.Linear)) and isinstance(t.patch_drop, nn.Identity)):
        return False
    if not all(isinstance(m, (nn.Identity, nn.Linear, nn.Dropout)) for _, m in tail):
        return False
    for b in t.blocks:
        a = b.attn
        if not (type(b) is Block and type(a) is Attention and _mlp_ok(b.mlp)):
            return False
        if not all(isinstance(m, nn.Identity) for m in (a.q_norm, a.k_norm, getattr(a, "norm", nn.Identity()),
                                                        b.drop_path1, b.drop_path2)):
            return False
        if getattr(a, "gate", None) is not None or not (_norm_ok(b.norm1) and _norm_ok(b.norm2)):
            return False
        if not all(isinstance(m, (nn.Identity, LayerScale)) for m in (b.ls1, b.ls2)):
            return False
    pool = t.attn_pool
    if t.global_pool == "map":
        return (type(pool) is AttentionPoolLatent and pool.pos_embed is None and pool.latent_len == 1
                and pool.pool == "token" and isinstance(pool.q_norm, nn.Identity)
                and isinstance(pool.k_norm, nn.Identity)
                and _mlp_ok(pool.mlp) and _norm_ok(pool.norm))
    return pool is None


class TimmViTRunner(PreparedRunner):
    """prefix(images) -> state once per image; suffix(state, t) -> features [t * B, D] with dropout."""

    def __init__(self, tower: nn.Module, ctl: MCDropout, dtype: torch.dtype = torch.float32, compile: str = "off"):
        if not supports_timm(tower):
            raise ValueError("TimmViTRunner needs a timm VisionTransformer (bare or in open_clip's TimmModel) of the "
                             "plain layout; other towers run on the generic runner")
        super().__init__(tower, ctl, dtype, compile)
        self.trunk, self.pre, self.tail = _split(tower)
        self.blocks = list(self.trunk.blocks)
        self.pool = self.trunk.global_pool
        self.sites = {n for n, m in tower.named_modules() if isinstance(m, nn.Linear)}  # every linear, both modes
        self.identities = {n for n, m in tower.named_modules() if isinstance(m, nn.Identity)}  # norms that are none
        self.w = self._weights()

    def _prepare(self) -> dict[str, torch.Tensor]:
        """Weights in the compute dtype; every site's linear pre-scaled by 1/(1-p) (inverted dropout)."""
        scale = 1.0 / (1.0 - self.ctl.p)
        w = {}
        for n, p in self.tower.named_parameters():
            p = p.detach().double()
            if n.rsplit(".", 1)[0] in self.sites:
                p = p * scale
            w[n] = p.to(self.dtype)
        return w

    # -- pieces ---------------------------------------------------------------------------------
    def _site(self, name: str, x: torch.Tensor, buffer: str | None = None) -> torch.Tensor:
        """A dropout site: the (pre-scaled) linear layer ``name`` on x, then its dropout."""
        return self._drop(name, self._lin(name, x, buffer))

    def _norm(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return x if name in self.identities else self._ln(name, x)

    def _scale(self, name: str, x: torch.Tensor) -> torch.Tensor:
        gamma = self.w.get(f"{name}.gamma")  # timm's LayerScale; Identity has none
        return x if gamma is None else x * gamma

    def _mlp(self, name: str, x: torch.Tensor, act: nn.Module, buffer: bool) -> torch.Tensor:
        h = self._site(f"{name}.fc1", x, "fc" if buffer else None)
        h = torch.ops.aten.gelu_(h, approximate=gelu_form(act))
        return self._site(f"{name}.fc2", h, "mlp_out" if buffer else None)

    def _block(self, i: int, x: torch.Tensor, qkv: torch.Tensor, first_only: bool) -> torch.Tensor:
        """Block i after its qkv product: attention, residual, MLP, residual (x updated in place unless first_only)."""
        b, blk = f"{self.pre}blocks.{i}", self.blocks[i]
        qkv = self._drop(f"{b}.attn.qkv", qkv)
        B, N, three_c = qkv.shape
        h = blk.attn.num_heads
        q, k, v = qkv.view(B, N, 3, h, three_c // (3 * h)).permute(2, 0, 3, 1, 4)
        if first_only:
            q = q[:, :, :1]
        o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, q.shape[2], three_c // 3)
        a = self._scale(f"{b}.ls1", self._site(f"{b}.attn.proj", o, None if first_only else "attn_out"))
        x = x[:, :1] + a if first_only else x.add_(a)  # x is this pass batch's own tensor
        m = self._mlp(f"{b}.mlp", self._norm(f"{b}.norm2", x), blk.mlp.act, buffer=not first_only)
        return x.add_(self._scale(f"{b}.ls2", m))

    def _qkv(self, i: int, x: torch.Tensor) -> torch.Tensor:
        b = f"{self.pre}blocks.{i}"
        return self._lin(f"{b}.attn.qkv", self._norm(f"{b}.norm1", x), "qkv")

    def _map_pool(self, x: torch.Tensor) -> torch.Tensor:
        """timm's AttentionPoolLatent with one latent query: keys and values over every token, MLP on the pooled one."""
        name, pool = f"{self.pre}attn_pool", self.trunk.attn_pool
        B, N, C = x.shape
        q0 = self._lin(f"{name}.q", self.w[f"{name}.latent"])  # [1, 1, C], deterministic
        q = self._drop(f"{name}.q", q0.expand(B, -1, -1).contiguous())
        kv = self._site(f"{name}.kv", x, "kv")
        h = pool.num_heads
        k, v = kv.view(B, N, 2, h, C // h).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q.view(B, 1, h, C // h).transpose(1, 2), k, v)
        o = self._site(f"{name}.proj", o.transpose(1, 2).reshape(B, 1, C))
        o = o + self._mlp(f"{name}.mlp", self._norm(f"{name}.norm", o), pool.mlp.act, buffer=False)
        return o[:, 0]

    # -- the two halves -------------------------------------------------------------------------
    @torch.no_grad()
    def prefix(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Everything before the first dropout (block 0's qkv): (residual stream, qkv product), per image."""
        self._check_p()
        t = self.trunk
        # fp32, by the tower's own modules (no sites; a dynamic-size tower resamples its position embedding there)
        x = t.norm_pre(t._pos_embed(t.patch_embed(images.float())))
        x = x.to(self.dtype)
        return x, self._lin(f"{self.pre}blocks.0.attn.qkv", self._norm(f"{self.pre}blocks.0.norm1", x))

    def _suffix(self, state: tuple[torch.Tensor, torch.Tensor], t: int) -> torch.Tensor:
        """t independent MC passes of every image in the state: features [t * B, D] (pass-major)."""
        x, qkv = (s.repeat(t, *([1] * (s.dim() - 1))) for s in state)
        last = len(self.blocks) - 1
        for i in range(len(self.blocks)):
            if i > 0:
                qkv = self._qkv(i, x)
            x = self._block(i, x, qkv, first_only=self.pool == "token" and i == last)
        x = self._norm(f"{self.pre}norm", x)
        if self.pool == "map":  # timm pools the patch tokens only, unless told to include the prefix (class) tokens
            x = self._map_pool(x if getattr(self.trunk, "pool_include_prefix", False)
                               else x[:, self.trunk.num_prefix_tokens:].contiguous())
        elif self.pool == "token":
            x = x[:, 0]
        else:
            x = x[:, self.trunk.num_prefix_tokens:].mean(dim=1)
        x = self._norm(f"{self.pre}fc_norm", x)
        if isinstance(self.trunk.head, nn.Linear):
            x = self._site(f"{self.pre}head", x)
        for name, mod in self.tail:  # open_clip's projection head: linear layers are sites, the rest identities
            if isinstance(mod, nn.Linear):
                x = self._site(name, x)
        return x.float()
