"""Real image folders under ``MCDO_DATA_ROOT``: ImageNet-1k validation and the MOS OOD sets.

Layouts are data (``IMAGENET_LAYOUTS``, ``OOD_LAYOUTS``): each set lists the folders where it may be, in
order. A set that is not found raises ``MissingData`` naming the expected path, so a claim skips with it.

ImageNet validation comes either as one folder per synset (``val/n01440764/*.JPEG``, as valprep.sh leaves
it) or flat (``val/ILSVRC2012_val_00000001.JPEG``) with the devkit's ground truth and ``meta.mat``.
Labels are indices into the 1000 synsets in sorted order (the torchvision / open_clip class order).
OOD images carry the label -1.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import env
from ..errors import MissingData

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")

IMAGENET_LAYOUTS = ("imagenet/val", "ImageNet/val", "imagenet/ILSVRC2012_img_val")
DEVKIT = ("imagenet/ILSVRC2012_devkit_t12/data", "ImageNet/ILSVRC2012_devkit_t12/data")
# The MOS subsets (Huang & Li 2021), as the MCM code lays them out, and Textures = DTD.
OOD_LAYOUTS = {
    "iNaturalist": ("iNaturalist/images", "ImageNet_OOD_dataset/iNaturalist/images", "iNaturalist"),
    "SUN": ("SUN/images", "ImageNet_OOD_dataset/SUN/images", "SUN"),
    "Places": ("Places/images", "ImageNet_OOD_dataset/Places/images", "Places"),
    "Textures": ("dtd/images", "ImageNet_OOD_dataset/dtd/images", "Textures/images", "Textures"),
}
MOS_SETS = tuple(OOD_LAYOUTS)


@dataclass(frozen=True)
class ImageList:
    """The files of one data set, sorted, with their labels (-1 for out-of-distribution)."""

    name: str
    root: Path
    paths: tuple[Path, ...]
    labels: np.ndarray
    layout: str

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def n_classes(self) -> int:
        return int(np.unique(self.labels[self.labels >= 0]).size)


def imagenet_synsets() -> list[str]:
    """The 1000 ImageNet-1k WordNet ids in sorted order (shipped with timm)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_label_name(i) for i in range(info.num_classes())]


