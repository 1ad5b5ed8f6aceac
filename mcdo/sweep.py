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
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path

import numpy as np

from . import stats as S
from .io import save_figure_atomic, write_text_atomic

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
        """A readable, shell-safe name: letters, digits and ``._+-`` only, never starting with ``-`` (a path-named
        model's cell file would otherwise read as an option to ``cat``)."""
        import re

        data = Path(self.data).name if self.data != WORLD else WORLD
        raw = f"{self.model}_p{self.p:g}_T{self.T}_{self.mode}_{data}"
        return re.sub(r"[^A-Za-z0-9._+-]+", "-", raw).lstrip("-.") or "cell"


def grid(models, ps, Ts, modes, datasets) -> list[Cell]:
    """Every cell of the grid, in a fixed order (the same on every shard)."""
    from .dropout import MODES

    bad = set(modes) - set(MODES)
    if bad:
        raise ValueError(f"unknown dropout mode(s) {sorted(bad)}; choose from {MODES}")
    if any(not 0 <= float(p) < 1 for p in ps) or any(int(t) < 2 for t in Ts):
        raise ValueError("p must be in [0, 1) and T at least 2 (a variance needs two passes)")
    return sorted(Cell(m, float(p), int(t), mo, d) for m, p, t, mo, d in product(models, ps, Ts, modes, datasets))


def _int(env: dict, name: str, default: int | None = None) -> int:
    """An integer launcher variable, or a ValueError naming it."""
    if name not in env:
        if default is not None:
            return default
        raise ValueError(f"{name} is not set (the launcher sets it): set it, or give --shard i/n")
    try:
        return int(env[name])
    except ValueError:
        raise ValueError(f"{name}={env[name]!r} is not an integer: fix the launcher, or give --shard i/n") from None


def shard_of(spec: str | None = None, environ: dict | None = None) -> tuple[int, int, str]:
    """``(index, count, source)`` of this process's shard: ``--shard i/n``, else torchrun's RANK / WORLD_SIZE, else
    a Slurm array (the task's position in MIN, MIN + STEP, ..., so ``--array=0-12:4`` gives shards 0..3 of 4),
    else one shard. A value that is missing or not a number is named."""
    env = os.environ if environ is None else environ
    if spec:
        try:
            i, n = (int(v) for v in spec.split("/"))
        except ValueError:
            raise ValueError(f"--shard takes i/n (0-based, e.g. 0/4), got {spec!r}") from None
        source = "--shard"
    elif "WORLD_SIZE" in env or "RANK" in env:
        i, n, source = _int(env, "RANK"), _int(env, "WORLD_SIZE"), "torchrun (RANK / WORLD_SIZE)"
    elif "SLURM_ARRAY_TASK_ID" in env:
        task, lo = _int(env, "SLURM_ARRAY_TASK_ID"), _int(env, "SLURM_ARRAY_TASK_MIN", 0)
        step = max(1, _int(env, "SLURM_ARRAY_TASK_STEP", 1))
        n = _int(env, "SLURM_ARRAY_TASK_COUNT") if "SLURM_ARRAY_TASK_COUNT" in env else \
            (_int(env, "SLURM_ARRAY_TASK_MAX") - lo) // step + 1
        if (task - lo) % step:
            raise ValueError(f"Slurm array task {task} is not on MIN {lo} + k * STEP {step} (an array given as a "
                             "list): give each task --shard i/n")
        i, source = (task - lo) // step, f"Slurm array (task {task}, min {lo}, step {step}, {n} tasks)"
    else:
        i, n, source = 0, 1, "one shard"
    if not 0 <= i < n:
        hint = (": an array given as a list (--array=1,3,5,7) numbers its tasks by ID, not by place; give each task "
                "--shard i/n (0-based) instead" if source.startswith("Slurm") else "")
        raise ValueError(f"shard {i} of {n} ({source}): the index must be in [0, {n}){hint}")
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
    t, out, bad = image_transform(enc), [], []
    for p in lab.images.paths:
        if len(out) == n_images:
            break
        try:
            out.append(t(Image.open(p).convert("RGB")))
        except Exception:  # an unreadable file: skipped, and said (as ood and probe say theirs)
            bad.append(str(p))
    if not out:
        raise ValueError(f"{data}: no readable image among {len(bad)} files (first: {bad[0] if bad else 'none'})")
    if bad:
        import warnings

        warnings.warn(f"{data}: {len(bad)} unreadable image(s) skipped (first: {bad[0]})", stacklevel=2)
    return torch.stack(out)


