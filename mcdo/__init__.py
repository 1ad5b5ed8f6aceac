"""mcdo: claims about vision-language encoders (CLIP, SigLIP, SigLIP2), as rerunnable tests."""
__version__ = "0.1.0"
