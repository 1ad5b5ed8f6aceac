"""Claims about the real architectures, built with random weights (tier ``arch``; no download)."""
from __future__ import annotations


import torch

from ...dropout import MODES, audit, inject_uniform_linear_dropout
from ...models import get_spec, load
from ..engine import Context, evaluates
from ..records import NOT_REPRODUCED, REPRODUCED, Record, decide

TIER = "arch"
_MCD01_MODELS = ("clip-vit-b-32", "siglip2-vit-b-16")


@evaluates("MCD-01", TIER)
def mcd01(ctx: Context) -> list[Record]:
    """Wrapped and firing dropout sites per model and mode (p = 0.01)."""
    out = []
    for name in _MCD01_MODELS:
        enc = load(name, pretrained=False)  # not kept in the run's memo: nothing else reads it (SigLIP2 is 1.5 GB)
        x = torch.randn(1, 3, enc.spec.image_size, enc.spec.image_size, generator=torch.Generator().manual_seed(0))
        for mode in MODES:
            ctl = inject_uniform_linear_dropout(enc.vision_tower, 0.01, mode)
            try:
                a = audit(ctl, x)
            finally:
                ctl.remove()
            firing = a["firing"]
            d = decide("MCD-01", "firing_sites", (float(firing), float(firing)), TIER)
            reason = (f"{mode}: {a['wrapped']} sites wrapped, {firing} fire, {a['changes_output']} change the output "
                      f"(kinds {a['kinds']})" + (f"; silent: {len(a['silent'])} ({a['silent'][0]}, ...)"
                                                  if a["silent"] else ""))
            out.append(Record("MCD-01", TIER, f"{name} [{mode}]", d.verdict, float(firing), (float(firing), float(firing)),
                              expected=f"{d.expected} firing sites", reason=f"{reason}; {d.note}",
                              config=dict(model=name, arch=enc.spec.arch_name, weights="random", p=0.01, mode=mode),
                              details={k: a[k] for k in ("wrapped", "firing", "changes_output", "kinds", "silent")}))
        del enc, ctl  # let this model go before the next one loads
    return out


def siglip_dims_open_clip(enc) -> dict:
    tr = enc.vision_tower.trunk
    return dict(width=tr.embed_dim, depth=len(tr.blocks), heads=tr.blocks[0].attn.num_heads,
                mlp=tr.blocks[0].mlp.fc1.out_features, patch=tr.patch_embed.patch_size[0],
                image_size=tr.patch_embed.img_size[0], pooling="map", embed_dim=enc.spec.embed_dim,
                vision_params=sum(p.numel() for p in enc.vision_tower.parameters()))


def siglip_dims_hf(enc) -> dict:
    c = enc.model.config.vision_config
    return dict(width=c.hidden_size, depth=c.num_hidden_layers, heads=c.num_attention_heads,
                mlp=c.intermediate_size, patch=c.patch_size, image_size=c.image_size,
                pooling="map" if c.vision_use_head else "none", embed_dim=c.hidden_size,
                vision_params=sum(p.numel() for p in enc.model.vision_model.parameters()))


@evaluates("MCD-16", TIER)
def mcd16(ctx: Context) -> list[Record]:
    """Both backends build SigLIP2 ViT-B/16 alike; with open_clip's weights ported, features agree."""
    from transformers.activations import ACT2FN

    from ...models.port import openclip_siglip_to_hf

    spec = get_spec("siglip2-vit-b-16")
    torch.manual_seed(0)
    # each backend's model is loaded whole (its loader is under test) and kept for its vision tower only: the text
    # towers (a 256k-token embedding, 1.1 GB each) are let go before the next load (peak 5.9 -> ~2 GB here)
    oc = load(spec.name, pretrained=False, backend="open_clip")
    d_oc, vision_oc = siglip_dims_open_clip(oc), oc.vision_tower
    del oc
    hf = load(spec.name, pretrained=False, backend="hf")
    d_hf, vision_hf, config = siglip_dims_hf(hf), hf.vision_tower, hf.model.config.vision_config
    del hf
    same = d_oc == d_hf
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    state = openclip_siglip_to_hf(vision_oc.state_dict(), d_oc["depth"])
    vision_hf.inner.load_state_dict(state, strict=True)
    diffs = {}
    with torch.no_grad():
        ref = vision_oc(x)  # open_clip's encode_image without normalising
        default_act = config.hidden_act
        for act in ("gelu", default_act):  # exact GELU as timm; then the transformers default
            config.hidden_act = act
            for mlp in [layer.mlp for layer in vision_hf.inner.encoder.layers] + [vision_hf.inner.head.mlp]:
                mlp.activation_fn = ACT2FN[act]
            diffs[act] = float(((vision_hf(x) - ref).norm(dim=1) / ref.norm(dim=1)).max())
    measured = diffs["gelu"]
    verdict = REPRODUCED if same and measured < 1e-4 else NOT_REPRODUCED
    reason = (f"dims {'equal' if same else 'DIFFER'}: open_clip {d_oc} vs transformers {d_hf}; features with ported "
              f"weights: max relative difference {measured:.1e} (exact GELU in both), {diffs[default_act]:.1e} with "
              f"transformers' default activation {default_act!r} (timm uses exact GELU)")
    return [Record("MCD-16", TIER, spec.name, verdict, measured, (measured, measured),
                   expected="equal dims; features agree (< 1e-4 relative, float32)", reason=reason,
                   config=dict(backends=["open_clip", "hf"], weights="random, ported open_clip -> hf"),
                   details={"open_clip": d_oc, "hf": d_hf, "feature_rel_diff": diffs})]
