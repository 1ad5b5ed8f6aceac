"""BVL-04's overhead as a benchmark: deterministic zero-shot inference against BayesVLM's (projection features,
Kronecker covariances, ProbCosine, probit) on the same images, side by side in one run. Compare the two rows'
means (a ratio in the same run), and commits with ``--benchmark-compare``."""
from __future__ import annotations

import pytest
import torch

from mcdo import env
from mcdo.bayes.kfac import Factors
from mcdo.bayes.model import BayesVLM
from mcdo.models import load

MODELS = {"tiny-clip": 64, "clip-vit-b-32": 8}  # model -> images per round
_CACHE: dict = {}


def _setup(name):
    if name not in _CACHE:
        torch.manual_seed(0)
        enc = load(name, pretrained=False, device=env.device())
        size = enc.spec.image_size
        x = torch.randn(MODELS[name], 3, size, size, generator=torch.Generator().manual_seed(0)).to(env.device())
        tokens = enc.tokenizer([f"a photo of a {c}." for c in ("cat", "dog", "car", "tree")]).to(env.device())
        cls = enc.projection_features("text", tokens).to_cpu()
        # factors from random pairs: the cost of a prediction does not depend on what the factors hold
        facs = []
        for modality in ("image", "text"):
            w, _ = enc.projection_weight(modality)
            a = torch.randn(64, w.shape[1], dtype=torch.float64)
            facs.append(Factors(a.T @ a, torch.eye(w.shape[0], dtype=torch.float64) * 64, 64))
        _CACHE[name] = enc, x, cls, BayesVLM.from_factors(enc, *facs, prior_precision=1.0)
    return _CACHE[name]


def _sync():
    if env.device().startswith("cuda"):
        torch.cuda.synchronize()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("mode", ["deterministic", "laplace"])
def test_zero_shot_inference(benchmark, name, mode):
    enc, x, cls, bvlm = _setup(name)
    cls_n = torch.nn.functional.normalize(cls.embeddings.double(), dim=-1)

    def run():
        with torch.no_grad():
            if mode == "deterministic":
                f = torch.nn.functional.normalize(enc.encode_image(x).double().cpu(), dim=-1)
                out = torch.softmax(bvlm.scale * f @ cls_n.T, -1)
            else:
                out = bvlm.predict(enc.projection_features("image", x).to_cpu(), cls).probs
        _sync()
        return out

    run()  # warm-up
    probs = benchmark(run)
    assert probs.shape == (x.shape[0], 4)
