"""Claims about the real architectures, built with random weights (tier ``arch``; no download)."""
from __future__ import annotations

from importlib.metadata import version

import torch

from ...models import get_spec
from ..engine import Context, evaluates
from ..records import NOT_REPRODUCED, REPRODUCED, Record, decide

TIER = "arch"


def _meta_model(arch: str):
    import open_clip

    with torch.device("meta"):
        return open_clip.create_model(arch, pretrained=None, device="meta")


@evaluates("PRB-01", TIER)
def prb01(ctx: Context) -> list[Record]:
    expected = {"clip-vit-l-14-336": (768, 336), "siglip-so400m-14-384": (1152, 384),
                "siglip2-so400m-14-378": (1152, 378)}
    out = []
    for name, (dim, res) in expected.items():
        spec = get_spec(name)
        m = _meta_model(spec.arch_name)
        with torch.no_grad():  # shape propagation on the meta device: the real forward, no memory
            f = m.encode_image(torch.empty(1, 3, res, res, device="meta"))
        got_dim = int(f.shape[-1])
        got_res = int(m.visual.image_size[0] if hasattr(m.visual, "image_size") else res)
        ok = got_dim == dim and got_res == res
        out.append(Record("PRB-01", TIER, name, REPRODUCED if ok else NOT_REPRODUCED, float(got_dim),
                          (float(got_dim), float(got_dim)), expected=f"dim {dim}, input {res}px",
                          reason=f"{spec.arch_name}: image embedding dim {got_dim}, input resolution {got_res}px",
                          config=dict(arch=spec.arch_name, weights="none (meta device)")))
    return out


@evaluates("PRB-02", TIER)
def prb02(ctx: Context) -> list[Record]:
    # (model, towers counted); the expected millions are the registry's, one margin for the table (catalog.MARGINS)
    cases = (("clip-vit-l-14-336", "image+text"), ("siglip-so400m-14-384", "image"))
    out = []
    for name, towers in cases:
        m = _meta_model(get_spec(name).arch_name)
        params = m.visual.parameters() if towers == "image" else m.parameters()
        n = sum(p.numel() for p in params) / 1e6
        total = sum(p.numel() for p in m.parameters()) / 1e6
        d = decide("PRB-02", name, (n, n), TIER)
        out.append(Record("PRB-02", TIER, name, d.verdict, n, (n, n), expected=f"{d.expected} million",
                          reason=f"{n:.2f}M parameters in the {towers} tower(s); whole model {total:.2f}M; {d.note}",
                          config=dict(arch=get_spec(name).arch_name, counted=towers)))
    return out


@evaluates("PRB-03", TIER)
def prb03(ctx: Context) -> list[Record]:
    from packaging.version import Version

    oc, tm = version("open_clip_torch"), version("timm")
    ok_versions = Version(oc) >= Version("2.31.0") and Version(tm) >= Version("1.0.15")
    m = _meta_model(get_spec("siglip2-so400m-14-378").arch_name)
    builds = m is not None
    ok = ok_versions and builds
    return [Record("PRB-03", TIER, "siglip2-so400m-14-378", REPRODUCED if ok else NOT_REPRODUCED, float(ok),
                   (float(ok), float(ok)), expected="open-clip-torch >= 2.31.0, timm >= 1.0.15",
                   reason=f"installed open-clip-torch {oc}, timm {tm}; SigLIP2 SO400M builds: {builds} (the "
                          f"requirement is pinned in pyproject.toml; older versions cannot be checked here)",
                   config=dict(open_clip_torch=oc, timm=tm))]
