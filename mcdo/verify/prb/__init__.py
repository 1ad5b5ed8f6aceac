"""SigLIP vs CLIP frozen-feature probes (seed 004): one module per tier (arch, gpu)."""
