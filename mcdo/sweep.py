"""Grids of MC-dropout reliability runs, one independent cell per (model, p, T, dropout mode, data set), sharded
across GPUs and machines with the launchers people already have, then aggregated into one report.

Each cell runs ``trials`` independent trials of T passes on the same images (``mc_sample``, its samples cached)
and writes ``cells/<cell id>.json`` atomically: the per-image trace_pre of every trial and the seed's reliability
figures (SNR, ICC(1,1), median pairwise Spearman, the gate). A cell's result depends on nothing but the cell (masks
are keyed by seed, image, pass and site), so which shard runs it, and in which order, does not matter; a rerun
with ``skip_existing`` does only what is missing, so a killed shard loses at most the cell it was running.

Shards: ``--shard i/n`` (0-based), else ``torchrun``'s RANK / WORLD_SIZE, else Slurm's SLURM_ARRAY_TASK_ID with
SLURM_ARRAY_TASK_COUNT (or MIN / MAX), else one shard. Shard i runs cells i, i + n, i + 2n, ... of the sorted grid.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path


from . import stats as S
from .io import write_text_atomic

WORLD = "world"


@dataclass(frozen=True, order=True)
class Cell:
    model: str
    p: float
    T: int
    mode: str
    data: str

    @property
    def id(self) -> str:
        data = Path(self.data).name if self.data != WORLD else WORLD
        return f"{self.model}_p{self.p:g}_T{self.T}_{self.mode}_{data}".replace("/", "-")


def grid(models, ps, Ts, modes, datasets) -> list[Cell]:
    """Every cell of the grid, in a fixed order (the same on every shard)."""
    from .dropout import MODES

    bad = set(modes) - set(MODES)
    if bad:
        raise ValueError(f"unknown dropout mode(s) {sorted(bad)}; choose from {MODES}")
    if any(not 0 <= float(p) < 1 for p in ps) or any(int(t) < 2 for t in Ts):
        raise ValueError("p must be in [0, 1) and T at least 2 (a variance needs two passes)")
    return sorted(Cell(m, float(p), int(t), mo, d) for m, p, t, mo, d in product(models, ps, Ts, modes, datasets))


def shard_of(spec: str | None = None, environ: dict | None = None) -> tuple[int, int, str]:
    """``(index, count, source)`` of this process's shard."""
    env = os.environ if environ is None else environ
    if spec:
        try:
            i, n = (int(v) for v in spec.split("/"))
        except ValueError:
            raise ValueError(f"--shard takes i/n (0-based, e.g. 0/4), got {spec!r}") from None
        source = "--shard"
    elif "WORLD_SIZE" in env and "RANK" in env:
        i, n, source = int(env["RANK"]), int(env["WORLD_SIZE"]), "torchrun (RANK / WORLD_SIZE)"
    elif "SLURM_ARRAY_TASK_ID" in env:
        task = int(env["SLURM_ARRAY_TASK_ID"])
        lo = int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        n = int(env["SLURM_ARRAY_TASK_COUNT"]) if "SLURM_ARRAY_TASK_COUNT" in env else \
            int(env["SLURM_ARRAY_TASK_MAX"]) - lo + 1
        i, source = task - lo, "Slurm array"
    else:
        i, n, source = 0, 1, "one shard"
    if not 0 <= i < n:
        raise ValueError(f"shard {i} of {n} ({source}): the index must be in [0, {n})")
    return i, n, source


def mine(cells: list[Cell], i: int, n: int) -> list[Cell]:
    return cells[i::n]


@functools.lru_cache(maxsize=2)
def _encoder(model: str, random_weights: bool, seed: int):
    """A cell's model, loaded once per process for all its cells (random weights drawn from ``seed``)."""
    import torch

    from . import env
    from .models import load

    if random_weights:
        torch.manual_seed(seed)
    return load(model, pretrained=not random_weights, seed=seed, progress=False, device=env.device())


@functools.lru_cache(maxsize=2)
def _inputs(model: str, random_weights: bool, seed: int, data: str, n_images: int):
    """A cell's images, read and transformed once per (model, data set) for all its cells."""
    return _images(data, _encoder(model, random_weights, seed), n_images)


def _images(data: str, enc, n_images: int):
    """The images as the tower's input: the embedded world (32-px models) or a labelled folder."""
    import torch

    if data == WORLD:
        from .data import world
        from .models.proxy import normalise_images

        size = enc.spec.image_size
        if size != world.IMAGE_SIZE:
            raise ValueError(f"{enc.spec.name} takes {size}-px images; the world is {world.IMAGE_SIZE}-px: give a folder")
        return normalise_images(world.generate(n_images, seed=7).images)
    from PIL import Image

    from .data.folders import class_folder
    from .zeroshot import image_transform

    lab = class_folder(data)
    t, out = image_transform(enc), []
    for p in lab.images.paths:
        if len(out) == n_images:
            break
        try:
            out.append(t(Image.open(p).convert("RGB")))
        except Exception:  # an unreadable file: skipped (the folder readers count them)
            continue
    return torch.stack(out)


