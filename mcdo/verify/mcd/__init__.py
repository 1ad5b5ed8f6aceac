"""MC dropout on CLIP vs SigLIP2 (seed 000): one module per tier (math, arch, recorded, proxy, gpu)."""
