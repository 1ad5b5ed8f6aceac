"""Weight port between backends: open_clip/timm SigLIP vision tower -> transformers SiglipVisionModel.

Used to check that both backends compute the same function where their weights are shared.
"""
from __future__ import annotations

import torch


def openclip_siglip_to_hf(oc_visual_state: dict[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """Map an open_clip ``TimmModel`` SigLIP state dict (``trunk.*``) onto transformers' vision model names."""
    s = {k.removeprefix("trunk."): v for k, v in oc_visual_state.items()}
    out = {
        "embeddings.patch_embedding.weight": s["patch_embed.proj.weight"],
        "embeddings.patch_embedding.bias": s["patch_embed.proj.bias"],
        "embeddings.position_embedding.weight": s["pos_embed"][0],
        "post_layernorm.weight": s["norm.weight"], "post_layernorm.bias": s["norm.bias"],
        "head.probe": s["attn_pool.latent"],
        "head.attention.in_proj_weight": torch.cat([s["attn_pool.q.weight"], s["attn_pool.kv.weight"]]),
        "head.attention.in_proj_bias": torch.cat([s["attn_pool.q.bias"], s["attn_pool.kv.bias"]]),
        "head.attention.out_proj.weight": s["attn_pool.proj.weight"],
        "head.attention.out_proj.bias": s["attn_pool.proj.bias"],
        "head.layernorm.weight": s["attn_pool.norm.weight"], "head.layernorm.bias": s["attn_pool.norm.bias"],
    }
    for fc in ("fc1", "fc2"):
        for t in ("weight", "bias"):
            out[f"head.mlp.{fc}.{t}"] = s[f"attn_pool.mlp.{fc}.{t}"]
    for i in range(depth):
        b, h = f"blocks.{i}.", f"encoder.layers.{i}."
        for t in ("weight", "bias"):
            q, k, v = s[f"{b}attn.qkv.{t}"].chunk(3)
            out.update({f"{h}self_attn.q_proj.{t}": q, f"{h}self_attn.k_proj.{t}": k,
                        f"{h}self_attn.v_proj.{t}": v, f"{h}self_attn.out_proj.{t}": s[f"{b}attn.proj.{t}"],
                        f"{h}layer_norm1.{t}": s[f"{b}norm1.{t}"], f"{h}layer_norm2.{t}": s[f"{b}norm2.{t}"],
                        f"{h}mlp.fc1.{t}": s[f"{b}mlp.fc1.{t}"], f"{h}mlp.fc2.{t}": s[f"{b}mlp.fc2.{t}"]})
    return out
