"""Activations and zero-shot heads for the signatures, from any registered model (or a fine-tuned proxy), on the
embedded world or a labelled image folder; and the profile of one model that ``mcdo signatures`` prints.

The representation is the image embedding normalised to unit length: what a zero-shot head reads (kurtosis across
a vector's components does not depend on its length; the outlier profile is per-image scale free).

On the world, the zero-shot task for privileged directions has 96 classes, colour x shape x size ("a small red
ring"): a head needs at least as many classes as the representation has dimensions (64 on the proxies) for
'the top 20% of directions' to prune anything; the colour task's head has rank 8.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np
import torch
import torch.nn.functional as F

from ..data import world
from . import measures

FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Task:
    """Images (a world tensor or a labelled folder), their labels and one prompt per class."""

    name: str
    images: object
    labels: np.ndarray
    prompts: list[str]
    classnames: list[str] | None = None  # for a folder's template ensemble (``zeroshot.class_embeddings``)


def world_composite(n: int = 2000, seed: int = 7) -> Task:
    """Held-out world images labelled by (colour, shape, size): 96 classes, prompts 'a small red ring'."""
    d = world.generate(n, seed=seed)
    sizes, colours, shapes = list(world.SIZES), list(world.COLOURS), list(world.SHAPES)
    prompts = [f"a {s} {c} {k}" for c, k, s in product(colours, shapes, sizes)]
    a = d.attributes
    labels = (a["colour"] * len(shapes) + a["shape"]) * len(sizes) + a["size"]
    return Task(f"world seed {seed} n={n}, colour x shape x size (96 classes)", d.images, labels.astype(np.int64),
                prompts)


def world_colour(n: int = 1000, seed: int = 7) -> Task:
    d = world.generate(n, seed=seed)
    return Task(f"world seed {seed} n={n}, colour (8 classes)", d.images, d.labels, world.class_prompts())


def folder_task(path, template: str = "a photo of a {}.") -> Task:
    """A labelled image folder (one sub-folder per class); prompts from the folder names."""
    from ..data.folders import class_folder

    import numpy as np

    f = class_folder(path)
    if len(f.classnames) < 2:  # a one-class head keeps 100% of its importance in one direction: meaningless
        raise ValueError(f"{path}: {len(f.classnames)} class folder; the zero-shot head and its pruning curve need "
                         "at least 2 classes")
    present = np.bincount(np.asarray(f.images.labels), minlength=len(f.classnames))
    empty = [c for c, n in zip(f.classnames, present) if n == 0]
    if empty:
        raise ValueError(f"{path}: class folder(s) with no image: {', '.join(empty[:5])} (each would be an extra "
                         "zero-shot class): remove them or add images")
    return Task(f.images.name, f.images, f.images.labels, [template.format(c) for c in f.classnames], f.classnames)


def representations(model, images, batch_size: int = 256, progress: bool = False, **feature_kw
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Unit-norm image representations ``[N, d]`` of a world array (any proxy, zero-shot or fine-tuned) or of an
    image folder (a registered model or classifier, through the feature cache), and for a folder the labels of the
    images that could be read (unreadable ones are skipped, with a warning)."""
    from ..data.folders import ImageList

    if isinstance(images, ImageList):
        from ..features import image_features

        f = image_features(model, images, batch_size=batch_size, progress=progress, **feature_kw)
        if f.failed:
            import warnings

            warnings.warn(f"{len(f.failed)} unreadable images skipped (first: {f.failed[0]})", stacklevel=2)
        return f.features.astype(np.float64), f.labels
    from ..models.proxy import normalise_images

    x = normalise_images(images)
    encode = model.representation if hasattr(model, "representation") else model.encode_image
    with torch.no_grad():
        out = [F.normalize(encode(x[i:i + batch_size]), dim=-1) for i in range(0, len(x), batch_size)]
    return torch.cat(out).double().numpy(), None