def images_under(folder: Path, skipped: list[tuple[str, str]] | None = None) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted; hidden files and other suffixes are ignored.

    Directory links are followed, but each real directory once (a link back to a folder already walked, ``self ->
    .`` or ``loop -> ..``, would list its images again, or another class's images under this class), and never out
    of ``folder`` (a link that leaves it would label other images as this class). Broken links, file links that
    resolve to nothing, and a second name of an image already listed are left out too. Each thing left out is appended to ``skipped`` as (path, why), and named
    in one warning."""
    folder = Path(folder)
    top = os.path.realpath(folder)
    seen, files, out, left = set(), set(), [], []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        keep = []
        for d in sorted(d for d in dirnames if not d.startswith(".")):
            if not _utf8(d):
                left.append((ascii(os.path.join(dirpath, d)), "a folder name that is not UTF-8: rename it"))
                continue
            target = os.path.realpath(os.path.join(dirpath, d))
            if os.path.commonpath([top, target]) != top:
                left.append((os.path.join(dirpath, d), f"a link out of {folder}"))
            elif target in seen or target == real:
                left.append((os.path.join(dirpath, d), "a link to a folder already listed"))
            else:
                keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            if f.startswith(".") or not f.lower().endswith(IMAGE_SUFFIXES):
                continue
            path = Path(dirpath) / f
            if not _utf8(f):  # would break every key, report and JSON file downstream
                left.append((ascii(str(path)), "a file name that is not UTF-8: rename it"))
                continue
            if not os.path.isfile(path):  # a broken link or a link loop
                left.append((str(path), "a link to no file"))
                continue
            target = os.path.realpath(path)
            if target in files:  # the same image under two names would sit in train and test at once
                left.append((str(path), "a link to an image already listed"))
                continue
            files.add(target)
            out.append(path)
    if left:
        import warnings

        warnings.warn(f"{len(left)} entries under {folder} left out: " + "; ".join(f"{p} ({why})" for p, why in left[:3])
                      + (" ..." if len(left) > 3 else ""), stacklevel=2)
        if skipped is not None:
            skipped += left
    return sorted(out)


def _utf8(name: str) -> bool:
    """Whether a file name as the OS gave it (undecodable bytes as surrogates) is valid UTF-8."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> content digest, per process


def file_digest(path: Path) -> str:
    """A hash of a file's bytes ('unreadable' when it cannot be read), memoised per process while its size and
    modification time stay the same."""
    try:
        st = os.stat(path)
        memo = (str(path), st.st_size, st.st_mtime_ns)
        if memo not in _DIGESTS:
            h = hashlib.blake2b(digest_size=16)
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            _DIGESTS[memo] = h.hexdigest()
        return _DIGESTS[memo]
    except OSError:
        return "unreadable"


def content_key(images: "ImageList") -> str:
    """A key of a set of image files by what they hold: relative paths, labels and every file's bytes, so an image
    replaced under the same name (even by one of the same size) keys a new cache."""
    h = hashlib.blake2b(images.name.encode(), digest_size=16)
    for p, y in zip(images.paths, images.labels):
        h.update(f"{Path(p).relative_to(images.root)}|{int(y)}|{file_digest(Path(p))}\n".encode())
    return h.hexdigest()[:16]


def _root(root: Path | str | None) -> Path:
    return Path(root).expanduser() if root is not None else env.data_root()


def imagenet_val(root: Path | str | None = None) -> ImageList:
    """ImageNet-1k validation: synset folders, or a flat folder with the devkit's labels."""
    root = _root(root)
    val = next((root / p for p in IMAGENET_LAYOUTS if (root / p).is_dir()), None)
    if val is None:
        raise MissingData(f"ImageNet-1k validation (no {root / IMAGENET_LAYOUTS[0]})",
                          f"put the 50,000 validation images at {root / IMAGENET_LAYOUTS[0]}/<synset>/*.JPEG "
                          f"(valprep.sh), or flat with the devkit at {root / DEVKIT[0]}; also looked in "
                          + ", ".join(str(root / p) for p in IMAGENET_LAYOUTS[1:]))
    synsets = imagenet_synsets()
    index = {s: i for i, s in enumerate(synsets)}
    subdirs = sorted(d.name for d in val.iterdir() if d.is_dir() and not d.name.startswith("."))
    if subdirs:
        unknown = [d for d in subdirs if d not in index]
        if unknown:
            raise MissingData(f"ImageNet-1k validation at {val} (folders that are not ImageNet-1k synsets: "
                              f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''})",
                              "each class folder must be named by its WordNet id, e.g. n01440764")
        paths, labels = [], []
        for d in subdirs:
            files = images_under(val / d)
            paths += files
            labels += [index[d]] * len(files)
        layout = "synset folders"
    else:
        paths = images_under(val)
        labels = _devkit_labels(root, paths, index)
        layout = "flat + devkit"
    if not paths:
        raise MissingData(f"ImageNet-1k validation at {val} (no image files)", f"expected *.JPEG under {val}")
    return ImageList("ImageNet-1k val", val, tuple(paths), np.asarray(labels, dtype=np.int64), layout)


def _devkit_labels(root: Path, paths: list[Path], index: dict[str, int]) -> list[int]:
    """Labels of flat ILSVRC2012_val_%08d files from the devkit (ground truth ids -> WNID via meta.mat)."""
    from scipy.io import loadmat

    data = next((root / d for d in DEVKIT if (root / d / "meta.mat").is_file()), None)
    if data is None:
        raise MissingData(f"ImageNet devkit (no {root / DEVKIT[0] / 'meta.mat'})",
                          "a flat validation folder needs ILSVRC2012_devkit_t12 (meta.mat and "
                          "ILSVRC2012_validation_ground_truth.txt); or sort the images into synset folders")
    gt_file = data / "ILSVRC2012_validation_ground_truth.txt"
    if not gt_file.is_file():
        raise MissingData(f"ImageNet devkit ground truth (no {gt_file})", "unpack the full ILSVRC2012_devkit_t12")
    meta = loadmat(data / "meta.mat", squeeze_me=True)["synsets"]
    wnid_of = {int(m["ILSVRC2012_ID"]): str(m["WNID"]) for m in meta if int(m["num_children"]) == 0}
    truth = [int(x) for x in gt_file.read_text().split()]
    labels = []
    for p in paths:
        try:
            n = int(p.stem.rsplit("_", 1)[-1])
            labels.append(index[wnid_of[truth[n - 1]]])
        except (ValueError, IndexError, KeyError) as e:
            raise MissingData(f"the devkit label of {p.name}", "flat files must be named ILSVRC2012_val_%08d.JPEG "
                              f"and listed in {gt_file}") from e
    return labels


