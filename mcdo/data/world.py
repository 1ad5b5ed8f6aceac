"""A procedurally generated image-caption world: the embedded default data (no download).

Each image is one shape with a colour (the class), a size and a position, on a background with a
texture, plus pixel noise; its caption always names the colour and names each other attribute with
probability 1/2 ("a small red ring at the top left on a striped grey background"). Colours are
jittered per image so that neighbouring colours overlap: some images are genuinely ambiguous, as
zero-shot classification of real photographs is. Everything is drawn from a seeded generator, so a
(seed, n) pair always gives the same images, captions and labels.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "ring", "square", "diamond", "triangle", "cross")
COLOURS = {"red": (0.9, 0.1, 0.1), "green": (0.1, 0.75, 0.2), "blue": (0.15, 0.25, 0.95),
           "yellow": (0.95, 0.9, 0.1), "magenta": (0.85, 0.1, 0.8), "cyan": (0.1, 0.85, 0.9),
           "white": (0.97, 0.97, 0.97), "orange": (1.0, 0.55, 0.05)}
SIZES = {"small": (5.0, 7.5), "large": (8.5, 12.0)}
POSITIONS = {"centre": (0.5, 0.5), "top left": (0.3, 0.3), "top right": (0.7, 0.3), "bottom left": (0.3, 0.7),
             "bottom right": (0.7, 0.7)}
BACKGROUNDS = ("plain", "striped", "dotted", "gradient")
TONES = {"dark": 0.12, "grey": 0.45, "light": 0.8}
IMAGE_SIZE = 32
COLOUR_JITTER = 0.12  # per-channel s.d. of each image's colour around its named colour
CHUNK = 1024  # images rendered at once (all 20000 of a proxy's training set at once peaked at 2.6 GB)
CLASSES = tuple(COLOURS)  # zero-shot classes: the colour of the shape


@dataclass(frozen=True)
class WorldData:
    """Images ``[N, 3, H, W]`` float32 in [0, 1], captions, colour labels and the attributes of each image."""

    images: np.ndarray
    captions: list[str]
    labels: np.ndarray
    attributes: dict[str, np.ndarray]


def _shape_masks(kind: np.ndarray, dx: np.ndarray, dy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Boolean masks [N, H, W] of each image's shape, from offsets to its centre and its radius."""
    r = r[:, None, None]
    d2 = dx**2 + dy**2
    masks = {
        "circle": d2 <= r**2,
        "ring": (d2 <= r**2) & (d2 >= (0.55 * r) ** 2),
        "square": (np.abs(dx) <= 0.8 * r) & (np.abs(dy) <= 0.8 * r),
        "diamond": np.abs(dx) + np.abs(dy) <= r,
        "triangle": (dy <= 0.8 * r) & (np.abs(dx) <= 0.6 * (dy + 0.8 * r)),
        "cross": ((np.abs(dx) <= 0.3 * r) & (np.abs(dy) <= r)) | ((np.abs(dy) <= 0.3 * r) & (np.abs(dx) <= r)),
    }
    out = np.zeros(dx.shape, dtype=bool)
    for i, name in enumerate(SHAPES):
        sel = kind == i
        out[sel] = masks[name][sel]
    return out