@dataclass(frozen=True)
class Settings:
    """What every cell of a run shares: trials, images, the seed, random weights or the real ones."""

    trials: int = 5
    n_images: int = 200
    seed: int = 0
    random_weights: bool = False

    def check(self) -> None:
        if self.trials < 2:
            raise ValueError(f"--trials {self.trials}: the reliability figures compare trials, so at least 2")
        if self.n_images < 2:
            raise ValueError(f"--n-images {self.n_images}: the figures rank images, so at least 2")


def cell_key(cell: Cell, settings: Settings) -> dict:
    """Everything that determines a cell's result: the grid point with its data folder resolved (two folders named
    alike are two cells), the run's settings, the backend that builds the model and the sampler's version. A result
    file is reused only when it holds this same key; the weights' fingerprint is stored beside it."""
    from .models.encoder import resolve_backend
    from .models.registry import get_spec
    from .sampling import SAMPLER_VERSION

    data = WORLD if cell.data == WORLD else os.path.realpath(os.path.expanduser(cell.data))
    return dict(model=cell.model, p=cell.p, T=cell.T, mode=cell.mode, data=data, trials=settings.trials,
                n_images=settings.n_images, seed=settings.seed, random_weights=settings.random_weights,
                backend=resolve_backend(get_spec(cell.model), None), sampler=SAMPLER_VERSION)


def cell_path(out: Path, cell: Cell, settings: Settings) -> Path:
    """``out/cells/<readable id>-<hash of the key>.json``: a run with other settings writes other files."""
    digest = hashlib.sha256(json.dumps(cell_key(cell, settings), sort_keys=True).encode()).hexdigest()[:10]
    return Path(out) / "cells" / f"{cell.id}-{digest}.json"


def validate(cells: list[Cell], settings: Settings) -> None:
    """Refuse a grid that cannot run before any work: the settings, and every data folder readable as a labelled
    folder (the world needs none)."""
    from .data.folders import class_folder

    settings.check()
    for data in sorted({c.data for c in cells} - {WORLD}):
        class_folder(data)  # MissingData naming the folder and what it needs


def run_cell(cell: Cell, out: Path, settings: Settings) -> dict:
    """Run one cell and write its result file (atomically); returns the result."""
    from . import env
    from .reliability import run_trials
    from .sampling import weights_fingerprint
    from .zeroshot import model_cache_id

    s = settings
    enc = _encoder(cell.model, s.random_weights, s.seed)
    x = _inputs(cell.model, s.random_weights, s.seed, cell.data, s.n_images)
    if x.shape[0] < 2:
        raise ValueError(f"{x.shape[0]} readable images in {cell.data}: the figures need at least 2")
    traces = run_trials(enc.vision_tower, x, [1000 * s.seed + k for k in range(s.trials)], T=cell.T, p=cell.p,
                        mode=cell.mode, progress=False, model_name=model_cache_id(enc),
                        cache_dir=env.cache_dir() / "samples").traces
    gate = S.reliability_gate(traces)
    path = cell_path(out, cell, s)
    result = dict(cell=asdict(cell), id=path.stem, key=cell_key(cell, s), weights=weights_fingerprint(enc.model),
                  trials=s.trials, n_images=int(x.shape[0]), seed=s.seed, random_weights=s.random_weights,
                  gate=gate.as_dict(), gate_ci=gate_cis(traces, seed=s.seed), n_boot=N_BOOT,
                  mean_trace=float(traces.mean()), traces=traces.tolist(),
                  provenance=env.provenance(str(next(enc.vision_tower.parameters()).device)))
    write_text_atomic(path, json.dumps(result) + "\n")
    (Path(out) / "failed" / path.name).unlink(missing_ok=True)
    return result


