"""The MCM benchmark: ImageNet-1k in distribution, the MOS sets out, every score, one encoder (or any labelled folder
in and any folders out, ``user_data``, with OpenOOD's near / far groups averaged apart).

``run`` encodes (or loads from the feature cache) the ID and OOD images, builds the zero-shot heads
(CLIP's 80-template ensemble for accuracy, the MCM paper's single prompt for the OOD scores), and
returns per-image scores with the per-set AUROC / FPR95 / AUPR table. In distribution is the positive
class, as in MCM; every score is higher for ID images.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import ood
from . import stats as S
from .data.folders import MOS_SETS, ImageList, class_folder, images_under, imagenet_val, ood_set
from .errors import MissingData
from .features import Features, image_features
from .models.encoder import Encoder
from .zeroshot import classifier, imagenet_classnames

METRICS = ("auroc", "fpr95", "aupr")
# How a figure is produced: the zero-shot prompt of the OOD heads, the image resizing, which class is positive,
# and the FPR95 rule. "seed": the OOD seed's pipeline as the harness runs it (open_clip's own preprocessing, "a
# photo of a {}.", in distribution positive as in MCM, FPR at the largest threshold keeping >= 95% of ID images).
# "mcm": the MCM paper's code ("a photo of a {}", bilinear Resize(224) and centre crop, FPR at the threshold whose
# TPR is closest to 0.95). "openood": the seed's pipeline scored as OpenOOD does (OOD positive: FPR95 is the share
# of ID images flagged at the threshold that catches 95% of OOD images, AUPR is AUPR-Out). AUROC is the same
# number under either positive class.
CONVENTIONS = {
    "seed": dict(templates="mcm", resize="model", positive="in", fpr95="at least 95% of positives"),
    "mcm": dict(templates="photo", resize="bilinear", positive="in", fpr95="TPR closest to 95%"),
    "openood": dict(templates="mcm", resize="model", positive="out", fpr95="at least 95% of positives"),
}


def convention_note(name: str) -> str:
    """One line saying how a table's figures were produced."""
    c = CONVENTIONS[name]
    prompt = {"mcm": '"a photo of a {}."', "photo": '"a photo of a {}"'}[c["templates"]]
    resize = "the model's own preprocessing" if c["resize"] == "model" else "bilinear Resize + centre crop"
    return (f"convention {name!r}: prompt {prompt}, {resize}, {'in-distribution' if c['positive'] == 'in' else 'OOD'} "
            f"images positive, FPR95 at {c['fpr95']}")


