"""Compare models as frozen feature extractors on one labelled data set: features once per model (cached),
the same stratified folds for every model, each probe cross-validated, every pair of models tested per probe and
metric. ``mcdo probe`` and the PRB-04 evaluators run this.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from ..io import save_figure_atomic
from . import compare, cv

WORLD_SIZE = "world-size"


@dataclass(frozen=True)
class ProbeData:
    """Labels of one data set: class names, the value of each image's label (age or class index), ordinal or not."""

    name: str
    labels: np.ndarray  # class index per image
    classnames: list[str]
    images: object  # a world image array, or an ImageList

    @property
    def ordinal(self) -> bool:
        return cv.ordinal_values(self.classnames) is not None

    @property
    def values(self) -> np.ndarray:
        v = cv.ordinal_values(self.classnames)
        return self.labels if v is None else v[self.labels]


def world_size(n: int = 1000, seed: int = 13) -> ProbeData:
    """An ordinal task drawn from the embedded world: each shape's radius in whole pixels (5..11), read like an
    age from a 32-pixel image."""
    from ..data import world

    d = world.generate(n, seed=seed)
    r = np.floor(d.attributes["radius"]).astype(np.int64)
    names = [str(v) for v in range(int(r.min()), int(r.max()) + 1)]
    return ProbeData(f"world seed {seed} n={n}, radius in pixels", r - int(r.min()), names, d.images)


def folder(path) -> ProbeData:
    """A labelled image folder ``DIR/<label>/*.jpg`` (integer folder names make the labels ordinal)."""
    from ..data.folders import class_folder

    f = class_folder(path)
    return ProbeData(f.images.name, f.images.labels, f.classnames, f.images)


def features(enc, data: ProbeData, progress: bool = True, **feature_kw) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm frozen image features of ``data`` and the positions of the images that could be read."""
    from ..data.folders import ImageList
    from ..signatures.collect import representations

    if isinstance(data.images, ImageList):
        from ..features import image_features

        f = image_features(enc, data.images, progress=progress, **feature_kw)
        bad = {str(p) for p in f.failed}
        ok = np.array([i for i, p in enumerate(data.images.paths) if str(p) not in bad], dtype=np.int64)
        return f.features.astype(np.float64), ok
    acts, _ = representations(enc, data.images)
    return acts, np.arange(len(acts))


@dataclass
class Comparison:
    """Every model's probe results on the same folds, and each pairwise test."""

    data: str
    ordinal: bool
    n_images: int
    n_unreadable: int
    k: int
    seed: int
    results: dict[tuple[str, str], cv.ProbeResult] = field(default_factory=dict)
    tests: list[dict] = field(default_factory=list)
    baselines: dict[str, cv.ProbeResult] = field(default_factory=dict)  # what every probe must beat, same folds

    @property
    def metrics(self) -> tuple[str, ...]:
        return cv.ORDINAL_METRICS if self.ordinal else cv.NOMINAL_METRICS

    def test(self, probe: str, metric: str, a: str, b: str) -> dict:
        return next(t for t in self.tests if (t["probe"], t["metric"], t["a"], t["b"]) == (probe, metric, a, b))


def run(feats: dict[str, np.ndarray], data: ProbeData, readable: np.ndarray, k: int = 10, seed: int = 0,
        probes=cv.PROBES, alpha: float = cv.RIDGE_ALPHA, n_unreadable: int = 0) -> Comparison:
    """Cross-validate every probe on every model's features (rows = the readable images, same for all models) and
    test every pair of models (b - a, in the order given) per probe and metric."""
    y = data.values[readable]
    cv.check_labels(data.labels[readable], k, data.classnames)
    splits = cv.folds(y, k, seed)
    comp = Comparison(data.name, data.ordinal, len(readable), n_unreadable, k, seed)
    for kind in ("majority", "mean") if data.ordinal else ("majority",):
        comp.baselines[kind] = cv.baseline(y, splits, kind, data.ordinal)
    for model, x in feats.items():
        for p in probes:
            comp.results[(model, p)] = cv.cross_validate(model, x, y, splits, p, data.ordinal, alpha)
    for p in probes:
        for a, b in combinations(list(feats), 2):
            ra, rb = comp.results[(a, p)], comp.results[(b, p)]
            for m in comp.metrics:
                comp.tests.append(dict(probe=p, metric=m, a=a, b=b,
                                       paired=compare.paired_t(ra.per_fold[m], rb.per_fold[m]),
                                       corrected=compare.corrected_t(ra.per_fold[m], rb.per_fold[m], ra.n_train,
                                                                     ra.n_test)))
    return comp


