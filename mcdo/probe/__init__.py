"""Frozen-feature probes (seed 004): Ridge and SVC under stratified k-fold CV, paired and corrected t-tests;
``mcdo probe``."""
