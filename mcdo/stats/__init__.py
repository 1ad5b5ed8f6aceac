"""Statistics of mcdo: pure functions on numpy arrays.

Layouts: trial scores ``[K trials, N images]``; samples ``[T, N, D]``;
detection scores ``[N]`` with labels 1 = positive; probabilities ``[N, C]``.
"""
from .bootstrap import (auroc_ci_hanley_mcneil, binomial_ci, bootstrap_ci, jackknife_ci_trials, mean_t_ci,
                        spearman_ci_fisher)
from .calibration import brier, ece, entropy, nll
from .detection import aupr, auroc, detection_summary, fpr_at_tpr, fpr_at_tpr_closest
from .paired import PairedChange, paired_change
from .reliability import (
    GATE_ICC,
    GATE_SNR,
    GATE_SPEARMAN,
    GateResult,
    PairwiseSpearman,
    icc,
    icc_from_snr,
    passes_needed,
    pooled_spearman,
    spearman_mapping_error,
    predicted_gate_figures,
    predicted_snr,
    snr_per_pass,
    pairwise_spearman,
    reliability_gate,
    signal_noise,
    snr,
    spearman_brown,
    spearman_from_pearson,
)
from .spectra import effective_rank, kurtosis, participation_ratio

__all__ = [name for name in dir() if not name.startswith("_")]
