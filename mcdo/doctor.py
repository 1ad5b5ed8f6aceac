"""``mcdo doctor``: what this machine has and lacks for the gpu tier, so a GPU machine is prepared in one pass.

For the machine: the GPU, the Hugging Face cache and the download setting, the tokenizer library. For each
registered model: the weight and tokenizer files its backend loads, with their Hugging Face repo, present or
missing. For each data set: the path it was found at, or the path expected. For each gpu-tier claim: ready, the
list of what is missing (the very check its evaluator makes before any work: a dry run of it), or not implemented.
Nothing is loaded or downloaded.
"""
from __future__ import annotations

import os

from . import env
from .data.folders import DEVKIT, IMAGENET_LAYOUTS, MOS_SETS, OOD_LAYOUTS
from .errors import MissingResource
from .models.encoder import resolve_backend
from .models.files import hf_cache, needed_files
from .models.registry import REGISTRY
from .verify import catalog, engine
from .verify.prerequisites import Ready


def _machine() -> list[str]:
    import torch

    gpu = (f"{torch.cuda.device_count()} visible ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available()
           else "none visible: the gpu tier runs on the CPU (MCDO_ALLOW_CPU=1: a rehearsal, every record says so)"
           if _setting(env.cpu_allowed) == "" and env.cpu_allowed()
           else "none visible: the gpu tier skips (CPU tiers still run; MCDO_ALLOW_CPU=1 rehearses it on the CPU)")
    try:
        import google.protobuf
        import sentencepiece

        spm = f"installed (sentencepiece {sentencepiece.__version__}, protobuf {google.protobuf.__version__})"
    except ImportError:
        spm = "MISSING: pip install sentencepiece protobuf (SigLIP's tokenizer)"
    home = os.environ.get("HF_HOME")
    return [f"GPU: {gpu}",
            f"Hugging Face cache: {hf_cache()} (HF_HOME{'=' + home if home else ' unset'}); downloads "
            + ("allowed (MCDO_ALLOW_DOWNLOAD=1)" if os.environ.get("MCDO_ALLOW_DOWNLOAD") == "1"
               else "off: run `mcdo doctor --fetch` once on a machine with network to fetch what is missing"),
            f"SigLIP tokenizer libraries: {spm}",
            f"MCDO_DEVICE: {os.environ.get('MCDO_DEVICE') or '(unset: cuda when visible, else cpu)'}"
            + _setting(env.device),
            f"MCDO_CACHE_DIR: {os.environ.get('MCDO_CACHE_DIR') or '(unset: ~/.cache/mcdo)'}" + _setting(env.cache_dir),
            f"MCDO_SIGLIP2_BACKEND: {os.environ.get('MCDO_SIGLIP2_BACKEND') or '(unset: open_clip)'}"
            + _setting(lambda: resolve_backend(REGISTRY["siglip2-vit-b-16"], None))]


def _setting(check) -> str:
    """'' when a setting is usable here, else ' -- BAD: <why and what to do>' (doctor reports, never raises)."""
    try:
        check()
    except (ValueError, OSError) as e:
        return f" -- BAD: {e}"
    return ""


def _models() -> list[str]:
    out = []
    for spec in REGISTRY.values():
        if spec.family == "proxy" or spec.tiny:
            continue
        try:
            backend = resolve_backend(spec, None)
        except ValueError as e:  # a bad MCDO_SIGLIP2_BACKEND: said once per model, the rest still listed
            out.append(f"BAD     {spec.name}: {e}")
            continue
        files = needed_files(spec, backend)
        ok = all(n.present for n in files)
        out.append(f"{'ok     ' if ok else 'MISSING'} {spec.name} [{backend}]")
        out += [f"          {'present' if n.present else 'missing'}: {n.describe()}" for n in files]
    return out


def _data(ctx: engine.Context) -> list[str]:
    """Every data set a gpu-tier claim reads (as the claims' own dry-run checks looked for them): where it was
    found, or what is missing and how to lay it out."""
    try:
        root = env.data_root()
    except MissingResource as e:
        head = [f"MCDO_DATA_ROOT: unset ({e.how})",
                f"  expected: <root>/{IMAGENET_LAYOUTS[0]}/<synset>/*.JPEG (or flat with <root>/{DEVKIT[0]}/), "
                + ", ".join(f"<root>/{OOD_LAYOUTS[s][0]}" for s in MOS_SETS)]
    else:
        head = [f"MCDO_DATA_ROOT: {root}"]
    return head + [f"  {v.split(' ', 1)[0]:7s} {name}: {v.split(' ', 1)[1].strip()}" if " " in v else f"  {name}: {v}"
                   for name, v in sorted(ctx.data_seen.items())]


def _recorded() -> list[str]:
    from .data import recorded as R

    try:
        models = R.models()
    except MissingResource as e:
        return [f"MCDO_RECORDED_DIR: {e.what}: {e.how} (the recorded tier skips; the gpu MC-dropout claims then "
                "draw their own images instead of the recorded run's 500)"]
    return [f"MCDO_RECORDED_DIR: {env.recorded_dir()}: "
            + "; ".join(f"{m} T = {', '.join(map(str, R.available_T(m)))}" for m in models)]


