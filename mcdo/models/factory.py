"""The one front door to every model (open_clip's ``factory.py`` over its ``model.py``): a registered model through
its backend (``encoder``), a proxy trained on first use (``proxy``), or a user's own model (``user``)."""
from __future__ import annotations

from ..env import offline
from ..errors import MissingWeights
from .encoder import LOADERS, Encoder, proxy_encoder, resolve_backend
from .registry import get_spec
from .user import load_user


def load(name: str, pretrained: bool = True, backend: str | None = None, device: str = "cpu", seed: int = 0,
         progress: bool = True) -> Encoder:
    """The one front door: a registered model through its backend, pretrained or random-weight, or a user's own
    model in any form of ``mcdo.model_specs.USER_FORMS`` (its family and sizes read off it, ``models.user``).

    Proxy models (``proxy-softmax``, ``proxy-sigmoid``) are trained here on first use, per ``seed``.
    """
    spec = get_spec(name)
    if spec.source != "registry":
        with offline():
            enc = load_user(spec, pretrained, device)
    elif spec.family == "proxy":
        return proxy_encoder(spec, seed, progress)
    elif spec.tiny and pretrained:
        raise MissingWeights(f"{spec.name} is a toy architecture with no pretrained weights", "use pretrained=False")
    else:
        with offline():  # nothing is fetched over the network, whatever the caller's own Hugging Face settings
            enc = LOADERS[resolve_backend(spec, backend)](spec, pretrained, device)
    enc.pretrained = pretrained
    return enc
