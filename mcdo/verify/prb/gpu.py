"""PRB claims on the gpu tier: ImageNet-1k zero-shot top-1 of the seed's four models (PRB-05), and the seed's three
models as frozen feature extractors on the user's labelled folder ``MCDO_DATA_ROOT/otoliths`` (PRB-04, the probe
protocol of ``mcdo.probe``: Ridge alpha = 6 and SVC, 10-fold stratified CV, corrected t-test).

The same accuracy pass and record as the OOD accuracy claims (``ood.gpu.accuracy_record``): prerequisites named
at once, features cached per model, one record per model, and stand-ins with random weights for the pipeline
test.
"""
from __future__ import annotations

import numpy as np

from ..engine import Context, evaluates
from ..ood.gpu import accuracy_record, per_model
from ..records import Record
from ..sources import EXPECT, SOURCE

# the seed's models; their top-1 is the registry's (sources.EXPECT["PRB-05"]), judged with PRB-05's margin
PRB05 = tuple(EXPECT["PRB-05"])


@evaluates("PRB-05", "gpu")
def prb05(ctx: Context) -> list[Record]:
    """Zero-shot top-1 with CLIP's 80-template ensemble, Clopper-Pearson CI, against the seed's table; a model
    whose weights are missing skips its own record, the others run."""
    return per_model("PRB-05", tuple(PRB05), lambda m: accuracy_record("PRB-05", ctx, m, m))


# PRB-04: the seed's three models as frozen feature extractors on the user's folder
PROBE_FOLDER = "otoliths"
PRB04_MODELS = ("clip-vit-l-14-336", "siglip-so400m-14-384", "siglip2-so400m-14-378")  # the baseline first
PRB04_SETTINGS = dict(folds=SOURCE["PRB-04"]["folds"], alpha=SOURCE["PRB-04"]["alpha"], metric=SOURCE["PRB-04"]["metric"],
                      folder=f"MCDO_DATA_ROOT/{PROBE_FOLDER}/<label>/*.jpg")


def _probe_require(ctx: Context):
    """A GPU, the three models' weights and the folder: everything missing named at once; else the folder."""
    from ...errors import MissingResource
    from ...probe import pipeline
    from ..prerequisites import ensure_ready, missing_files

    what = f"the probe folder {PRB04_SETTINGS['folder']} (the seed's otolith images, one folder per age)"
    layout = "put one sub-folder per label (integer ages make it ordinal) under MCDO_DATA_ROOT/" + PROBE_FOLDER

    def find(root):
        try:
            return pipeline.folder(root / PROBE_FOLDER)
        except MissingResource as e:
            raise MissingResource(f"{what}: {e.what}", layout) from e

    find.min_per_class = 2  # a smoke run keeps two of each label: the fewest a stratified CV takes
    return ensure_ready(ctx, [f for m in PRB04_MODELS for f in missing_files(ctx, m)], {what: find},
                 ", ".join([*PRB04_MODELS, PRB04_SETTINGS["folder"]]), how_data=layout)[what]


def _folds(ctx: Context, data) -> int:
    """The source's 10 folds; in a smoke run (``--limit``) as many as the smallest class has images (at least 2)."""
    if not ctx.limit:
        return PRB04_SETTINGS["folds"]
    counts = np.unique(np.asarray(data.labels), return_counts=True)[1]
    return int(max(2, min(PRB04_SETTINGS["folds"], counts.min())))


def prb04_comparison(ctx: Context):
    """Features of the three models (cached), the same folds, both probes: once per run."""
    from ...probe import pipeline
    from ..prerequisites import load_model

    def make():
        data = _probe_require(ctx)
        feats, readable = {}, None
        for m in PRB04_MODELS:
            enc, kw = load_model(ctx, m)
            feats[m], ok = pipeline.features(enc, data, **kw)
            if readable is not None and not np.array_equal(ok, readable):
                raise RuntimeError(f"{m} read other images than {PRB04_MODELS[0]}: the folds would differ")
            readable = ok
        return pipeline.run(feats, data, readable, _folds(ctx, data), seed=ctx.seed,
                            alpha=PRB04_SETTINGS["alpha"], n_unreadable=len(data.labels) - len(readable))

    return ctx.cached("prb-gpu/probe", make)


@evaluates("PRB-04", "gpu")
def prb04(ctx: Context) -> list[Record]:
    """Accuracy of each SigLIP model minus CLIP's, per probe, with the Nadeau-Bengio corrected t interval."""
    from ...probe import pipeline
    from ..prerequisites import stand_in_config
    from ..records import decide

    comp = prb04_comparison(ctx)
    out, base = [], PRB04_MODELS[0]
    for probe in ("ridge", "svc"):
        for m in PRB04_MODELS[1:]:
            t = comp.test(probe, PRB04_SETTINGS["metric"], base, m)
            ct, pt = t["corrected"], t["paired"]
            ra, rb = comp.results[(base, probe)], comp.results[(m, probe)]
            out.append(Record("PRB-04", "gpu", f"{m} vs {base} {probe}", decide("PRB-04", "difference", ct.ci, "gpu").verdict,
                              ct.mean, ct.ci, expected=f"accuracy({m}) - accuracy({base}) > 0",
                              reason=f"{comp.data}: {comp.n_images} images ({comp.n_unreadable} unreadable, skipped), "
                                     f"{comp.k}-fold stratified CV; accuracy {rb.mean('accuracy'):.3f}+-"
                                     f"{rb.sd('accuracy'):.3f} vs {ra.mean('accuracy'):.3f}+-{ra.sd('accuracy'):.3f}; "
                                     f"{ct.describe()}; {pt.describe()}",
                              config=dict(PRB04_SETTINGS, probe=probe, models=list(PRB04_MODELS), folds=comp.k,
                                          **stand_in_config(ctx, m)),
                              details=pipeline.as_dict(comp)))
    return out