@dataclass
class OODResult:
    """Everything one benchmark pass measured for one encoder."""

    model: str
    scale: float
    bias: float | None
    temperature: float
    accuracy: dict[str, float]  # template set -> ID top-1
    n_id: int
    id_scores: dict[str, np.ndarray]  # score -> [n_id]
    ood_scores: dict[str, dict[str, np.ndarray]]  # score -> set -> [n_set]
    failed: dict[str, list[str]]  # set -> unreadable files
    n_classes_present: int
    config: dict = field(default_factory=dict)

    @property
    def scores(self) -> list[str]:
        return list(self.id_scores)

    @property
    def sets(self) -> list[str]:
        return list(next(iter(self.ood_scores.values())))

    @property
    def convention(self) -> str:
        return self.config.get("convention", "seed")

    def table(self) -> dict[str, dict[str, dict[str, float]]]:
        """score -> set -> {auroc, fpr95, aupr}, with a "mean" row over the OOD sets, in the result's convention."""
        out = {}
        for sc, per_set in self.ood_scores.items():
            rows = {name: _detect(self.id_scores[sc], s, self.convention) for name, s in per_set.items()}
            sets = list(rows)
            rows["mean"] = {m: float(np.mean([rows[n][m] for n in sets])) for m in METRICS}
            for group, members in self.groups.items():
                rows[f"{group} mean"] = {m: float(np.mean([rows[n][m] for n in members])) for m in METRICS}
            out[sc] = rows
        return out

    @property
    def groups(self) -> dict[str, list[str]]:
        """OpenOOD's grouping of the OOD sets (near / far), where the user gave one: group -> its sets."""
        return {g: list(v) for g, v in self.config.get("groups", {}).items() if v}

    def pooled(self, score: str) -> tuple[np.ndarray, np.ndarray]:
        """All scores of one kind with a set index per image (0 = ID, k = k-th OOD set), for resampling."""
        parts = [self.id_scores[score], *self.ood_scores[score].values()]
        return np.concatenate(parts), np.concatenate([np.full(p.size, k) for k, p in enumerate(parts)])

    def mean_auroc_ci(self, score: str, n_boot: int = 1000, seed: int = 0,
                      sets: list[str] | None = None) -> tuple[float, tuple[float, float]]:
        """Mean AUROC over the OOD sets (or over ``sets``, a group) and its percentile-bootstrap CI (images
        resampled within each set)."""
        s, sid = self.pooled(score)
        if sets is not None:  # the ID images and the group's sets, renumbered 1..len(sets)
            index = {name: k + 1 for k, name in enumerate(self.sets)}
            keep = [0, *(index[n] for n in sets)]
            mask = np.isin(sid, keep)
            s, sid = s[mask], np.searchsorted(np.array(keep), sid[mask])
        return _mean_auroc(s, sid), S.bootstrap_ci(_mean_auroc, s, sid, n_boot=n_boot, seed=seed, strata=sid)

    def intervals(self, n_boot: int = 200, seed: int = 0) -> dict[str, dict[str, dict[str, tuple[float, float]]]]:
        """score -> set -> {auroc, fpr95} percentile-bootstrap 95% CIs (ID and OOD images resampled within their own
        set, so each keeps its size), and the mean row's AUROC CI (``mean_auroc_ci``), in the result's convention."""
        out = {}
        for sc, per_set in self.ood_scores.items():
            rows = {}
            for k, (name, s_ood) in enumerate(per_set.items()):
                x = np.r_[self.id_scores[sc], s_ood]
                strata = np.r_[np.zeros(self.id_scores[sc].size), np.ones(s_ood.size)]
                rows[name] = {}
                for m in ("auroc", "fpr95"):
                    def stat(v, g, _m=m):
                        return _detect(v[g == 0], v[g == 1], self.convention, (_m,))[_m]

                    rows[name][m] = S.bootstrap_ci(stat, x, strata, n_boot=n_boot, seed=seed + k, strata=strata)
            rows["mean"] = {"auroc": self.mean_auroc_ci(sc, n_boot=n_boot, seed=seed)[1]}
            for group, members in self.groups.items():
                rows[f"{group} mean"] = {"auroc": self.mean_auroc_ci(sc, n_boot=n_boot, seed=seed, sets=members)[1]}
            out[sc] = rows
        return out

    def gap_ci(self, a: str, b: str, n_boot: int = 1000, seed: int = 0) -> tuple[float, tuple[float, float]]:
        """Mean AUROC of score ``a`` minus that of ``b`` on the same images, with a paired bootstrap CI."""
        sa, sid = self.pooled(a)
        sb, _ = self.pooled(b)

        def gap(x, y, k):
            return _mean_auroc(x, k) - _mean_auroc(y, k)

        return gap(sa, sb, sid), S.bootstrap_ci(gap, sa, sb, sid, n_boot=n_boot, seed=seed, strata=sid)


def _detect(s_id: np.ndarray, s_ood: np.ndarray, convention: str = "seed",
            metrics: tuple[str, ...] = METRICS) -> dict[str, float]:
    """AUROC, FPR95 and AUPR (or only ``metrics``) of one OOD set against the ID images, in a convention of
    ``CONVENTIONS``."""
    c = CONVENTIONS[convention]
    x = np.r_[s_id, s_ood]
    is_id = np.r_[np.ones(s_id.size), np.zeros(s_ood.size)]
    score, y = (x, is_id) if c["positive"] == "in" else (-x, 1 - is_id)
    fpr = S.fpr_at_tpr_closest if c["fpr95"] == "TPR closest to 95%" else S.fpr_at_tpr
    compute = {"auroc": lambda: S.auroc(x, is_id), "fpr95": lambda: fpr(score, y), "aupr": lambda: S.aupr(score, y)}
    return {m: compute[m]() for m in metrics}


