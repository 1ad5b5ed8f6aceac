"""The matched proxy pair: small dual encoders identical in architecture, initialisation, data order
and seed, differing only in the loss (softmax InfoNCE as CLIP, or sigmoid with a learned bias as SigLIP).

Trained here on the embedded world (``mcdo.data.world``), deterministically on the CPU, and cached under
``MCDO_CACHE_DIR/proxy/<hash of the configuration>.pt``; a missing cache is retrained.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..io import keep_cache, read_cache, torch_save_atomic

LOSSES = ("softmax", "sigmoid")


@dataclass(frozen=True)
class ProxyConfig:
    loss: str = "softmax"
    seed: int = 0
    image_size: int = 32
    patch: int = 8  # a 3-conv stem to 4 x 4 tokens
    width: int = 64
    depth: int = 4
    heads: int = 4
    text_width: int = 64
    text_depth: int = 2
    embed_dim: int = 64
    steps: int = 500
    batch: int = 256
    lr: float = 2e-3
    n_train: int = 20000
    data_seed: int = 1000  # the training world; evaluation worlds use other seeds
    version: int = 5  # bump when the code changes what a configuration trains

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


class Block(nn.Module):
    """Pre-norm transformer block with real nn.Linear sites: qkv, proj, fc1, fc2."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, e = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, e // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, e)
        x = x + self.proj(a)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class VisionTower(nn.Module):
    def __init__(self, c: ProxyConfig):
        super().__init__()
        # hybrid ViT: a small convolutional stem (locality, as in Xiao et al. 2021) halving the size
        # log2(patch) times down to (image_size / patch)^2 tokens, then transformer blocks whose
        # linears are the dropout sites
        n_conv = int(math.log2(c.patch))
        widths = [max(8, c.width >> (n_conv - 1 - i)) for i in range(n_conv)]
        stem, ch = [], 3
        for i, out in enumerate(widths):
            stem.append(nn.Conv2d(ch, out, 3, 2, 1))
            if i < n_conv - 1:
                stem.append(nn.GELU())
            ch = out
        self.patch_embed = nn.Sequential(*stem)
        n = (c.image_size // c.patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, c.width))
        self.pos = nn.Parameter(torch.randn(1, n + 1, c.width) * 0.02)
        self.blocks = nn.Sequential(*[Block(c.width, c.heads) for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.width)
        self.head = nn.Linear(c.width, c.embed_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.head(self.norm(self.blocks(x))[:, 0])


class TextTower(nn.Module):
    def __init__(self, c: ProxyConfig, vocab: int, context: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, c.text_width)
        self.pos = nn.Parameter(torch.randn(1, context, c.text_width) * 0.02)
        self.blocks = nn.Sequential(*[Block(c.text_width, c.heads) for _ in range(c.text_depth)])
        self.norm = nn.LayerNorm(c.text_width)
        self.head = nn.Linear(c.text_width, c.embed_dim, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.blocks(self.embed(tokens) + self.pos))
        eos = (tokens == 1).float().argmax(dim=1)  # token 1 is <eos>
        return self.head(x[torch.arange(x.shape[0]), eos])


class DualEncoder(nn.Module):
    def __init__(self, c: ProxyConfig, vocab: int, context: int):
        super().__init__()
        self.config = c
        self.visual = VisionTower(c)
        self.text = TextTower(c, vocab, context)
        # CLIP: temperature 0.07; SigLIP: t = log 10, b = -10 (Zhai et al. 2023)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07) if c.loss == "softmax" else math.log(10.0)))
        self.logit_bias = nn.Parameter(torch.tensor(-10.0)) if c.loss == "sigmoid" else None

    def encode_image(self, x: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        f = self.visual(x)
        return F.normalize(f, dim=-1) if normalize else f

    def encode_text(self, t: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        f = self.text(t)
        return F.normalize(f, dim=-1) if normalize else f


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
                     loss: str, positives: torch.Tensor | None = None) -> torch.Tensor:
    """CLIP's symmetric softmax InfoNCE, or SigLIP's pairwise sigmoid loss, on normalised features.

    ``positives`` [B, B] marks matching pairs (default: the diagonal). Pairs whose captions are
    identical are positives for both losses, so duplicates in a batch are not pushed apart.
    """
    logits = scale.exp() * img @ txt.t()
    pos = torch.eye(img.shape[0], dtype=torch.bool) if positives is None else positives
    if loss == "softmax":
        target = pos.float() / pos.sum(dim=1, keepdim=True)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target.t())) / 2
    labels = 2 * pos.float() - 1
    return -F.logsigmoid(labels * (logits + bias)).sum() / img.shape[0]


SCALAR_LR_FACTOR = 10.0


def param_groups(model: nn.Module, lr: float, weight_decay: float = 0.05) -> list[dict]:
    """Weight decay on matrices only: never on the loss scalars, gains, biases or embeddings.

    The loss scalars (CLIP's temperature; SigLIP's scale and bias) get a 10x learning rate, for both
    losses alike: Adam moves a parameter by about lr per step, and the short CPU schedule must let
    SigLIP's scale leave its initial 10 (with t = 10, b = -10 no pair's logit can exceed 0).
    """
    decay, no_decay, scalars = [], [], []
    for name, p in model.named_parameters():
        if name in ("logit_scale", "logit_bias"):
            scalars.append(p)
        elif p.ndim >= 2 and "pos" not in name and "cls" not in name and "embed.weight" not in name:
            decay.append(p)
        else:
            no_decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay, "lr": lr},
            {"params": no_decay, "weight_decay": 0.0, "lr": lr},
            {"params": scalars, "weight_decay": 0.0, "lr": lr * SCALAR_LR_FACTOR}]


