"""Files mcdo writes and reads back: values made JSON-ready, writes that are atomic, cache reads that say what they
drop.

Every file mcdo writes goes to a temporary name beside its destination and is renamed into place only when
complete, so an interrupted run (a kill, a full disk) leaves the previous file whole or no file, never a prefix.
Every cache read that fails (truncated, not the format, a key missing) names the file in a warning, removes it
and returns None, so the caller recomputes it.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, BinaryIO, Callable, TypeVar

T = TypeVar("T")


def jsonable(x: Any) -> Any:
    """Plain JSON types (numpy scalars and arrays become floats and lists; NaN and inf become strings)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return jsonable(x.tolist())
    if isinstance(x, bool) or x is None or isinstance(x, (str, int)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else str(x)
    return str(x)


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_atomic(path: Path | str, write: Callable[[BinaryIO], Any]) -> Path:
    """``write(f)`` writes the file's bytes to ``f`` under a temporary name beside ``path``, then it is renamed to
    ``path``; on any error the temporary file is removed and the old ``path`` (if any) is left as it was."""
    path = Path(path)
    tmp = _tmp(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except Exception as e:  # a full disk surfaces as OSError, or from torch.save as a RuntimeError about positions
        tmp.unlink(missing_ok=True)
        raise WriteFailed(path, e) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_figure_atomic(fig, path: Path | str, **savefig_kw) -> Path:
    """A matplotlib figure written as ``write_atomic`` writes: a failing write (a full disk, a damaged input
    found mid-draw) leaves the previous image whole. The format is the file's suffix."""
    path = Path(path)
    return write_atomic(path, lambda f: fig.savefig(f, format=path.suffix.lstrip(".") or "png", **savefig_kw))


class WriteFailed(OSError):
    """A file that could not be written, named with the reason and the space left where it was going."""

    def __init__(self, path: Path, cause: BaseException):
        import shutil

        try:
            free = f"{shutil.disk_usage(path.parent).free / 2**20:.0f} MiB free there"
        except OSError:
            free = "free space unknown"
        super().__init__(getattr(cause, "errno", None), f"could not write {path} ({type(cause).__name__}: "
                         f"{getattr(cause, 'strerror', None) or cause}; {free})")
        self.filename = str(path)

    def __str__(self) -> str:
        return self.strerror


def keep_cache(save: Callable[..., Any], path: Path | str, *args) -> bool:
    """``save(path, *args)`` for a cache file: a cache that cannot be written (a full disk, a read-only cache
    folder) is named in a warning and the run goes on without it, since its work is in memory already."""
    try:
        save(path, *args)
        return True
    except OSError as e:
        warnings.warn(f"cache not kept: {e}; the run goes on, later runs recompute it (free space there or set "
                      "MCDO_CACHE_DIR)", stacklevel=2)
        return False


def write_text_atomic(path: Path | str, text: str) -> Path:
    """A text file written atomically (UTF-8)."""
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def write_texts_atomic(texts: dict[Path, str], last: Path | None = None) -> None:
    """Several text files that belong together (a report's JSON, JSONL and markdown): all are written to temporary
    names first and renamed only when every one is complete, ``last`` renamed last."""
    tmps = {Path(p): _tmp(Path(p)) for p in texts}
    p = None
    try:
        for p, text in texts.items():
            Path(p).parent.mkdir(parents=True, exist_ok=True)
            tmps[Path(p)].write_text(text, encoding="utf-8")
    except BaseException as e:
        for t in tmps.values():
            t.unlink(missing_ok=True)
        if isinstance(e, Exception):
            raise WriteFailed(Path(p), e) from e
        raise
    order = sorted(tmps, key=lambda p: p == last)
    for p in order:
        os.replace(tmps[p], p)


def save_npz_atomic(path: Path | str, arrays: dict) -> Path:
    """Numpy arrays in one ``.npz`` file, written atomically."""
    import numpy as np

    return write_atomic(path, lambda f: np.savez(f, **arrays))


def save_npy_atomic(path: Path | str, array) -> Path:
    import numpy as np

    return write_atomic(path, lambda f: np.save(f, array))


def torch_save_atomic(path: Path | str, obj) -> Path:
    import torch

    return write_atomic(path, lambda f: torch.save(obj, f))


def read_cache(path: Path | str, load: Callable[[Path], T], what: str, remove: bool = True) -> T | None:
    """``load(path)``, or None when there is no such file or it cannot be used: a damaged one (any error of
    ``load``, which should raise on missing keys) is named in a warning as ``what`` and removed, and the caller
    recomputes it."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return load(path)
    except Exception as e:  # truncated, not the format, a key missing, a state of another shape
        warnings.warn(f"{what} {path} cannot be read ({type(e).__name__}: {e}); recomputing it", stacklevel=3)
        if remove:
            path.unlink(missing_ok=True)
        return None


def config_stem(name: str, config: dict) -> str:
    """A report's file stem: a readable name and a hash of the configuration that produced it (paths resolved),
    so runs with other options, or of two folders with the same name, write beside each other, never over."""
    import hashlib
    import json
    import re

    def resolved(v):
        if isinstance(v, str) and v and os.path.exists(os.path.expanduser(v)):
            return os.path.realpath(os.path.expanduser(v))
        return v

    canon = {k: resolved(v) for k, v in sorted(config.items())}
    digest = hashlib.sha256(json.dumps(jsonable(canon), sort_keys=True).encode()).hexdigest()[:8]
    readable = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.") or "run"
    return f"{readable}-{digest}"


def tool_config(args) -> dict:
    """The options of a tool's command line that determine its results (output and verbosity left out)."""
    return {k: v for k, v in vars(args).items() if k not in ("out", "quiet", "func", "command") and not callable(v)}