def _mean_auroc(s: np.ndarray, sid: np.ndarray) -> float:
    ident = s[sid == 0]
    return float(np.mean([S.auroc(np.r_[ident, s[sid == k]], np.r_[np.ones(ident.size), np.zeros((sid == k).sum())])
                          for k in range(1, int(sid.max()) + 1)]))


def imagenet_accuracy(enc: Encoder, id_feats: Features, template_sets: tuple[str, ...] = ("openai",),
                      device: str | None = None, progress: bool = False) -> dict[str, float]:
    """ImageNet-1k zero-shot top-1 of cached image features, for each template set."""
    device = device or enc.device
    names = imagenet_classnames()
    return {t: float(np.mean(classifier(enc, names, t, device, progress).predict(id_feats.features) == id_feats.labels))
            for t in template_sets}


def score_features(enc: Encoder, id_feats: Features, ood_feats: dict[str, Features], scores=ood.OOD_SCORES,
                   temperature: float | str = 1.0, device: str | None = None, progress: bool = False,
                   accuracy_templates: tuple[str, ...] = ("openai", "mcm"), convention: str = "seed",
                   classnames: list[str] | None = None) -> OODResult:
    """Zero-shot accuracy and OOD scores from cached features (seconds: no image is encoded here). The ID classes
    are ImageNet-1k's unless ``classnames`` names the in-distribution folder's."""
    device = device or enc.device
    names = classnames or imagenet_classnames()
    mcm = classifier(enc, names, CONVENTIONS[convention]["templates"], device, progress)
    temp = 1.0 / mcm.scale if temperature == "model" else float(temperature)
    acc = {t: float(np.mean(classifier(enc, names, t, device, progress).predict(id_feats.features)
                            == id_feats.labels)) for t in accuracy_templates}
    failed = {id_feats.name: id_feats.failed, **{n: f.failed for n, f in ood_feats.items()}}
    res = from_cosines(enc.spec.name, mcm.cosines(id_feats.features),
                       {name: mcm.cosines(f.features) for name, f in ood_feats.items()}, mcm.scale, mcm.bias,
                       scores, temp)
    res.accuracy, res.failed, res.n_classes_present = acc, failed, int(np.unique(id_feats.labels).size)
    res.config.update(ood_templates=CONVENTIONS[convention]["templates"], convention=convention,
                      convention_note=convention_note(convention), unreadable={k: len(v) for k, v in failed.items()},
                      unreadable_files={k: v[:20] for k, v in failed.items() if v})
    return res


def from_cosines(model: str, cos_id: np.ndarray, cos_ood: dict[str, np.ndarray], scale: float, bias: float | None,
                 scores=ood.OOD_SCORES, temperature: float = 1.0) -> OODResult:
    """Score ID and OOD cosines [N, K] to class texts; scores that need a bias are left out when there is none."""
    usable = [sc for sc in scores if not (sc == "sigmoid" and bias is None)]
    id_scores = {sc: ood.ood_score(sc, cos_id, scale, bias, temperature) for sc in usable}
    ood_scores = {sc: {name: ood.ood_score(sc, c, scale, bias, temperature) for name, c in cos_ood.items()}
                  for sc in usable}
    return OODResult(model, scale, bias, temperature, {}, int(cos_id.shape[0]), id_scores, ood_scores, {}, 0,
                     dict(softmax_temperature=temperature, skipped_scores=sorted(set(scores) - set(usable))))


def find_data(ood_sets: tuple[str, ...] = MOS_SETS, data_root=None) -> tuple[ImageList, dict[str, ImageList]]:
    """ImageNet-1k val and the OOD sets, each layout checked (``MissingData`` names the expected path)."""
    return imagenet_val(data_root), {name: ood_set(name, data_root) for name in ood_sets}


@dataclass(frozen=True)
class UserData:
    """A user's benchmark: a labelled in-distribution folder with its class names, OOD folders by name, and
    OpenOOD's grouping of them (set -> "near" / "far" / "ood")."""

    id_images: ImageList
    classnames: list[str]
    ood: dict[str, ImageList]
    groups: dict[str, list[str]]


