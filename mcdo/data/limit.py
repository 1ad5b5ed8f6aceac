"""Smoke runs, lm-evaluation-harness's ``--limit``: a data set cut to a few images, keeping as many classes as it
can, so a user checks a whole chain in minutes before the hours-long run. Used by ``mcdo claims --limit`` and by the
tools' ``--limit``; a limited result says so wherever it is written."""
from __future__ import annotations

from typing import Any

import numpy as np


def subset(labels: np.ndarray, n: int, seed: int, min_per_class: int = 0) -> np.ndarray:
    """At most ``n`` positions (but ``min_per_class`` of every class, where it has them), spread over the classes
    of ``labels`` in turn (a seeded order within each), sorted: a shrunk set keeps as many classes as it can."""
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in np.unique(labels)]
    out: list[int] = []
    for members in by_class:
        out += [members.pop() for _ in range(min(min_per_class, len(members)))]
    while len(out) < n and any(by_class):
        for members in by_class:
            if members and len(out) < n:
                out.append(members.pop())
    return np.array(sorted(out), dtype=int)


PER_CLASS = ("classnames", "prompts")  # fields with one entry per class, never cut


def shrink(found: Any, n: int, seed: int = 0, min_per_class: int = 0) -> Any:
    """A data set cut to at most ``n`` images for a smoke run (``--limit``): an image list, a labelled set or
    image-caption pairs (their images, labels, captions kept aligned); Broden to its first ``n`` images. A finder
    that declares ``min_per_class`` (a stratified split or CV needs two of each class) keeps that many of each."""
    import dataclasses

    from .folders import ImageList

    if isinstance(found, ImageList):
        keep = subset(found.labels, n, seed, min_per_class)
        return dataclasses.replace(found, paths=tuple(found.paths[i] for i in keep), labels=found.labels[keep])
    images = getattr(found, "images", None)
    if dataclasses.is_dataclass(found) and (isinstance(images, ImageList) or hasattr(images, "shape")):
        # a labelled set, image-caption pairs, a world array set: cut every per-image field alike (class names and
        # prompts, one per class, stay whole even when there are as many classes as images)
        size = len(images)
        labels = getattr(found, "labels", None)
        labels = images.labels if isinstance(images, ImageList) else labels
        keep = (subset(np.asarray(labels), n, seed, min_per_class) if labels is not None
                else np.sort(np.random.default_rng(seed).permutation(size)[:n]))
        changes = {"images": dataclasses.replace(images, paths=tuple(images.paths[i] for i in keep),
                                                 labels=images.labels[keep]) if isinstance(images, ImageList)
                   else images[np.asarray(keep)]}
        for f in dataclasses.fields(found):
            v = getattr(found, f.name)
            if (f.name not in ("images", *PER_CLASS) and isinstance(v, (list, tuple, np.ndarray))
                    and len(v) == size):
                changes[f.name] = v[keep] if isinstance(v, np.ndarray) else type(v)(v[i] for i in keep)
        return dataclasses.replace(found, **changes)
    if hasattr(found, "limited"):  # Broden: its own reader cuts the index
        return found.limited(n)
    raise TypeError(f"a smoke run cannot shrink a {type(found).__name__}")


def smoke_note(limit: int, what: str = "data set") -> str:
    """The line a limited run prints and writes beside its results."""
    return (f"smoke run (--limit {limit}): at most {limit} images per {what}; the chain is checked, the figures "
            "describe nothing")
