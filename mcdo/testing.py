"""Small real inputs for tests and demos: image folders in the layouts mcdo reads, random-weight encoders.

``make_image_folders(root)`` writes ImageNet-style synset folders (4 classes, 12 images and one corrupt
file) and the four MOS OOD layouts with a few random images each, so that every data path of the
gpu-tier pipelines runs on a CPU in seconds, e.g. ``mcdo ood --model tiny-siglip --random-weights
--data-root <root>``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .testing_claims import ClaimCheck, parametrize_with_claims  # noqa: F401 (one import place)
from .testing_hub import (  # noqa: F401 (one import place)
    hub_hf_port, hub_model, hub_repo, hub_tokenizer, serve_hub, train_siglip_tokenizer, warm_text_heads)

IMAGENET_CLASSES = (0, 1, 207, 980)  # positions in the sorted synset list
OOD_COUNTS = {"iNaturalist/images": 5, "SUN/images": 4, "Places/images": 4}


def write_image(path: Path, rng: np.random.Generator, fmt: str = "JPEG") -> None:
    """A random RGB image of 30 to 63 pixels a side."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = rng.integers(30, 64, size=2)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, fmt)


def make_image_folders(root: Path | str, seed: int = 0) -> Path:
    """ImageNet-like synset folders (with one corrupt file, ``broken.JPEG``) and the four MOS layouts."""
    from .data.folders import imagenet_synsets

    root = Path(root)
    rng = np.random.default_rng(seed)
    wnids = imagenet_synsets()
    for k, c in enumerate(IMAGENET_CLASSES):
        for j in range(3):
            write_image(root / "imagenet/val" / wnids[c] / f"ILSVRC2012_val_{3 * k + j + 1:08d}.JPEG", rng)
    (root / "imagenet/val" / wnids[IMAGENET_CLASSES[0]] / "broken.JPEG").write_bytes(b"this is not a JPEG")
    for rel, n in OOD_COUNTS.items():
        png = "Places" in rel
        for j in range(n):
            write_image(root / rel / f"{j}.{'png' if png else 'jpg'}", rng, "PNG" if png else "JPEG")
    for j in range(3):
        write_image(root / "dtd/images" / ("banded" if j < 2 else "zigzagged") / f"t{j}.jpg", rng)
    return root


def random_encoder(name: str, seed: int = 0):
    """A registered architecture with random weights drawn after ``torch.manual_seed(seed)``."""
    import torch

    from .models import load

    torch.manual_seed(seed)
    return load(name, pretrained=False, progress=False)


def save_open_clip_checkpoint(arch: str, path: Path | str, seed: int = 0) -> Path:
    """An open_clip architecture with random weights (drawn after ``torch.manual_seed(seed)``) saved as a local
    checkpoint file: a researcher's own model as ``ARCH:PATH`` would name it, with no download."""
    import open_clip
    import torch

    from .models import registry  # noqa: F401  (registers the toy architectures)

    torch.manual_seed(seed)
    path = Path(path)
    torch.save(open_clip.create_model(arch, pretrained=None).state_dict(), path)
    return path


def flatten_imagenet(src: Path | str, dst: Path | str) -> Path:
    """The ImageNet folders of ``make_image_folders(src)`` in the flat + devkit layout under ``dst``: the same
    ``ILSVRC2012_val_%08d.JPEG`` files in one folder, labelled by a devkit (``meta.mat`` with the ILSVRC ids in
    a shuffled order, an inner node, and the ground-truth file)."""
    from scipy.io import savemat

    from .data.folders import imagenet_synsets, imagenet_val

    src, dst = Path(src), Path(dst)
    wnids = imagenet_synsets()
    order = np.random.default_rng(1).permutation(1000)  # ILSVRC2012_ID k+1 <-> wnids[order[k]]
    ilsvrc_of = {wnids[order[k]]: k + 1 for k in range(1000)}
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height",
              "num_train_images"]
    rows = [(k + 1, wnids[order[k]], "w", "g", 0, np.zeros(0), 0, 1300) for k in range(1000)]
    rows.append((1001, "n00001740", "entity", "g", 3, np.array([1, 2, 3]), 18, 0))  # an inner node: not a class
    devkit = dst / "imagenet/ILSVRC2012_devkit_t12/data"
    devkit.mkdir(parents=True, exist_ok=True)
    savemat(devkit / "meta.mat", {"synsets": np.array(rows, dtype=[(f, "O") for f in fields])})
    ref = imagenet_val(src)
    flat = dst / "imagenet/val"
    flat.mkdir(parents=True, exist_ok=True)
    truth = {}
    for p, y in zip(ref.paths, ref.labels):
        if p.name.startswith("ILSVRC2012_val_"):
            (flat / p.name).write_bytes(p.read_bytes())
            truth[int(p.stem.rsplit("_", 1)[-1])] = ilsvrc_of[wnids[y]]
    lines = [str(truth.get(n, 1)) for n in range(1, max(truth) + 1)]
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("\n".join(lines) + "\n")
    return dst