def _render(size, shape, radius, centre, bg, base, phase, freq, rgb, contrast, noise, amplitude) -> np.ndarray:
    """Images [n, 3, size, size] in [0, 1] from their drawn attributes and pixel noise (float64 throughout)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dx = xx[None] - centre[:, 0, None, None]
    dy = yy[None] - centre[:, 1, None, None]
    mask = _shape_masks(shape, dx, dy, radius)
    phase, freq, sel = phase[:, None, None], freq[:, None, None], bg[:, None, None]
    pattern = np.select(
        [sel == 0, sel == 1, sel == 2],
        [np.zeros_like(dx), 0.18 * np.sign(np.sin(freq * yy[None] + phase)),
         0.18 * ((np.sin(freq * 1.6 * xx[None] + phase) * np.sin(freq * 1.6 * yy[None])) > 0.5)],
        default=0.35 * (xx[None] / size - 0.5),
    )
    background = np.clip(base[:, None, None] + pattern, 0, 1)
    img = np.where(mask[:, None], rgb[:, :, None, None], background[:, None])
    img = background[:, None] + contrast[:, None, None, None] * (img - background[:, None])
    img = img + noise * amplitude[:, None, None, None]
    return np.clip(img, 0, 1).astype(np.float32)


def generate(n: int, seed: int = 0, size: int = IMAGE_SIZE, colour_jitter: float = COLOUR_JITTER,
             chunk: int = CHUNK) -> WorldData:
    """``n`` images of the world, deterministic in (n, seed); ``colour_jitter`` (default the world's own) is the
    per-channel s.d. of each shape's colour around its named colour, larger for a shifted world. Images are
    rendered ``chunk`` at a time (the same images for any ``chunk``: every draw keeps its place in the stream)."""
    if n < 1:
        raise ValueError(f"need at least one image, got n={n}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    rng = np.random.default_rng(seed)
    colours, positions = list(COLOURS), list(POSITIONS)
    shape = rng.integers(0, len(SHAPES), n)
    colour = rng.integers(0, len(colours), n)
    size_i = rng.integers(0, len(SIZES), n)
    pos = rng.integers(0, len(positions), n)
    bg = rng.integers(0, len(BACKGROUNDS), n)
    tone = rng.integers(0, len(TONES), n)
    lo = np.array([SIZES[s][0] for s in SIZES])[size_i]
    hi = np.array([SIZES[s][1] for s in SIZES])[size_i]
    radius = rng.uniform(lo, hi)
    centre = np.array([POSITIONS[p] for p in positions])[pos] * size + rng.normal(0, 1.2, (n, 2))
    base = np.array(list(TONES.values()))[tone]
    phase = rng.uniform(0, 2 * np.pi, n)
    freq = rng.uniform(0.6, 1.2, n)
    rgb = np.clip(np.array(list(COLOURS.values()))[colour] + rng.normal(0, colour_jitter, (n, 3)), 0, 1)
    contrast = rng.uniform(0.65, 1.0, n)
    # next in the stream: every pixel's noise (image by image), then each image's noise amplitude. A copy of the
    # generator draws the noise chunk by chunk while rendering; this one skips past it to the amplitudes.
    noise_rng, buf = copy.deepcopy(rng), np.empty((min(chunk, n), 3, size, size))
    for start in range(0, n, chunk):
        rng.standard_normal(out=buf[: min(chunk, n - start)])
    amplitude = rng.uniform(0.0, 0.08, n)
    img = np.empty((n, 3, size, size), dtype=np.float32)
    for start in range(0, n, chunk):
        k = slice(start, min(start + chunk, n))
        noise = buf[: k.stop - k.start]
        noise_rng.standard_normal(out=noise)
        img[k] = _render(size, shape[k], radius[k], centre[k], bg[k], base[k], phase[k], freq[k], rgb[k],
                         contrast[k], noise, amplitude[k])

    keep = rng.random((n, 4)) < 0.5
    photo = rng.random(n) < 0.3
    captions = []
    for i, (k, c, s, p, b, t) in enumerate(zip(shape, colour, size_i, pos, bg, tone)):
        words = ["a photo of a" if photo[i] else "a"]
        words += [list(SIZES)[s]] if keep[i, 0] else []
        words.append(colours[c])
        words.append(SHAPES[k] if keep[i, 1] else "shape")
        words += [f"at the {positions[p]}"] if keep[i, 2] else []
        words += [f"on a {BACKGROUNDS[b]} {list(TONES)[t]} background"] if keep[i, 3] else []
        captions.append(" ".join(words))
    attrs = dict(shape=shape, colour=colour, size=size_i, position=pos, background=bg, tone=tone, radius=radius)
    return WorldData(img, captions, colour.astype(np.int64), attrs)


VOCAB = ("<pad>", "<eos>", "a", "photo", "of", "at", "the", "on", "background", "shape", *SHAPES, *COLOURS,
         *SIZES, *sorted({w for p in POSITIONS for w in p.split()}), *BACKGROUNDS, *TONES)
_INDEX = {w: i for i, w in enumerate(VOCAB)}
CONTEXT = 16


def tokenize(texts: list[str] | str, context: int = CONTEXT) -> np.ndarray:
    """Word-level tokens ``[N, context]`` (0 = pad, an <eos> after the last word); unknown words are an error."""
    texts = [texts] if isinstance(texts, str) else texts
    out = np.zeros((len(texts), context), dtype=np.int64)
    for i, t in enumerate(texts):
        words = t.lower().replace(".", "").split()
        unknown = [w for w in words if w not in _INDEX]
        if unknown:
            raise ValueError(f"words outside the world's vocabulary: {unknown}; known: {' '.join(VOCAB[2:])}")
        ids = [_INDEX[w] for w in words][: context - 1] + [_INDEX["<eos>"]]
        out[i, : len(ids)] = ids
    return out


TEMPLATES = ("a photo of a {} shape", "a {} shape", *(f"a {{}} {s}" for s in SHAPES),
             *(f"a photo of a {{}} {s}" for s in SHAPES))


def class_prompts(template: str = "a photo of a {} shape") -> list[str]:
    """One prompt per class (colour) for zero-shot classification."""
    return [template.format(c) for c in CLASSES]