N_BOOT = 200  # bootstrap resamples of the images for each cell's CIs
_FIGURES = (("snr", S.snr), ("icc", S.icc), ("spearman_median", lambda t: S.pairwise_spearman(t).median))


def gate_cis(traces: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap 95% CIs of a cell's SNR, ICC and median pairwise Spearman, images resampled (every trial
    keeps its images paired), as the claims' gate records compute them."""
    traces = np.asarray(traces, dtype=float)
    return {name: S.bootstrap_ci(fn, traces, axis=1, n_boot=n_boot, seed=seed) for name, fn in _FIGURES}


def _with_ci(value: float, ci, digits: int) -> str:
    return f"{value:.{digits}f}" + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci is not None else "")


_RESULT_KEYS = {"cell", "id", "key", "trials", "n_images", "gate"}
_GATE_KEYS = {"snr", "icc", "spearman_median", "passed"}


def read_result(path: Path, key: dict | None = None) -> dict | None:
    """A finished cell's result, or None when there is none, it cannot be read, it is not a result (``[]``, ``{}``)
    or it holds another key (other settings, data or backend): a warning names it and the cell is run again."""
    import warnings

    if not path.is_file():
        return None
    try:
        r = json.loads(path.read_text())
        if not isinstance(r, dict) or not _RESULT_KEYS <= set(r) or not _GATE_KEYS <= set(r["gate"]):
            raise ValueError(f"not a cell result (keys {sorted(r) if isinstance(r, dict) else type(r).__name__})")
    except (OSError, ValueError, TypeError) as e:
        warnings.warn(f"sweep result {path} cannot be used ({e}); its cell is run again", stacklevel=2)
        return None
    if key is not None and r["key"] != key:
        warnings.warn(f"sweep result {path} holds other settings; its cell is run again", stacklevel=2)
        return None
    return r


def run(cells: list[Cell], out: Path, settings: Settings, skip_existing: bool = True, progress: bool = True
        ) -> tuple[list[str], dict[str, str]]:
    """Run this shard's cells (those without a valid result of these settings when ``skip_existing``): the ids
    run, and the cells that failed with why (each failure written to ``out/failed/``; the others still run)."""
    from tqdm.auto import tqdm

    validate(cells, settings)
    done, failed = [], {}
    for cell in tqdm(cells, desc="sweep cells", unit="cell", disable=not progress):
        path = cell_path(out, cell, settings)
        if skip_existing and read_result(path, cell_key(cell, settings)) is not None:
            continue
        try:
            run_cell(cell, out, settings)
        except Exception as e:  # one bad cell (no weights, unreadable data) fails alone, with its reason
            why = f"{type(e).__name__}: {e}"
            failed[path.stem] = why
            write_text_atomic(Path(out) / "failed" / path.name, json.dumps(dict(cell=asdict(cell), reason=why)) + "\n")
            continue
        done.append(path.stem)
    return done, failed


def load_results(out: Path) -> list[dict]:
    """Every usable finished cell's result under ``out`` (a file that cannot be used is named by a warning)."""
    return [r for path in sorted((Path(out) / "cells").glob("*.json")) if (r := read_result(path)) is not None]


def t_needed(snr: float, T: int, k: int) -> float:
    """The T at which the SNR estimated over the cell's ``k`` trials would reach the seed's gate (2), from the
    population SNR growing linearly in T, the estimator's +1/K bias removed (MCD-15's law, stats.passes_needed)."""
    return S.passes_needed(snr, T, k)["snr"] if snr == snr else float("nan")


