"""PRB claims on the gpu tier: ImageNet-1k zero-shot top-1 of the seed's four models (PRB-05).

The same accuracy pass and record as the OOD accuracy claims (``ood.gpu.accuracy_record``): prerequisites named
at once, features cached per model, one record per model, and stand-ins with random weights for the pipeline
test.
"""
from __future__ import annotations

from ..engine import Context, evaluates
from ..ood.gpu import accuracy_record, per_model
from ..records import Record

# model -> the seed's top-1 (judged with PRB-05's equivalence margin)
PRB05 = {"clip-vit-l-14-336": 0.755, "siglip-so400m-14-384": 0.831, "siglip2-so400m-14-378": 0.84,
         "siglip2-so400m-16-384": 0.841}


@evaluates("PRB-05", "gpu")
def prb05(ctx: Context) -> list[Record]:
    """Zero-shot top-1 with CLIP's 80-template ensemble, Clopper-Pearson CI, against the seed's table; a model
    whose weights are missing skips its own record, the others run."""
    return per_model("PRB-05", tuple(PRB05), lambda m: accuracy_record("PRB-05", ctx, m, PRB05[m]))