def make_recorded_run(root: Path | str, models: dict[str, float], Ts: tuple[int, ...] = (16, 64),
                      trials: int | dict[int, int] = 6, n_images: int = 200, seed: int = 0,
                      summaries: dict[str, dict] | None = None) -> Path:
    """A recorded folder laid out as the published run (``exp0_nested_mc/<model>/exp0_trials_T<T>.npz``) with
    synthetic traces whose reliability is known: image i has signal s_i ~ N(1, 0.1^2) and each trial adds noise of
    variance ``noise / T`` (the 1/T law), so SNR(T) = 0.01 T / noise. ``models``: model folder -> noise;
    ``trials``: one count, or a count per T; ``summaries``: model -> its ``exp0_summary.json``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    paths = np.array([f"/data/imagenet/val/n{1440764 + i // 2:08d}/ILSVRC2012_val_{i + 1:08d}.JPEG"
                      for i in range(n_images)])
    for model, noise in models.items():
        folder = root / "exp0_nested_mc" / model
        folder.mkdir(parents=True, exist_ok=True)
        signal = rng.normal(1.0, 0.1, n_images)
        if model in (summaries or {}):
            (folder / "exp0_summary.json").write_text(json.dumps(summaries[model]))
        for T in Ts:
            k = trials[T] if isinstance(trials, dict) else trials
            pre = signal + rng.normal(0.0, np.sqrt(noise / T), (k, n_images))
            np.savez(folder / f"exp0_trials_T{T}.npz", trial_pre=pre.astype(np.float32),
                     trial_post=(0.5 * pre).astype(np.float32), paths=paths)
    return root


def save_tiny_siglip_hf(folder: Path | str, seed: int = 0) -> Path:
    """``tiny-siglip`` for the transformers backend with random weights and a tokenizer trained here, written as
    a local checkpoint (``save_pretrained``): loading it exercises ``from_pretrained`` with no download."""
    import torch
    from transformers import SiglipConfig, SiglipModel

    from .models.registry import TINY_SIGLIP_HF

    folder = Path(folder)
    torch.manual_seed(seed)
    SiglipModel(SiglipConfig(vision_config=TINY_SIGLIP_HF["vision"], text_config=TINY_SIGLIP_HF["text"])
                ).save_pretrained(folder)
    train_siglip_tokenizer(folder, TINY_SIGLIP_HF["text"]["vocab_size"])
    return folder


def make_probe_folder(root: Path | str, ages: tuple[int, ...] = (3, 4, 5, 6), per_class: int = 12, seed: int = 0,
                      broken: bool = True) -> Path:
    """An ordinal image folder in the seed's layout (``root/<age>/*.jpg``, like otolith images by age), the
    images' brightness rising with the age so a probe has something to find, and (``broken``) one corrupt file."""
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for a in ages:
        for j in range(per_class):
            img = np.clip(rng.normal(40 * (a - ages[0]) + 60, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
            (root / str(a)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / str(a) / f"fish{j:03d}.jpg")
    if broken:
        (root / str(ages[0]) / "broken.jpg").write_bytes(b"not a JPEG")
    return root


def make_food_folders(root: Path | str, names: tuple[str, ...] = ("apple pie", "ramen", "sushi"), per_class: int = 6,
                      seed: int = 0) -> Path:
    """Food-101 as extracted (``food-101/images/<class>/*.jpg`` with ``meta/test.txt``), and the image-caption
    sets of BayesVLM's gpu claims: ``bayes-hessian`` as class folders, ``bayes-hessian-alt`` with a
    ``captions.tsv``."""
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    for split in ("food-101/images", "bayes-hessian", "bayes-hessian-alt"):
        for c in names:
            folder = root / split / c.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    meta = root / "food-101" / "meta"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "test.txt").write_text("".join(f"{c.replace(' ', '_')}/{i}\n" for c in names for i in range(per_class)))
    rows = [f"{c.replace(' ', '_')}/{i}.jpg\ta picture of {c} number {i}" for c in names for i in range(per_class)]
    (root / "bayes-hessian-alt" / "captions.tsv").write_text("\n".join(rows) + "\n")
    return root


def make_gpu_data_root(root: Path | str, seed: int = 0) -> Path:
    """Every data set a gpu-tier claim reads, a few images each, in the layouts mcdo documents: ImageNet val
    synset folders and the four MOS sets (``make_image_folders``), Food-101 and the BayesVLM caption sets
    (``make_food_folders``), the probe's ``otoliths`` (``make_probe_folder``) and Broden's ``broden1_224``."""
    from .signatures import broden

    root = make_image_folders(root, seed)
    make_food_folders(root, seed=seed)
    make_probe_folder(root / "otoliths", seed=seed)
    broden.write_fake(root, n=24, seed=seed)
    return root
