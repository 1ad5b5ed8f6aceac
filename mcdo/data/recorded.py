"""Reader for recorded MC-dropout runs (``MCDO_RECORDED_DIR``): the published one, or any other laid out alike.

Format (see ``recorded/PROVENANCE.md``): ``exp0_nested_mc/<model>/exp0_trials_T<T>.npz`` holds ``trial_pre``
and ``trial_post`` ``[K trials, N images]`` and ``paths`` ``[N]``; the ImageNet class of an image is the synset
folder in its path. Models and T are discovered from the folder, so a run with other models, T, K or N reads
the same way. A file that is absent or malformed (a missing key, NaN, mismatched shapes, one trial, images that
do not match the model's other files) raises ``BadRecordedFile``, naming the file and the problem: the claims
that need that file skip with it, the others run.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import env
from ..errors import MissingResource
from ..model_specs import ALIASES as REGISTRY_NAMES  # the folders' names in the registry: one table

# what the published run's model folders are (other folders are described by their name)
DESCRIPTIONS = {"clip_b32": "open_clip ViT-B-32 openai", "siglip2_b16": "open_clip ViT-B-16-SigLIP2 webli"}
MODELS = DESCRIPTIONS  # the published run's models (MCD-03..06 and the summaries are about these two)
NESTED_T = (4, 16, 64)  # the published run's T
_SYNSET = re.compile(r"(n\d{8})")
_TRIALS = re.compile(r"^exp0_trials_T(\d+)\.npz$")
KEYS = ("trial_pre", "trial_post", "paths")


class BadRecordedFile(MissingResource):
    """A recorded file that is absent or cannot be used as it is: the records that need it skip with this."""


@dataclass(frozen=True)
class NestedTrials:
    """Per-image MC-dropout traces of one model at T passes, over K independent trials."""

    model: str
    T: int
    pre: np.ndarray  # [K, N] trace before L2 normalisation
    post: np.ndarray  # [K, N] trace after L2 normalisation
    paths: np.ndarray  # [N]

    @property
    def synsets(self) -> list[str]:
        """ImageNet synset id of each image, read from its folder."""
        return [synset_of(p) for p in self.paths]


def describe(model: str) -> str:
    """What a recorded model folder holds, for records."""
    return DESCRIPTIONS.get(model, f"recorded model {model!r} (exp0_nested_mc/{model})")


def synset_of(path: str) -> str:
    """The ImageNet synset id in an image's path ('' when its path names none)."""
    m = _SYNSET.search(str(path))
    return m.group(1) if m else ""


def registry_name(model: str) -> str:
    """The model's name in mcdo's registry for the published folders; any other folder is named by itself."""
    return REGISTRY_NAMES.get(model, model)


def run_summary(model: str) -> dict:
    """The run's own ``exp0_summary.json`` beside its trial files, or {} when it has none (or it cannot be read):
    it is what may say the run's p (``dropout``), data set (``dataset``) and loss family (``loss``)."""
    path = env.recorded_dir() / "exp0_nested_mc" / model / "exp0_summary.json"
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def family(model: str) -> str | None:
    """The loss family of a recorded model: ``sigmoid`` (SigLIP) or ``softmax`` (CLIP), from its summary's
    ``loss`` when it states one, else ``model_specs.loss_family`` of its folder name (the registry's for a
    registered alias; ``ViT-SO400M-14-SigLIP2`` is a SigLIP); None when neither says."""
    from ..model_specs import loss_family

    stated = str(run_summary(model).get("loss", "")).lower()
    if stated in ("sigmoid", "softmax"):
        return stated
    return loss_family(model)


def _file(relative: str) -> Path:
    path = env.recorded_dir() / relative
    if not path.is_file():
        raise BadRecordedFile(f"recorded file {relative} (not under {env.recorded_dir()})",
                              "use the complete recorded folder described in its PROVENANCE.md")
    return path


def models() -> list[str]:
    """The model folders of ``exp0_nested_mc/`` that hold at least one ``exp0_trials_T<T>.npz``, sorted."""
    root = env.recorded_dir() / "exp0_nested_mc"
    return sorted(d.name for d in root.iterdir() if d.is_dir() and available_T(d.name))


