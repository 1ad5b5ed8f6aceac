"""Registry and backends: every registered architecture builds with random weights; errors are clear."""
import pytest
import torch

from mcdo.errors import MissingWeights
from mcdo.models import REGISTRY, get_spec, load
from mcdo.models.encoder import resolve_backend

SMALL = [n for n, s in REGISTRY.items() if s.tiny]


@pytest.mark.parametrize("name", SMALL)
def test_tiny_encoders_run_every_method(name):
    enc = load(name, pretrained=False)
    x = torch.randn(2, 3, enc.spec.image_size, enc.spec.image_size)
    with torch.no_grad():
        f = enc.encode_image(x)
        t = enc.encode_text(enc.tokenizer(["a photo of a cat", "a dog"]))
    assert f.shape == (2, enc.spec.embed_dim) and t.shape == (2, enc.spec.embed_dim)
    assert enc.logit_scale > 0
    assert (enc.logit_bias is None) == (enc.spec.loss == "softmax")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["clip-vit-b-32", "siglip2-vit-b-16"])
def test_real_architectures_build_with_random_weights(name):
    enc = load(name, pretrained=False)
    with torch.no_grad():
        f = enc.encode_image(torch.randn(1, 3, enc.spec.image_size, enc.spec.image_size))
    assert f.shape == (1, enc.spec.embed_dim)


def test_every_registered_architecture_is_known_to_open_clip():
    import open_clip

    for spec in REGISTRY.values():
        if spec.family == "proxy":  # trained here (mcdo.models.proxy), not an open_clip architecture
            continue
        assert open_clip.get_model_config(spec.arch_name) is not None, spec.arch_name
    assert {s.loss for s in REGISTRY.values() if s.family == "proxy"} == {"softmax", "sigmoid"}


def test_missing_weights_is_a_typed_error_naming_them(monkeypatch):
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    with pytest.raises(MissingWeights, match=r"timm/vit_base_patch32_clip_224.openai.*HF_HOME=/nonexistent-hf-home"):
        load("clip-vit-b-32", pretrained=True)
    with pytest.raises(MissingWeights, match="pretrained=False"):
        load("tiny-clip", pretrained=True)


def test_unknown_model_and_backend_are_clear_errors(monkeypatch):
    with pytest.raises(KeyError, match="registered:"):
        get_spec("clip-vit-z-99")
    monkeypatch.setenv("MCDO_SIGLIP2_BACKEND", "jax")
    with pytest.raises(ValueError, match="MCDO_SIGLIP2_BACKEND"):
        resolve_backend(get_spec("siglip2-vit-b-16"), None)
    monkeypatch.setenv("MCDO_SIGLIP2_BACKEND", "hf")
    assert resolve_backend(get_spec("siglip2-vit-b-16"), None) == "hf"
    assert resolve_backend(get_spec("clip-vit-b-32"), None) == "open_clip"  # only SigLIP2 follows the variable
    with pytest.raises(ValueError, match="SigLIP/SigLIP2 only"):
        resolve_backend(get_spec("clip-vit-b-32"), "hf")
