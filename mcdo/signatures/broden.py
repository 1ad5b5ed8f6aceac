"""Broden (Bau et al. 2017, NetDissect) as image-level concept labels, for concept counting (ICL-04).

Expected under ``MCDO_DATA_ROOT``: ``broden1_224/`` as NetDissect's script extracts it, with
``index.csv`` (columns image, split, ih, iw, sh, sw, color, object, part, material, scene, texture),
``label.csv`` (number, name, category, ...) and ``images/``. Scene and texture are image-level label numbers
(';'-separated); color, object, part and material are segmentation PNGs (';'-separated, relative to ``images/``)
whose pixels hold the label number as R + 256 G. A concept is present in an image when its number appears there.
An unreadable mask is counted and the image's pixel concepts from it are left out; a missing layout is a
``MissingData`` naming it.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MissingData

FOLDER = "broden1_224"
IMAGE_LEVEL = ("scene", "texture")
PIXEL_LEVEL = ("color", "object", "part", "material")
LAYOUT = (f"{FOLDER}/index.csv (image,split,ih,iw,sh,sw,color,object,part,material,scene,texture), "
          f"{FOLDER}/label.csv (number,name,...) and {FOLDER}/images/")


@dataclass(frozen=True)
class Broden:
    """Broden images, and which concepts each contains."""

    root: Path
    paths: tuple[Path, ...]
    present: np.ndarray  # [N, C] bool
    names: list[str]
    unreadable_masks: int

    def limited(self, n: int) -> "Broden":
        """The first ``n`` images (a smoke run's Broden)."""
        import dataclasses

        return dataclasses.replace(self, paths=self.paths[:n], present=self.present[:n])


def _mask_labels(path: Path) -> set[int]:
    from PIL import Image

    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.int64)
    return set(np.unique(a[..., 0] + 256 * a[..., 1]).tolist()) - {0}


def load(root: Path | str, split: str | None = None, limit: int | None = None) -> Broden:
    """Concept labels of Broden under ``root`` (the data root or the ``broden1_224`` folder itself)."""
    root = Path(root)
    base = root if (root / "index.csv").is_file() else root / FOLDER
    index, labels = base / "index.csv", base / "label.csv"
    if not index.is_file() or not labels.is_file() or not (base / "images").is_dir():
        raise MissingData(f"Broden ({base})", f"extract NetDissect's broden1_224 under MCDO_DATA_ROOT: {LAYOUT}")
    with open(labels, newline="") as f:
        rows = list(csv.DictReader(f))
    number = {int(r["number"]): r["name"] for r in rows if r.get("number", "").strip().isdigit()}
    number.pop(0, None)  # '-': no label
    columns = {int(k): j for j, k in enumerate(sorted(number))}
    paths, present, bad = [], [], 0
    with open(index, newline="") as f:
        for r in csv.DictReader(f):
            if split and r.get("split") != split:
                continue
            found = set()
            for c in IMAGE_LEVEL:
                found |= {int(v) for v in (r.get(c) or "").split(";") if v.strip().isdigit()}
            for c in PIXEL_LEVEL:
                for m in (r.get(c) or "").split(";"):
                    if m.strip():
                        try:
                            found |= _mask_labels(base / "images" / m.strip())
                        except Exception:  # missing or corrupt mask: count it, keep the image's other labels
                            bad += 1
            row = np.zeros(len(columns), dtype=bool)
            row[[columns[v] for v in found if v in columns]] = True
            paths.append(base / "images" / r["image"])
            present.append(row)
            if limit and len(paths) >= limit:
                break
    if not paths:
        raise MissingData(f"Broden images in {index}" + (f" (split {split})" if split else ""), LAYOUT)
    return Broden(base, tuple(paths), np.stack(present), [number[k] for k in sorted(number)], bad)


def image_list(b: Broden):
    """The Broden images as an ``ImageList`` (for the feature cache)."""
    from ..data.folders import ImageList

    return ImageList("broden", b.root / "images", b.paths, np.zeros(len(b.paths), np.int64), "broden index.csv")


def write_fake(root: Path | str, n: int = 24, seed: int = 0) -> Path:
    """A small Broden-like folder in the real layout (two image-level scenes, one texture, three pixel concepts
    drawn as coloured squares, one corrupt mask): for the tests and demos."""
    from PIL import Image

    base = Path(root) / FOLDER
    (base / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    (base / "label.csv").write_text("number,name,category,frequency,coverage,syns\n0,-,-,0,0,\n1,red-c,color(1),1,1,\n"
                                    "2,dog,object(1),1,1,\n3,wood,material(1),1,1,\n4,street,scene(1),1,1,\n"
                                    "5,beach,scene(1),1,1,\n6,striped,texture(1),1,1,\n")
    lines = ["image,split,ih,iw,sh,sw,color,object,part,material,scene,texture"]
    for i in range(n):
        img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        mask = np.zeros((32, 32, 3), dtype=np.uint8)
        obj = int(rng.integers(1, 4))
        img[8:24, 8:24] = (255, 0, 0) if obj == 1 else (0, 0, 255) if obj == 2 else (140, 90, 40)
        mask[8:24, 8:24, 0] = obj
        Image.fromarray(img).save(base / "images" / f"im{i:03d}.jpg")
        Image.fromarray(mask).save(base / "images" / f"im{i:03d}_obj.png")
        kind = ("color", "object", "material")[obj - 1]
        cols = dict(color="", object="", part="", material="")
        cols[kind] = f"im{i:03d}_obj.png" + (";missing.png" if i == 0 else "")
        lines.append(f"im{i:03d}.jpg,train,32,32,32,32,{cols['color']},{cols['object']},,{cols['material']},"
                     f"{4 + i % 2},{6 if i % 3 == 0 else ''}")
    (base / "index.csv").write_text("\n".join(lines) + "\n")
    return Path(root)