def aggregate(out: Path, cells: list[Cell] | None = None, settings: Settings | None = None) -> str:
    """The report of a sweep: one row per finished cell of the grid with these settings (trials, images, the gate
    figures, the T the SNR gate needs), the cells still missing, the cells that failed with why, and a figure of
    SNR and ICC against T per (model, p, mode, data). Written atomically to ``out/sweep.md``. Without ``cells``,
    every usable result in the folder."""
    out = Path(out)
    if cells is None:
        res = load_results(out)
        wanted = {}
    else:
        settings = settings or Settings()
        wanted = {cell_path(out, c, settings).stem: c for c in cells}
        res = [r for stem, c in wanted.items()
               if (r := read_result(out / "cells" / f"{stem}.json", cell_key(c, settings))) is not None]
    lines = [f"SNR, ICC and median pairwise Spearman with percentile-bootstrap 95% CIs ({N_BOOT} resamples of the "
             "images) in brackets.", "",
             "| model | p | T | mode | data | trials | images | SNR | ICC | Spearman | gate | T for SNR 2 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(res, key=lambda r: tuple(str(v) for v in r["cell"].values())):
        c, g = r["cell"], r["gate"]
        ci = r.get("gate_ci") or (gate_cis(r["traces"], seed=r.get("seed", 0)) if r.get("traces") else {})
        lines.append(f"| {c['model']} | {c['p']:g} | {c['T']} | {c['mode']} | {_data_name(r)} | {r['trials']} | "
                     f"{r['n_images']} | {_with_ci(g['snr'], ci.get('snr'), 2)} | "
                     f"{_with_ci(g['icc'], ci.get('icc'), 3)} | "
                     f"{_with_ci(g['spearman_median'], ci.get('spearman_median'), 3)} | "
                     f"{'pass' if g['passed'] else 'fail'} | {t_needed(g['snr'], c['T'], r['trials']):.0f} |")
    finished = {r["id"] for r in res}
    failed = {}
    for path in sorted((out / "failed").glob("*.json")):
        try:
            failed[path.stem] = json.loads(path.read_text())["reason"]
        except (OSError, ValueError, KeyError, TypeError):
            failed[path.stem] = "its failure file cannot be read"
    failed = {k: v for k, v in failed.items() if (not wanted or k in wanted) and k not in finished}
    missing = sorted(set(wanted) - finished - set(failed))
    if missing:
        lines += ["", f"{len(missing)} cells not finished: {', '.join(missing[:10])}" + (" ..." if len(missing) > 10
                                                                                       else "")]
    if failed:
        lines += ["", f"{len(failed)} cells failed (rerun to retry):"] + [f"- {k}: {v}" for k, v in failed.items()]
    text = "\n".join(lines)
    if res:
        _figure(res, out / "sweep_reliability.png")
        text += "\n\n![SNR and ICC against T](sweep_reliability.png)"
    write_text_atomic(out / "sweep.md", "# mcdo sweep\n\n" + text + "\n")
    return text


def _data_name(r: dict) -> str:
    data = r.get("key", r["cell"])["data"]
    return WORLD if data == WORLD else f"{Path(data).name} ({data})"


def _figure(res: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple, list] = {}
    for r in res:
        c = r["cell"]
        groups.setdefault((c["model"], c["p"], c["mode"], _data_name(r)), []).append(r)
    from .figures import gate_handle, styled
    from .stats.reliability import GATE_ICC, GATE_SNR

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    style = styled([key[0] for key in groups])  # the report's colour per loss family, a marker per model
    for key, rs in groups.items():
        rs = sorted(rs, key=lambda r: r["cell"]["T"])
        Ts = [r["cell"]["T"] for r in rs]
        label = f"{key[0]} p={key[1]:g} {key[2]}"
        for ax, figure in zip(axes, ("snr", "icc")):
            values = np.array([r["gate"][figure] for r in rs])
            cis = [(r.get("gate_ci") or {}).get(figure) for r in rs]  # bootstrap 95% CI over images, per cell
            err = np.array([[v - ci[0], ci[1] - v] if ci else [np.nan, np.nan] for v, ci in zip(values, cis)]).T
            ax.errorbar(Ts, values, yerr=np.clip(err, 0, None), capsize=2, label=label, **style[key[0]])
    for ax, name, gate in ((axes[0], "SNR of trace_pre", GATE_SNR), (axes[1], "ICC(1,1)", GATE_ICC)):
        ax.axhline(gate, color="grey", ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("T (passes)")
        ax.set_ylabel(name)
    handles, _ = axes[1].get_legend_handles_labels()
    axes[1].legend(handles=[*handles, gate_handle()], fontsize=6, title="bars: bootstrap 95% CI", title_fontsize=6)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=120)
    plt.close(fig)
