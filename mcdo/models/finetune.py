"""A proxy fine-tuned on the world's classes with a supervised head: the 'fine-tuned CLIP' of the robustness
signatures (ICL), built here as the paper's fine-tuned models are built from zero-shot CLIP.

The proxy's vision tower plus a linear head over its normalised embedding, the head initialised with the zero-shot
class embeddings (as WiSE-FT / FLYP initialise it), then the whole image side trained end to end with cross-entropy
on the proxies' own training images, now labelled by colour. Deterministic on the CPU; cached under
``MCDO_CACHE_DIR/proxy/finetuned-...pt`` keyed by this configuration and the zero-shot proxy's.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .proxy import ProxyConfig, cached_module, load_or_train, normalise_images


@dataclass(frozen=True)
class FinetuneConfig:
    loss: str = "softmax"
    seed: int = 0
    steps: int = 300
    batch: int = 256
    lr: float = 3e-4
    weight_decay: float = 0.1
    n_train: int = 20000
    data_seed: int = 1000  # the proxies' training world, labelled by colour
    version: int = 1

    def key(self) -> str:
        both = dict(asdict(self), proxy=ProxyConfig(loss=self.loss, seed=self.seed).key())
        return hashlib.sha256(json.dumps(both, sort_keys=True).encode()).hexdigest()[:16]


class FinetunedProxy(nn.Module):
    """The proxy's vision tower with a supervised linear head on its normalised embedding."""

    def __init__(self, visual: nn.Module, head: torch.Tensor, logit_scale: float):
        super().__init__()
        self.visual = visual
        self.head = nn.Linear(head.shape[1], head.shape[0], bias=True)
        with torch.no_grad():
            self.head.weight.copy_(head)
            self.head.bias.zero_()
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(logit_scale))))

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """The features the head reads: the normalised image embedding."""
        return F.normalize(self.visual(x), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_scale.exp() * self.head(self.representation(x))


def zero_shot_head(model, prompts: list[str]) -> torch.Tensor:
    """Normalised text embeddings of one prompt per class ``[K, D]``: the zero-shot classifier."""
    from ..data import world

    with torch.no_grad():
        return F.normalize(model.encode_text(torch.as_tensor(world.tokenize(prompts))), dim=-1)


def finetune(c: FinetuneConfig, progress: bool = True) -> FinetunedProxy:
    """Fine-tune the zero-shot proxy of (loss, seed) on colour labels, deterministically."""
    from tqdm.auto import tqdm

    from ..data import world

    base = load_or_train(ProxyConfig(loss=c.loss, seed=c.seed), progress=progress)
    model = FinetunedProxy(copy.deepcopy(base.visual), zero_shot_head(base, world.class_prompts()),
                           float(base.logit_scale.detach().exp()))
    data = world.generate(c.n_train, seed=c.data_seed)
    x, y = normalise_images(data.images), torch.as_tensor(data.labels)
    torch.manual_seed(c.seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos" not in n and "cls" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "pos" not in n and "cls" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=c.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=c.lr, total_steps=c.steps, pct_start=0.1)
    order = np.random.default_rng(c.seed + 10_000)
    model.train()
    for _ in tqdm(range(c.steps), desc=f"fine-tune proxy {c.loss} seed {c.seed}", disable=not progress, leave=False):
        idx = torch.as_tensor(order.choice(c.n_train, c.batch, replace=False))
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def load_or_finetune(c: FinetuneConfig, cache_dir: Path | None = None, progress: bool = True) -> FinetunedProxy:
    """The fine-tuned proxy for this configuration, from the cache or fine-tuned now (and cached atomically)."""
    from .. import env
    from ..data import world

    def empty() -> FinetunedProxy:
        base = load_or_train(ProxyConfig(loss=c.loss, seed=c.seed), progress=progress)
        head = torch.zeros(len(world.CLASSES), base.visual.head.out_features)
        return FinetunedProxy(copy.deepcopy(base.visual), head, 1.0)

    folder = Path(cache_dir) if cache_dir else env.cache_dir() / "proxy"
    return cached_module(folder / f"finetuned-{c.loss}-seed{c.seed}-{c.key()}.pt", empty, lambda: finetune(c, progress))
