"""mcdo: claims about vision-language encoders (CLIP, SigLIP, SigLIP2), as rerunnable tests.

Nothing is downloaded at run time unless ``MCDO_ALLOW_DOWNLOAD=1``: mcdo's own model loads and commands run in
Hugging Face's offline mode (``mcdo.env.offline``), so a missing weight fails at once instead of retrying over the
network. Importing mcdo changes nothing for the rest of the process (a notebook's own Hugging Face code included).
"""
__version__ = "0.1.0"