def claim_status(ctx: engine.Context | None = None) -> dict[str, str]:
    """Each gpu-tier claim: 'ready', 'missing ...' (what its evaluator's own check names), 'not implemented'."""
    ctx = ctx or engine.Context(progress=False)
    ctx.dry_run = True
    implemented = engine.implemented()
    out = {}
    for claim_id, tier in catalog.pairs(("gpu",)):
        if (claim_id, tier) not in implemented:
            out[claim_id] = "not implemented"
            continue
        try:
            records = engine.evaluate(claim_id, tier, ctx)
        except Ready:
            out[claim_id] = "ready"
            continue
        except (ValueError, OSError) as e:  # a bad setting (MCDO_SIGLIP2_BACKEND, MCDO_DEVICE, ...): say it, go on
            out[claim_id] = f"cannot check: {e}"
            continue
        reasons = {r.model: r.details.get("missing", r.reason) for r in records}  # what is missing, not how
        if all(v.startswith("ready") for v in reasons.values()):
            out[claim_id] = "ready"
        elif len(reasons) == 1:
            out[claim_id] = next(iter(reasons.values()))
        else:
            out[claim_id] = " | ".join(f"{m}: {'ready' if v.startswith('ready') else v}" for m, v in reasons.items())
    return out


def report(status: dict[str, str] | None = None, ctx: engine.Context | None = None) -> str:
    """The whole doctor's report, as text (``status``: ``claim_status(ctx)``, computed here when not given)."""
    ctx = ctx or engine.Context(progress=False)
    status = claim_status(ctx) if status is None else status
    lines = ["# mcdo doctor", "", "## Machine", *_machine(), "", "## Models (pretrained files, looked up in the cache)",
             *_models(), "", "## Data (every data set a gpu-tier claim reads)", *_data(ctx), *_recorded(), "",
             "## gpu-tier claims"]
    lines += [f"{k:7s} {v}" for k, v in status.items()]
    ready = sum(v == "ready" for v in status.values())
    todo = sum(v == "not implemented" for v in status.values())
    lines += ["", f"{ready} of {len(status)} gpu-tier claims ready, {len(status) - ready - todo} missing something, "
              f"{todo} not implemented"]
    return "\n".join(lines)


def unready(status: dict[str, str], ids: list[str] | None = None) -> dict[str, str]:
    """The claims asked for (``ids``, else every implemented gpu-tier claim) that are not ready, with why. A claim
    named in ``ids`` that is not implemented counts as not ready; unnamed, it is listed by the report only."""
    unknown = [i for i in ids or [] if i not in status]
    if unknown:
        raise KeyError(f"no gpu-tier claim {', '.join(unknown)}; gpu-tier claims: {', '.join(status)}")
    asked = ids or [k for k, v in status.items() if v != "not implemented"]
    return {k: status[k] for k in asked if status[k] != "ready"}


def recorded_unready() -> dict[str, str]:
    """What the recorded tier lacks here (``MCDO_RECORDED_DIR`` unset or without a recorded run), or nothing."""
    from .data import recorded as R

    try:
        R.models()
    except MissingResource as e:
        return {"MCDO_RECORDED_DIR": f"{e.what}: {e.how}"}
    return {}


TOKENIZER_PATTERNS = ("tokenizer*", "special_tokens_map.json", "*.model", "vocab*", "merges.txt", "added_tokens.json")


def fetch(extra_models: list[str] | tuple[str, ...] = (), say=print) -> list[str]:
    """``mcdo doctor --fetch``: download every weight and tokenizer file the offline loads will look for and the
    cache lacks (the registry's models through their backends, the fine-tuned classifier, and ``extra_models``
    given as ``--model`` specs), into the Hugging Face cache in the hub's own layout. What is already cached is
    not fetched again. Returns what was fetched; a file the hub does not have is named, the rest still fetched."""
    from huggingface_hub import hf_hub_download, snapshot_download

    from .env import online
    from .model_specs import get_spec
    from .models.classifier import FINETUNED_CLIP
    from .models.files import HF_WEIGHTS, hub_file, needed_files, timm_repo, user_files

    wanted: list[tuple[str, str, tuple[str, ...]]] = []  # (what, repo, files) not cached
    for spec in REGISTRY.values():
        if spec.family == "proxy" or spec.tiny:
            continue
        wanted += [(n.what, n.repo, n.files) for n in needed_files(spec, resolve_backend(spec, None)) if not n.present]
    repo = timm_repo(FINETUNED_CLIP)
    if not hub_file(repo, HF_WEIGHTS):
        wanted.append(("weights", repo, HF_WEIGHTS))
    for name in extra_models:
        wanted += [(n.what, n.repo, n.files) for n in user_files(get_spec(name)) if not n.present]
    got, failed = [], []
    with online():
        for what, repo, files in dict.fromkeys(wanted):
            try:
                if what == "tokenizer":
                    snapshot_download(repo, allow_patterns=list(TOKENIZER_PATTERNS))
                    got.append(f"{repo} tokenizer")
                    continue
                for i, f in enumerate(files):
                    try:
                        hf_hub_download(repo, f)
                        got.append(f"{repo}/{f}")
                        break
                    except Exception:  # noqa: BLE001  (this name is not in the repo: try the next)
                        if i == len(files) - 1:
                            raise
            except Exception as e:  # noqa: BLE001  (named, the others still fetched)
                failed.append(f"{repo} {what}: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
    for g in got:
        say(f"fetched {g}")
    for f in failed:
        say(f"NOT FETCHED {f}")
    say(f"mcdo doctor --fetch: {len(got)} fetched, {len(failed)} not fetched, into {hf_cache()}")
    return got