def run_cell(cell: Cell, out: Path, trials: int, n_images: int, seed: int = 0, random_weights: bool = False) -> dict:
    """Run one cell and write its result file; returns the result."""
    from . import env
    from .reliability import run_trials
    from .zeroshot import model_cache_id

    enc = _encoder(cell.model, random_weights, seed)
    x = _inputs(cell.model, random_weights, seed, cell.data, n_images)
    traces = run_trials(enc.vision_tower, x, [1000 * seed + k for k in range(trials)], T=cell.T, p=cell.p,
                        mode=cell.mode, progress=False, model_name=model_cache_id(enc),
                        cache_dir=env.cache_dir() / "samples").traces
    gate = S.reliability_gate(traces)
    result = dict(cell=asdict(cell), id=cell.id, trials=trials, n_images=int(x.shape[0]), seed=seed,
                  random_weights=random_weights, gate=gate.as_dict(), mean_trace=float(traces.mean()),
                  traces=traces.tolist())
    write_text_atomic(out / "cells" / f"{cell.id}.json", json.dumps(result) + "\n")
    return result


def run(cells: list[Cell], out: Path, trials: int, n_images: int, seed: int = 0, random_weights: bool = False,
        skip_existing: bool = True, progress: bool = True) -> list[str]:
    """Run this shard's cells (those without a result file when ``skip_existing``); returns the ids run."""
    from tqdm.auto import tqdm

    done = []
    for cell in tqdm(cells, desc="sweep cells", unit="cell", disable=not progress):
        if skip_existing and (out / "cells" / f"{cell.id}.json").is_file():
            continue
        run_cell(cell, out, trials, n_images, seed, random_weights)
        done.append(cell.id)
    return done


def load_results(out: Path) -> list[dict]:
    """Every finished cell's result (a file that cannot be read is skipped, named by a warning)."""
    import warnings

    res = []
    for path in sorted((out / "cells").glob("*.json")):
        try:
            res.append(json.loads(path.read_text()))
        except (OSError, ValueError) as e:
            warnings.warn(f"sweep result {path} cannot be read ({e}); rerun its cell", stacklevel=2)
    return res


def t_needed(snr: float, T: int, k: int) -> float:
    """The T at which the SNR estimated over the cell's ``k`` trials would reach the seed's gate (2), from the
    population SNR growing linearly in T, the estimator's +1/K bias removed (MCD-15's law, stats.passes_needed)."""
    return S.passes_needed(snr, T, k)["snr"] if snr == snr else float("nan")


def aggregate(out: Path, cells: list[Cell] | None = None) -> str:
    """The report of a sweep: one row per finished cell (gate figures, the T the SNR gate needs), the cells still
    missing, and a figure of SNR and ICC against T per (model, p, mode, data). Written to ``out/sweep.md``."""
    res = load_results(out)
    lines = ["| model | p | T | mode | data | SNR | ICC | Spearman | gate | T for SNR 2 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(res, key=lambda r: tuple(r["cell"].values())):
        c, g = r["cell"], r["gate"]
        lines.append(f"| {c['model']} | {c['p']:g} | {c['T']} | {c['mode']} | {Path(c['data']).name} | {g['snr']:.2f} "
                     f"| {g['icc']:.3f} | {g['spearman_median']:.3f} | {'pass' if g['passed'] else 'fail'} "
                     f"| {t_needed(g['snr'], c['T'], r['trials']):.0f} |")
    missing = sorted({c.id for c in cells or []} - {r["id"] for r in res})
    if missing:
        lines += ["", f"{len(missing)} cells not finished: {', '.join(missing[:10])}" + (" ..." if len(missing) > 10
                                                                                       else "")]
    text = "\n".join(lines)
    if res:
        _figure(res, out / "sweep_reliability.png")
        text += "\n\n![SNR and ICC against T](sweep_reliability.png)"
    (out / "sweep.md").write_text("# mcdo sweep\n\n" + text + "\n")
    return text


def _figure(res: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple, list] = {}
    for r in res:
        c = r["cell"]
        groups.setdefault((c["model"], c["p"], c["mode"], Path(c["data"]).name), []).append(r)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, rs in groups.items():
        rs = sorted(rs, key=lambda r: r["cell"]["T"])
        Ts = [r["cell"]["T"] for r in rs]
        label = f"{key[0]} p={key[1]:g} {key[2]}"
        axes[0].plot(Ts, [r["gate"]["snr"] for r in rs], marker="o", label=label)
        axes[1].plot(Ts, [r["gate"]["icc"] for r in rs], marker="o", label=label)
    from .stats.reliability import GATE_ICC, GATE_SNR

    for ax, name, gate in ((axes[0], "SNR of trace_pre", GATE_SNR), (axes[1], "ICC(1,1)", GATE_ICC)):
        ax.axhline(gate, color="grey", ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("T (passes)")
        ax.set_ylabel(name)
    axes[1].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
