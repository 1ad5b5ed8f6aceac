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


def _built(spec):
    """The registry entry's open_clip architecture on the meta device (no memory, no compute): its input size,
    image and text embedding dims read from what open_clip builds, and whether it has a logit bias."""
    import open_clip

    with torch.device("meta"):
        m = open_clip.create_model(spec.arch_name, pretrained=None, device="meta")
    size = getattr(m.visual, "image_size", None) or m.visual.trunk.patch_embed.img_size
    size = size if isinstance(size, int) else size[0]
    image = m.encode_image(torch.zeros(1, 3, size, size, device="meta")).shape[-1]
    text = m.encode_text(torch.zeros(1, m.context_length, dtype=torch.long, device="meta")).shape[-1]
    return size, image, text, getattr(m, "logit_bias", None) is not None


@pytest.mark.parametrize("name", [n for n, s in REGISTRY.items() if s.family != "proxy"])
def test_registry_data_agree_with_the_built_architecture(name):
    """Issue 23.1: image size, embedding dim and loss (a logit bias iff sigmoid) as open_clip builds each entry,
    and for the entries with a transformers fallback config, as transformers builds it."""
    spec = REGISTRY[name]
    size, image, text, bias = _built(spec)
    assert (size, image, text) == (spec.image_size, spec.embed_dim, spec.embed_dim)
    assert bias == (spec.loss == "sigmoid")
    if spec.hf_config:
        from transformers import SiglipConfig, SiglipModel

        cfg = SiglipConfig(vision_config=spec.hf_config["vision"], text_config=spec.hf_config["text"])
        with torch.device("meta"):
            hf = SiglipModel(cfg)
        assert cfg.vision_config.image_size == (spec.hf_image_size or spec.image_size)
        assert hf.vision_model.post_layernorm.normalized_shape[0] == spec.embed_dim


def test_the_so400m_378_transformers_checkpoint_reads_the_same_patch_grid():
    """siglip2-so400m-14-378's transformers release is named (and configured) for 384 px: its patch-14 convolution
    reads the same 27 x 27 grid as open_clip's 378 px, so each backend is fed its own size."""
    spec = REGISTRY["siglip2-so400m-14-378"]
    assert spec.hf_id.endswith("patch14-384") and spec.hf_image_size == 384 and spec.image_size == 378
    conv = torch.nn.Conv2d(3, 1, 14, 14, device="meta")
    grid = {s: conv(torch.zeros(1, 3, s, s, device="meta")).shape[-2:] for s in (spec.image_size, spec.hf_image_size)}
    assert grid[378] == grid[384] == (27, 27)