def normalise_images(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """World images in [0, 1] -> the towers' input scale."""
    return torch.sub(torch.as_tensor(x, dtype=torch.float32), 0.5).div_(0.25)  # one new array, not two


def train(c: ProxyConfig, progress: bool = True) -> DualEncoder:
    """Train one proxy from scratch, deterministically (same config -> same weights)."""
    from tqdm.auto import tqdm

    from ..data import world

    if c.loss not in LOSSES:
        raise ValueError(f"unknown proxy loss {c.loss!r}; choose from {LOSSES}")
    data = world.generate(c.n_train, seed=c.data_seed, size=c.image_size)
    images = normalise_images(data.images)
    tokens = torch.as_tensor(world.tokenize(data.captions))
    torch.manual_seed(c.seed)  # identical initialisation for both losses at a given seed
    model = DualEncoder(c, len(world.VOCAB), world.CONTEXT)
    groups = param_groups(model, c.lr)
    opt = torch.optim.AdamW(groups)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=c.steps,
                                                pct_start=0.1)
    order = np.random.default_rng(c.seed)  # identical data order for both losses at a given seed
    model.train()
    for _ in tqdm(range(c.steps), desc=f"train proxy {c.loss} seed {c.seed}", disable=not progress, leave=False):
        idx = torch.as_tensor(order.choice(c.n_train, c.batch, replace=False))
        img = model.encode_image(images[idx], normalize=True)
        t = tokens[idx]
        txt = model.encode_text(t, normalize=True)
        same = (t[:, None, :] == t[None, :, :]).all(dim=-1)
        loss = contrastive_loss(img, txt, model.logit_scale, model.logit_bias, c.loss, same)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def cached_module(path: Path, empty, make) -> nn.Module:
    """The module saved at ``path`` (its state loaded into ``empty()``), or ``make()`` now, saved atomically (written
    to a temporary name, then renamed: a file on disk is always complete)."""
    def load(p: Path) -> nn.Module:
        model = empty()
        model.load_state_dict(torch.load(p, weights_only=True))
        return model.eval()

    cached = read_cache(path, load, "cached trained model")  # a damaged file is named and retrained
    if cached is not None:
        return cached
    model = make()
    keep_cache(torch_save_atomic, path, model.state_dict())
    return model


def load_or_train(c: ProxyConfig, cache_dir: Path | None = None, progress: bool = True) -> DualEncoder:
    """The trained proxy for this configuration, from the cache or trained now (and cached atomically)."""
    from .. import env
    from ..data import world

    folder = Path(cache_dir) if cache_dir else env.cache_dir() / "proxy"
    return cached_module(folder / f"{c.loss}-seed{c.seed}-{c.key()}.pt",
                         lambda: DualEncoder(c, len(world.VOCAB), world.CONTEXT), lambda: train(c, progress))


def pair(seed: int, **overrides) -> tuple[ProxyConfig, ProxyConfig]:
    """The matched (softmax, sigmoid) configurations at one seed."""
    base = replace(ProxyConfig(), seed=seed, **overrides)
    return replace(base, loss="softmax"), replace(base, loss="sigmoid")