def table(comp: Comparison) -> str:
    """The seed's comparison table (mean +- s.d. over folds) and the pairwise tests, as markdown."""
    ms = comp.metrics
    lines = [f"{comp.data}: {comp.n_images} images ({comp.n_unreadable} unreadable, skipped), {comp.k}-fold "
             f"stratified CV (seed {comp.seed}), {'ordinal' if comp.ordinal else 'nominal'} labels", "",
             "| model | probe | " + " | ".join(f"{m} ({'higher' if cv.HIGHER_IS_BETTER[m] else 'lower'} is better)"
                                              for m in ms) + " |", "| --- | --- |" + " --- |" * len(ms)]
    for (model, p), r in [*comp.results.items(), *((("baseline", k), r) for k, r in comp.baselines.items())]:
        name = f"{model} ({cv.BASELINES[p]})" if model == "baseline" else model
        lines.append(f"| {name} | {p} | " + " | ".join(f"{r.mean(m):.3f} +- {r.sd(m):.3f}" for m in ms) + " |")
    lines += ["", "| probe | metric | b - a | paired t | corrected t (Nadeau-Bengio) |",
              "| --- | --- | --- | --- | --- |"]
    for t in comp.tests:
        pt, ct = t["paired"], t["corrected"]
        lines.append(f"| {t['probe']} | {t['metric']} | {t['b']} - {t['a']} | {pt.mean:+.4f}, p={pt.p:.3g} | "
                     f"[{ct.ci[0]:+.4f}, {ct.ci[1]:+.4f}], p={ct.p:.3g} |")
    notes = sorted({f"{t['probe']} {t['metric']} {t['b']} - {t['a']}: {t[k].note}" for t in comp.tests
                    for k in ("paired", "corrected") if t[k].note})
    return "\n".join(lines + ([""] + [f"- {n}" for n in notes] if notes else []))


def as_dict(comp: Comparison) -> dict:
    """Everything of a comparison as plain data (per-fold figures included), for the records file."""
    return dict(data=comp.data, ordinal=comp.ordinal, n_images=comp.n_images, n_unreadable=comp.n_unreadable,
                folds=comp.k, seed=comp.seed,
                results=[dict(model=m, probe=p, per_fold={k: v.tolist() for k, v in r.per_fold.items()},
                              mean={k: r.mean(k) for k in r.per_fold}, sd={k: r.sd(k) for k in r.per_fold})
                         for (m, p), r in comp.results.items()],
                tests=[dict(t, paired=vars(t["paired"]), corrected=vars(t["corrected"])) for t in comp.tests],
                baselines={k: dict(what=cv.BASELINES[k], per_fold={m: v.tolist() for m, v in r.per_fold.items()},
                                   mean={m: r.mean(m) for m in r.per_fold}) for k, r in comp.baselines.items()})


def bar_chart(comp: Comparison, path, metric: str = "accuracy") -> None:
    """Bars of the mean over folds per model and probe, with every fold's figure as a point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(m for m, _ in comp.results))
    probes = list(dict.fromkeys(p for _, p in comp.results))
    fig, ax = plt.subplots(figsize=(4.4 + 1.6 * len(models), 3.6))
    w = 0.8 / len(probes)
    rng = np.random.default_rng(0)
    for j, p in enumerate(probes):
        xs = np.arange(len(models)) + (j - (len(probes) - 1) / 2) * w
        vals = [comp.results[(m, p)].per_fold[metric] for m in models]
        ax.bar(xs, [v.mean() for v in vals], w * 0.9, label=p, alpha=0.7)
        for x, v in zip(xs, vals):
            ax.scatter(x + rng.uniform(-w / 5, w / 5, len(v)), v, s=9, color="k", zorder=3)
    ax.set_xticks(np.arange(len(models)), models, rotation=15, fontsize=8)
    for (kind, r), style in zip(comp.baselines.items(), ("--", ":")):
        ax.axhline(r.mean(metric), color="grey", ls=style, lw=1, label=f"baseline: {cv.BASELINES[kind]}")
    ax.set_ylabel(f"{metric} per fold ({'higher' if cv.HIGHER_IS_BETTER[metric] else 'lower'} is better)")
    ax.set_title(f"{comp.data}: {comp.k}-fold CV", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=130)
    plt.close(fig)
