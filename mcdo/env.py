"""Environment of a run: where recorded measurements, data sets and caches live.

All variables are optional. Nothing here downloads anything.
"""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from .errors import MissingData, MissingResource


def recorded_dir() -> Path:
    """The folder of recorded published measurements (``MCDO_RECORDED_DIR``)."""
    value = os.environ.get("MCDO_RECORDED_DIR")
    if not value:
        raise MissingResource(
            "recorded measurements (MCDO_RECORDED_DIR is unset)",
            "set MCDO_RECORDED_DIR to the folder holding exp0_nested_mc/ (in this workplace: ../shared/recorded)",
        )
    path = Path(value).expanduser()
    if not (path / "exp0_nested_mc").is_dir():
        raise MissingResource(
            f"recorded measurements (no exp0_nested_mc/ under MCDO_RECORDED_DIR={value})",
            "point MCDO_RECORDED_DIR at the recorded folder (it contains PROVENANCE.md and exp0_nested_mc/)",
        )
    return path


def data_root() -> Path:
    """Root of the real data sets (``MCDO_DATA_ROOT``): ImageNet val and the MOS OOD sets."""
    value = os.environ.get("MCDO_DATA_ROOT")
    if not value:
        raise MissingData(
            "real data sets (MCDO_DATA_ROOT is unset)",
            "set MCDO_DATA_ROOT to a folder with imagenet/val/<synset>/*.JPEG and iNaturalist/, SUN/, Places/, dtd/",
        )
    return Path(value).expanduser()


class SettingError(ValueError):
    """A setting (environment variable or option) that cannot work; the message names it and the fix."""


def ensure_writable(path: Path, setting: str) -> Path:
    """Create ``path`` as a folder if needed and check that files can be written there."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise SettingError(f"{setting}={path} is a file, not a folder: point {setting} at a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".mcdo-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise SettingError(f"{setting}={path} cannot be written ({e.strerror or e}): point {setting} at a "
                           "writable folder") from e
    return path


def cache_dir() -> Path:
    """Where features, samples and trained proxy models are cached (``MCDO_CACHE_DIR``)."""
    value = os.environ.get("MCDO_CACHE_DIR")
    path = Path(value).expanduser() if value else Path.home() / ".cache" / "mcdo"
    return ensure_writable(path, "MCDO_CACHE_DIR")


def check_device(value: str, setting: str = "MCDO_DEVICE") -> str:
    """``value`` if torch can run on it here, else a ``SettingError`` naming the setting and what is available."""
    import torch

    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError) as e:
        raise SettingError(f"{setting}={value!r} is not a torch device: use cpu, cuda or cuda:<index>") from e
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise SettingError(f"{setting}={value!r} but no CUDA GPU is visible here: use cpu, or run on a GPU machine")
        if dev.index is not None and dev.index >= n:
            raise SettingError(f"{setting}={value!r} but only {n} CUDA device(s) are visible (cuda:0..cuda:{n - 1})")
    elif dev.type != "cpu":  # mps and others: the sampler's fast paths and bf16 rules are written for CPU and CUDA
        raise SettingError(f"{setting}={value!r}: mcdo runs on cpu or cuda (not {dev.type})")
    return value


def device() -> str:
    """Torch device: ``MCDO_DEVICE`` (checked), else CUDA when available (under torchrun, the GPU of this process's
    ``LOCAL_RANK``, so the ranks of one machine do not all share GPU 0), else CPU."""
    value = os.environ.get("MCDO_DEVICE")
    if value:
        return check_device(value)
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    local = os.environ.get("LOCAL_RANK")
    if local is None:
        return "cuda"
    try:
        index = int(local)
    except ValueError:
        raise SettingError(f"LOCAL_RANK={local!r} is not an integer (torchrun sets it to the process's local rank)")
    return check_device(f"cuda:{index % torch.cuda.device_count()}", "LOCAL_RANK")


def full_fp32() -> str:
    """Float32 products in full precision: TF32 off for CUDA matmuls and cuDNN convolutions (cuDNN allows TF32 by
    default), so a claim run in float32 is float32 on every GPU. Returns the setting, as records state it."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return precision_setting()


def precision_setting() -> str:
    """The float32 setting in force: 'float32' when TF32 is off for both matmuls and convolutions, else which is on."""
    import torch

    tf32 = [n for n, on in (("matmul", torch.backends.cuda.matmul.allow_tf32),
                            ("cuDNN convolutions", torch.backends.cudnn.allow_tf32)) if on]
    return "float32" + (f" with TF32 allowed for {' and '.join(tf32)}" if tf32 else ", TF32 off")


