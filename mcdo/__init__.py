"""mcdo: claims about vision-language encoders (CLIP, SigLIP, SigLIP2), as rerunnable tests.

Nothing is downloaded at run time unless ``MCDO_ALLOW_DOWNLOAD=1``: the Hugging Face hub is put
in offline mode on import, so a missing weight fails at once instead of retrying over the network.
"""
import os as _os
import sys as _sys

__version__ = "0.1.0"

if _os.environ.get("MCDO_ALLOW_DOWNLOAD") != "1":
    _os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if "huggingface_hub" in _sys.modules:  # imported before us: flip the flag it already read
        try:
            import huggingface_hub.constants as _c

            _c.HF_HUB_OFFLINE = True
        except (ImportError, AttributeError):
            pass
