"""Robustness signatures of a representation space (Crabbe et al. 2023): kurtosis, outlier features,
privileged directions, concepts; ``mcdo signatures``."""