def cpu_allowed() -> bool:
    """``MCDO_ALLOW_CPU=1``: the gpu tier runs without a GPU (a rehearsal of the real files and layouts, e.g.
    with ``--limit``). Never implied: every gpu record of such a run says so in its config (``gpu_waived``)."""
    value = os.environ.get("MCDO_ALLOW_CPU", "")
    if value not in ("", "0", "1"):
        raise SettingError(f"MCDO_ALLOW_CPU={value!r}: use 1 (run the gpu tier on a CPU) or leave it unset")
    return value == "1"


def default_workers(cap: int = 4) -> int:
    """Image-decoding processes: up to ``cap``, never more than the cores this process may use."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(cap, cores))


@lru_cache(maxsize=1)
def git_commit() -> str:
    """Short commit of the checkout (with '+dirty' for uncommitted changes), or 'unknown'."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def visible_gpus() -> int:
    """How many NVIDIA GPUs this machine shows (``nvidia-smi -L``), without initialising CUDA in this process, so
    that ``CUDA_VISIBLE_DEVICES`` can still be set; 0 when there is no driver."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def gpu_for_worker(worker: str | None, n_gpus: int) -> str | None:
    """The GPU a pytest-xdist worker (``gw0``, ``gw1``, ...) takes: worker k gets GPU k mod n; None outside xdist
    or without GPUs."""
    if not worker or not worker.startswith("gw") or n_gpus < 1:
        return None
    return str(int(worker[2:]) % n_gpus)


_OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@contextmanager
def _hub_mode(offline_mode: bool):
    """Hugging Face's offline mode on or off for what runs inside, restored afterwards: the environment variables,
    and the flags ``huggingface_hub`` and ``transformers`` read them into at import."""
    saved_env = {k: os.environ.get(k) for k in _OFFLINE_VARS}
    saved_flags = []
    for k in _OFFLINE_VARS:
        if offline_mode:
            os.environ[k] = "1"
        else:
            os.environ.pop(k, None)
    for module, flag in (("huggingface_hub.constants", "HF_HUB_OFFLINE"), ("transformers.utils.hub", "_is_offline_mode")):
        mod = sys.modules.get(module)
        if mod is None and module == "huggingface_hub.constants":
            try:
                import huggingface_hub.constants as mod
            except ImportError:
                mod = None
        if mod is not None and hasattr(mod, flag):
            saved_flags.append((mod, flag, getattr(mod, flag)))
            setattr(mod, flag, offline_mode)
    try:
        yield
    finally:
        for mod, flag, value in saved_flags:
            setattr(mod, flag, value)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def offline():
    """Hugging Face's offline mode for what runs inside (mcdo's loads and commands), restored afterwards. With
    ``MCDO_ALLOW_DOWNLOAD=1`` nothing changes."""
    if os.environ.get("MCDO_ALLOW_DOWNLOAD") == "1":
        yield
        return
    with _hub_mode(True):
        yield


@contextmanager
def online():
    """The reverse of ``offline``: Hugging Face's hub may be reached (``mcdo doctor --fetch`` only, asked for by
    its flag), restored afterwards."""
    with _hub_mode(False):
        yield


PROVENANCE_PACKAGES = ("mcdo", "torch", "open_clip_torch", "timm", "transformers", "numpy", "scipy", "scikit-learn")


def provenance(device: str | None = None, dtype: str | None = None) -> dict:
    """Where a result came from, as lm-evaluation-harness records it: package versions, Python, the device and
    its name, the dtype chosen, the date, the command line, the commit (with '+dirty'), and every MCDO_* variable
    and the Hugging Face / CUDA variables mcdo reads. Stored in every results file."""
    import datetime
    import platform
    from importlib import metadata

    versions = {}
    for pkg in PROVENANCE_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    name = None
    if device and str(device).startswith("cuda"):
        try:
            import torch

            name = torch.cuda.get_device_name(torch.device(device))
        except Exception:  # no driver, or a bad index: the device string alone says what was asked
            name = None
    elif device:
        name = platform.processor() or platform.machine()
    read = {k: v for k, v in os.environ.items()
            if k.startswith("MCDO_") or k in ("HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                              "CUDA_VISIBLE_DEVICES", "LOCAL_RANK", "WORLD_SIZE", "RANK")}
    return dict(packages=versions, python=platform.python_version(), platform=platform.platform(),
                device=device, device_name=name, dtype=dtype,
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                command=list(sys.argv), commit=git_commit(), environment=dict(sorted(read.items())))