def ood_set(name: str, root: Path | str | None = None) -> ImageList:
    """One MOS OOD set (iNaturalist, SUN, Places, Textures) by name."""
    if name not in OOD_LAYOUTS:
        raise ValueError(f"unknown OOD set {name!r}; choose from {', '.join(OOD_LAYOUTS)}")
    root = _root(root)
    for rel in OOD_LAYOUTS[name]:
        folder = root / rel
        if folder.is_dir():
            paths = images_under(folder)
            if paths:
                return ImageList(name, folder, tuple(paths), np.full(len(paths), -1, dtype=np.int64), rel)
    raise MissingData(f"OOD set {name} (no images in {root / OOD_LAYOUTS[name][0]})",
                      f"unpack the MOS subset so that its images are at {root / OOD_LAYOUTS[name][0]}; also looked "
                      "in " + ", ".join(str(root / p) for p in OOD_LAYOUTS[name][1:]))


class ImageFiles:
    """A torch data set over an ``ImageList``: (image tensor, position), or (None, position) for a file
    that cannot be read or decoded. ``collate`` drops those and reports their positions."""

    def __init__(self, images: ImageList, transform):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        try:
            with Image.open(self.images.paths[i]) as im:
                return self.transform(im.convert("RGB")), i
        except Exception:  # truncated, corrupt, not an image: counted by the caller, never fatal
            return None, i

    @staticmethod
    def collate(batch):
        import torch

        good = [(x, i) for x, i in batch if x is not None]
        bad = [i for x, i in batch if x is None]
        images = torch.stack([x for x, _ in good]) if good else None
        return images, [i for _, i in good], bad


@dataclass(frozen=True)
class ClassFolder:
    """A labelled image folder as read: its images (labels in ``images.labels``) and the class names."""

    images: ImageList
    classnames: list[str]


def class_folder(path: Path | str) -> ClassFolder:
    """A labelled image folder: one sub-folder per class (``DIR/<class>/*.jpg``), or Food-101's layout as
    extracted (``DIR/images/<class>/``, its ``meta/test.txt`` split kept). Class names read with underscores as
    spaces; used by mcdo bayes, probe, signatures and sweep."""
    root = Path(path).expanduser()
    base = root / "images" if (root / "images").is_dir() else root
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if base.is_dir() else []
    bad = [c for c in classes if not _utf8(c)]
    if bad:
        raise MissingData(f"class names in {ascii(str(root))}: {', '.join(ascii(c) for c in bad)} are not UTF-8",
                          "rename those class folders (their names become the zero-shot prompts)")
    if not root.exists():
        raise MissingData(f"labelled image folder {root}: no such folder", "check the path (it is read as given, "
                          "relative to the current directory)")
    if not classes:
        raise MissingData(f"labelled image folder {root} (no class sub-folders with images)",
                          f"put one folder per class under {root} (or Food-101 as extracted: {root}/images/<class>/)")
    split = root / "meta" / "test.txt"
    if split.is_file():  # Food-101: keep the official test split
        rels = [ln.strip() for ln in split.read_text().splitlines() if ln.strip()]
        paths = [base / f"{r}.jpg" for r in rels]
        paths = [p for p in paths if p.is_file()]
    else:
        paths = [p for c in classes for p in images_under(base / c)]
    if not paths:
        raise MissingData(f"images in {root}", f"no {'/'.join(IMAGE_SUFFIXES)} files under the class folders")
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[p.relative_to(base).parts[0]] for p in paths], dtype=np.int64)
    return ClassFolder(ImageList(root.name, base, tuple(paths), labels, "class folders"),
                       [c.replace("_", " ") for c in classes])