def pre_projection(enc, images, batch_size: int = 256, device: str | None = None, progress: bool = False,
                   **_ignored) -> tuple[np.ndarray, np.ndarray | None]:
    """Unit-norm pre-projection representations ``[N, P]`` of a zero-shot model (its final LayerNorm'd pooled
    token, the input of the image projection, bias column dropped): the layer and width a fine-tuned classifier's
    pre-logits features sit at, so that ICL-01/02/04 compare the two models at one layer. Image folders skip
    unreadable files (with a warning) and return the labels of the images read."""
    device = device or enc.device
    from ..models.heads import projection_features, projection_weight

    _, has_bias = projection_weight(enc, "image")

    def rep(x):
        a = projection_features(enc, "image", x.to(device)).activations
        return F.normalize(a[:, :-1] if has_bias else a, dim=-1).double().cpu()

    from ..data.folders import ImageList

    if not isinstance(images, ImageList):
        from ..models.proxy import normalise_images

        x = normalise_images(images) if enc.backend == "proxy" else torch.as_tensor(images)
        with torch.no_grad():
            return torch.cat([rep(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).numpy(), None
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from ..data.folders import ImageFiles
    from ..zeroshot import image_transform

    loader = DataLoader(ImageFiles(images, image_transform(enc)), batch_size=batch_size,
                        collate_fn=ImageFiles.collate)
    out, good, bad = [], [], []
    with torch.no_grad():
        for x, pos, failed in tqdm(loader, desc=f"pre-projection ({images.name})", disable=not progress, leave=False):
            bad += failed
            if x is not None:
                out.append(rep(x))
                good += pos
    if bad:
        import warnings

        warnings.warn(f"{len(bad)} unreadable images skipped (first: {images.paths[bad[0]]})", stacklevel=2)
    return torch.cat(out).numpy(), np.asarray(images.labels)[good]


def text_head(enc, prompts: list[str]) -> np.ndarray:
    """The zero-shot head: normalised text embeddings of the prompts ``[K, d]``."""
    with torch.no_grad():
        t = torch.cat([enc.encode_text(enc.tokenizer(prompts[i:i + 256])) for i in range(0, len(prompts), 256)])
    return F.normalize(t.float(), dim=-1).double().numpy()


@dataclass
class Profile:
    """A model's signatures on one task."""

    model: str
    task: str
    kurtosis: np.ndarray  # per image, across components (the paper's axis)
    kurtosis_dimension: float  # mean over dimensions of the kurtosis across images
    outliers: measures.OutlierProfile
    importance: np.ndarray
    singular_values: np.ndarray  # of the head, in the order of importance (empty without a head)
    accuracy: dict[float, float] = field(default_factory=dict)  # fraction of directions kept -> top-1
    correct: dict[float, np.ndarray] = field(default_factory=dict)
    correct_alt: dict[float, np.ndarray] = field(default_factory=dict)  # importance read as S_i |E<v_i, h>|
    per_input_ratio: np.ndarray = field(default_factory=lambda: np.array([]))  # max / mean |component| per image

    @property
    def _k20(self) -> int:
        return measures.kept_directions(0.2, len(self.outliers.mean_abs))

    def energy(self, k: int) -> float:
        """Share of the head's squared singular values in its ``k`` most important directions: near 1 when the head
        itself has rank about k, and keeping k directions then prunes little of it whatever the activations."""
        s2 = self.singular_values**2
        return float(s2[:k].sum() / s2.sum()) if s2.size else float("nan")

    def lines(self) -> list[str]:
        k = self.kurtosis
        out = [f"{self.model} on {self.task}",
               f"  activation kurtosis (per image, across {len(self.outliers.mean_abs)} dims): mean {k.mean():.2f}, "
               f"median {np.median(k):.2f} (Gaussian: 3); per dimension across images: {self.kurtosis_dimension:.2f}",
               f"  outlier features: {self.outliers.summary()}"]
        if not self.singular_values.size:
            out.append("  privileged directions: none measured (this model has no classification head on this data; "
                       "a fine-tuned proxy's head is over other classes)")
        else:
            out.append(f"  privileged directions: top direction carries {100 * self.importance[0]:.1f}% of the "
                       f"importance, top 20% of directions {100 * self.importance[:self._k20].sum():.1f}% (and "
                       f"{100 * self.energy(self._k20):.1f}% of the head's squared singular values)")
        if self.accuracy:
            out.append("  pruning curve (directions kept -> top-1): "
                       + ", ".join(f"{100 * f:g}% {a:.3f}" for f, a in self.accuracy.items()))
        return out


def profile(model_name: str, task: Task, acts: np.ndarray, head: np.ndarray | None, labels: np.ndarray,
            fractions=FRACTIONS, threshold: float = 10.0, bias: np.ndarray | None = None) -> Profile:
    """Kurtosis, outlier features and (with a head, and its bias if it has one) privileged directions and the
    pruning curve of one model."""
    dirs = measures.head_directions(head, acts) if head is not None else None
    p = Profile(model_name, task.name, measures.activation_kurtosis(acts, "vector"),
                float(np.nanmean(measures.activation_kurtosis(acts, "dimension"))), measures.outlier_profile(acts, threshold),
                dirs.importance if dirs is not None else np.array([]),
                dirs.singular_values if dirs is not None else np.array([]))
    p.per_input_ratio = measures.per_input_outlier_ratio(acts)
    if head is not None:
        p.correct = measures.pruning_curve(head, acts, labels, fractions, bias)
        p.correct_alt = measures.pruning_curve(head, acts, labels, fractions, bias, reading="abs-mean")
        p.accuracy = {f: float(c.mean()) for f, c in p.correct.items()}
    return p
