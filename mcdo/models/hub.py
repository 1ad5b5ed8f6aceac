"""A file of a Hugging Face repo in the local cache: a look-up only, nothing is downloaded (below ``files`` and
``tokenizer``, which both use it)."""
from __future__ import annotations

import os
from pathlib import Path


def hub_file(repo: str, files: tuple[str, ...]) -> str | None:
    """The local path of the first of ``files`` of a Hugging Face repo found in the cache (or in a local folder
    given as the repo), or None: a look-up only, nothing is downloaded."""
    if os.path.isdir(repo):  # a local folder given as the repo (save_pretrained output)
        return next((str(Path(repo) / f) for f in files if (Path(repo) / f).is_file()), None)
    from huggingface_hub import try_to_load_from_cache

    for f in files:
        try:
            hit = try_to_load_from_cache(repo, f)
        except Exception:  # a malformed repo id: nothing cached under it
            return None
        if isinstance(hit, str):
            return hit
    return None