def user_data(id_data: str | None, ood: list[tuple[str, str, str]], classnames: str | None = None,
              data_root=None) -> UserData:
    """Read a user's benchmark: ``id_data`` a folder of class folders (None: ImageNet-1k val), ``ood`` (group, name,
    folder) triples, ``classnames`` a file with one class name per line in the sorted order of the class folders
    (default: the folder names, underscores as spaces). Every folder is checked before anything is encoded."""
    if id_data is None:
        id_images, names = imagenet_val(data_root), None
    else:
        folder = class_folder(id_data)
        id_images, names = folder.images, folder.classnames
    if classnames is not None:
        lines = [ln.strip() for ln in Path(classnames).expanduser().read_text(encoding="utf-8").splitlines()
                 if ln.strip()]
        want = len(names) if names is not None else 1000
        if len(lines) != want:
            raise MissingData(f"one class name per class in {classnames} ({len(lines)} lines for {want} classes)",
                              "write one name per line, in the sorted order of the class folders")
        names = lines
    sets, groups = {}, {"near": [], "far": [], "ood": []}
    for group, name, path in ood:
        if name in sets:
            raise ValueError(f"two OOD sets are named {name!r}: name them NAME=FOLDER")
        paths = images_under(Path(path).expanduser())
        if not paths:
            raise MissingData(f"images in the OOD folder {path}", "point --ood-data / --near-ood / --far-ood at a "
                              "folder holding image files (sub-folders are read too)")
        sets[name] = ImageList(name, Path(path), tuple(paths), np.full(len(paths), -1, dtype=np.int64), "folder")
        groups[group].append(name)
    if not sets:
        raise ValueError("no OOD set: give --ood-data, --near-ood or --far-ood folders (or none, for the MOS sets)")
    return UserData(id_images, names, sets, {g: v for g, v in groups.items() if v and g != "ood"})


def run(enc: Encoder, ood_sets: tuple[str, ...] = MOS_SETS, scores=ood.OOD_SCORES, data_root=None,
        batch_size: int = 256, device: str | None = None, workers: int = 0, precision: str = "fp32",
        temperature: float | str = 1.0, progress: bool = True,
        accuracy_templates: tuple[str, ...] = ("openai", "mcm"),
        data: tuple[ImageList, dict[str, ImageList]] | None = None, convention: str = "seed",
        classnames: list[str] | None = None, groups: dict[str, list[str]] | None = None) -> OODResult:
    """The whole benchmark for one encoder: find the data (or take ``find_data``'s, or a ``user_data``'s with its
    ``classnames`` and ``groups``), encode (cached), score, in one of ``CONVENTIONS`` (prompt, resizing, positive
    class and FPR95 rule)."""
    device = device or enc.device
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; choose from {', '.join(CONVENTIONS)}")
    id_list, ood_lists = data or find_data(ood_sets, data_root)  # every set is checked before any encoding
    kw = dict(batch_size=batch_size, device=device, workers=workers, precision=precision, progress=progress,
              resize=CONVENTIONS[convention]["resize"])
    id_feats = image_features(enc, id_list, **kw)
    ood_feats = {name: image_features(enc, lst, **kw) for name, lst in ood_lists.items()}
    for f in (id_feats, *ood_feats.values()):
        if len(f.features) == 0:  # every file unreadable: no score to rank, say which set
            raise MissingData(f"a readable image in {f.name} ({f.n_files} files, none could be read)",
                              "replace the set's files with images PIL can open")
    res = score_features(enc, id_feats, ood_feats, scores, temperature, device, progress, accuracy_templates,
                         convention, classnames)
    res.config.update(groups=groups or {}, id_set=id_list.name, batch_size=batch_size, precision=precision,
                      imagenet_layout=id_list.layout, backend=enc.backend,
                      n_files={n: f.n_files for n, f in [(id_feats.name, id_feats), *ood_feats.items()]})
    return res


def sigmoid_rank_note(table: dict) -> str:
    """Why sigmoid MCM and max-logit share their AUROC: max_k sigmoid(s cos_k + b) = sigmoid(s max_k cos_k + b)."""
    if "sigmoid" not in table or "max_logit" not in table:
        return ""
    a, b = table["sigmoid"]["mean"]["auroc"], table["max_logit"]["mean"]["auroc"]
    same = "equals" if abs(a - b) < 1e-12 else f"differs by {a - b:+.1e} (float64 saturation ties) from"
    return (f"sigmoid MCM mean AUROC {a:.4f} {same} max-logit's {b:.4f}: sigmoid is increasing, so sigmoid MCM orders "
            "images exactly as the maximum cosine does and the learned bias and scale cannot move a rank-based figure; "
            "the sigmoid-softmax gap is the maximum cosine against softmax MCM")