def available_T(model: str) -> tuple[int, ...]:
    """The T of every trial file of a recorded model, ascending (files are found by name, not read)."""
    folder = env.recorded_dir() / "exp0_nested_mc" / model
    if not folder.is_dir():
        return ()
    return tuple(sorted(int(m.group(1)) for f in folder.iterdir() if (m := _TRIALS.match(f.name))))


def _read(model: str, T: int) -> NestedTrials:
    rel = f"exp0_nested_mc/{model}/exp0_trials_T{T}.npz"
    path = _file(rel)

    def bad(problem: str) -> BadRecordedFile:
        return BadRecordedFile(f"recorded file {path} ({problem})",
                               f"regenerate or replace it: it needs {', '.join(KEYS)} with trial arrays [K >= 2 "
                               "trials, N images] of finite values and N paths")

    try:
        with np.load(path, allow_pickle=False) as z:
            absent = [k for k in KEYS if k not in z.files]
            if absent:
                raise bad(f"no {', '.join(absent)}; it has {', '.join(z.files) or 'nothing'}")
            pre, post, paths = (z[k] for k in KEYS)
    except BadRecordedFile:
        raise
    except Exception as e:  # truncated, not a zip, pickled objects
        raise bad(f"unreadable: {type(e).__name__}: {e}") from e
    pre, post = np.asarray(pre, dtype=np.float64), np.asarray(post, dtype=np.float64)
    if pre.ndim != 2 or pre.shape != post.shape or paths.ndim != 1 or pre.shape[1] != paths.shape[0]:
        raise bad(f"shapes trial_pre {pre.shape}, trial_post {post.shape}, paths {paths.shape} do not agree")
    if pre.shape[0] < 2:
        raise bad(f"{pre.shape[0]} trial: reliability between trials needs at least 2")
    for name, x in (("trial_pre", pre), ("trial_post", post)):
        if not np.all(np.isfinite(x)):
            raise bad(f"{int(np.sum(~np.isfinite(x)))} non-finite values in {name}")
    return NestedTrials(model, T, pre, post, paths.astype(str))


def _paths(model: str, T: int) -> np.ndarray | None:
    """The image paths of one trial file, or None when they cannot be read (that file's own reader says why)."""
    try:
        with np.load(env.recorded_dir() / f"exp0_nested_mc/{model}/exp0_trials_T{T}.npz", allow_pickle=False) as z:
            return z["paths"].astype(str)
    except Exception:
        return None


def nested_trials(model: str, T: int) -> NestedTrials:
    """The exp0 nested-MC trials of a recorded model at T passes, checked, with its images in the order of the
    model's first trial file whose paths can be read: a file that lists the same images in another order is
    aligned by path, one with other images is refused (comparing across T must compare the same images)."""
    if T not in available_T(model):
        have = available_T(model)
        raise BadRecordedFile(f"recorded trials of {model} at T={T} (no exp0_nested_mc/{model}/exp0_trials_T{T}.npz"
                              + (f"; this model has T = {', '.join(map(str, have))}" if have else "") + ")",
                              "use a T the recorded folder has, or add that file")
    trials = _read(model, T)
    ref_T, ref = next(((t, q) for t in available_T(model) if t != T and (q := _paths(model, t)) is not None),
                      (None, None))
    if ref is None or ref_T > T or np.array_equal(trials.paths, ref):  # the first readable file sets the order
        return trials
    where = {p: i for i, p in enumerate(trials.paths)}
    if len(where) != len(trials.paths) or set(where) != set(ref):
        raise BadRecordedFile(f"recorded file exp0_nested_mc/{model}/exp0_trials_T{T}.npz (its {len(trials.paths)} "
                              f"images are not the {len(ref)} of exp0_trials_T{ref_T}.npz)",
                              "the trial files of one model must cover the same images")
    order = np.array([where[p] for p in ref])
    return NestedTrials(model, T, trials.pre[:, order], trials.post[:, order], trials.paths[order])


def ambiguity_subset() -> dict[str, np.ndarray]:
    """exp5: CLIP B/32 on 2000 CIFAR-100 test images, T=32, one trial (uncertainty, entropy, margin, ...)."""
    with np.load(_file("exp5_ambiguity/exp5_subset_clip_b32.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def summary(relative: str) -> dict:
    """A recorded JSON summary, e.g. 'ablation/prelim_ablation.json'."""
    return json.loads(_file(relative).read_text())
