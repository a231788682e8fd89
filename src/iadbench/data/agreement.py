"""Inter-annotator agreement beyond chance: Fleiss' kappa, per defect category and for the background.

For N items, each rated by n_i ≥ 2 annotators into k classes, with n_ij annotators choosing class j for item i:

    P_i = (Σ_j n_ij² − n_i) / (n_i (n_i − 1)),   P̄ = mean_i P_i,
    p_j = Σ_i n_ij / Σ_i n_i,                      P̄_e = Σ_j p_j²,
    κ = (P̄ − P̄_e) / (1 − P̄_e)

(Fleiss, "Measuring nominal scale agreement among many raters", Psychological Bulletin 76(5), 1971; the per-item
P_i with varying n_i as in Fleiss, Levin & Paik, "Statistical Methods for Rates and Proportions", 2003). A multi-label
defect category c is rated as the binary question "does c apply?" (classes: chosen / not chosen by each annotator).
κ is 1 for perfect agreement and 0 for agreement at chance level; it is undefined (None) with fewer than one item
rated by two annotators, or when every rating falls into a single class (P̄_e = 1).
"""

from __future__ import annotations

import numpy as np


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """κ of an (items × classes) matrix of rating counts; items rated by fewer than two annotators are ignored."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.sum(axis=1)
    counts, n = counts[n >= 2], n[n >= 2]
    if not len(counts):
        return None
    p_item = ((counts**2).sum(axis=1) - n) / (n * (n - 1))
    p_class = counts.sum(axis=0) / n.sum()
    expected = float((p_class**2).sum())
    if expected >= 1.0 - 1e-12:
        return None
    return float((p_item.mean() - expected) / (1.0 - expected))


def binary_counts(chosen: np.ndarray, raters: np.ndarray) -> np.ndarray:
    """(items × 2) counts for a yes/no question: ``chosen`` annotators said yes out of ``raters``."""
    chosen, raters = np.asarray(chosen, dtype=np.float64), np.asarray(raters, dtype=np.float64)
    return np.stack([chosen, raters - chosen], axis=1)