def _cell(value: float, ci: tuple[float, float] | None) -> str:
    return f"{100 * value:.2f}" + (f" [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]" if ci is not None else "")


def ood_table_markdown(table: dict, cis: dict | None = None) -> str:
    """score -> set -> metrics as one markdown table: a row per OOD set (and the mean), AUROC and FPR95 in %, each
    with its bootstrap 95% CI in brackets where ``cis`` (``OODResult.intervals``) has one."""
    scores = list(table)
    sets = list(dict.fromkeys(name for per in table.values() for name in per))
    sets = [s for s in sets if not s.endswith("mean")] + [s for s in sets if s.endswith("mean")]
    lines = ["| OOD set | " + " | ".join(f"{sc} AUROC | {sc} FPR95" for sc in scores) + " |",
             "|" + " --- |" * (1 + 2 * len(scores))]
    for name in sets:
        ci = (lambda sc, m: (cis or {}).get(sc, {}).get(name, {}).get(m))
        lines.append(f"| {name} | " + " | ".join(f"{_cell(table[sc][name]['auroc'], ci(sc, 'auroc'))} | "
                                                 f"{_cell(table[sc][name]['fpr95'], ci(sc, 'fpr95'))}"
                                                 for sc in scores) + " |")
    return "\n".join(lines)


def format_table(res: OODResult, cis: dict | None = None, n_boot: int = 0) -> str:
    """A markdown table: one row per OOD set and the mean, AUROC and FPR95 for each score (with ``cis``, each with its
    bootstrap 95% CI)."""
    lines = [f"{res.model}: ID top-1 " + ", ".join(f"{100 * a:.2f}% ({t})" for t, a in res.accuracy.items())
             + f" on {res.n_id} images ({res.n_classes_present} classes); scale {res.scale:.3f}, bias "
             + (f"{res.bias:.3f}" if res.bias is not None else "none") + f", softmax temperature {res.temperature:g}",
             "", "AUROC and FPR95 in %" + (f" [percentile-bootstrap 95% CI, {n_boot} resamples of the images "
                                             "within each set]" if cis else "")
             + f"; {convention_note(res.convention)}.", "", ood_table_markdown(res.table(), cis)]
    notes = []
    if res.config.get("skipped_scores"):
        notes.append(f"not computed: {', '.join(res.config['skipped_scores'])} (the model has no logit_bias)")
    bad = {k: v for k, v in res.failed.items() if v}
    if bad:
        notes.append("unreadable files skipped: " + ", ".join(
            f"{k} {len(v)} ({', '.join(str(p).rsplit('/', 1)[-1] for p in v[:5])}{', ...' if len(v) > 5 else ''})"
            for k, v in bad.items()))
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def scores_csv(res: OODResult, data: tuple[ImageList, dict[str, ImageList]] | None = None) -> str:
    """Every image's scores as CSV (``mcdo ood --save-scores``): set, file, is_id, one column per score. Files are the
    readable ones of each set in the order they were encoded (unreadable files have no score); without ``data`` the
    file column is empty."""
    import csv
    import io

    id_list, ood_lists = data if data is not None else (None, {})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["set", "file", "is_id", *res.scores])
    parts = [(id_list.name if id_list is not None else "ID", id_list, None),
             *((name, ood_lists.get(name), name) for name in res.sets)]
    for set_name, lst, key in parts:
        cols = [res.id_scores[sc] if key is None else res.ood_scores[sc][key] for sc in res.scores]
        files = []
        if lst is not None:
            failed = {str(p) for p in res.failed.get(lst.name, [])}
            files = [str(p) for p in lst.paths if str(p) not in failed]
        if len(files) != cols[0].size:
            files = [""] * cols[0].size  # cannot pair files with scores: leave the column empty rather than guess
        for i in range(cols[0].size):
            w.writerow([set_name, files[i], int(key is None), *(repr(float(c[i])) for c in cols)])
    return buf.getvalue()
