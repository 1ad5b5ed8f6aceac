"""Robustness signatures (ICL), one module per tier."""
