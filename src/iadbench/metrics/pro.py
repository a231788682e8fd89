"""AUPRO: the per-region-overlap curve integrated up to a false-positive-rate limit (MVTec AD evaluation).

For a threshold t, with R ground-truth regions (8-connected components of all masks) over all images:

    PRO(t) = (1/R) Σ_k |{p ∈ region_k : s(p) ≥ t}| / |region_k|,     FPR(t) = FP(t) / #(pixels outside every region)

AUPRO@L = (1/L) ∫_0^L PRO d(FPR), by the trapezoidal rule with the curve linearly interpolated at FPR = L
(Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV 2021, and its evaluation code; L = 0.3).

PRO(t) is a weighted true-positive count — each defect pixel weighs 1/(R·|region|) — so it comes from the same
counting kernel as every other curve (:func:`iadbench.metrics.counts.confusion_counts`), in one pass.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from iadbench.metrics.counts import Counts, confusion_counts

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def region_weights(masks: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-pixel weight ``1/(R·|region|)`` inside defect regions (0 elsewhere), and the region count R."""
    masks = np.asarray(masks, dtype=bool)
    flat = masks[None] if masks.ndim == 2 else masks
    inverse_area = np.zeros(flat.shape, dtype=np.float64)
    regions = 0
    for i, mask in enumerate(flat):
        labelled, n = ndimage.label(mask, structure=EIGHT_CONNECTED)
        if n:
            area = np.bincount(labelled.ravel()).astype(np.float64)
            inverse_area[i] = np.where(labelled > 0, 1.0 / area[labelled], 0.0)
            regions += n
    weights = inverse_area / regions if regions else inverse_area
    return weights.reshape(masks.shape), regions


def pro_counts(maps: np.ndarray, masks: np.ndarray) -> Counts:
    """Counts whose TP at threshold t is PRO(t) (weights sum to ``n_pos`` = 1) and FP the negative pixels."""
    masks = np.asarray(masks, dtype=bool)
    if masks.shape != np.shape(maps):
        raise ValueError(f"maps {np.shape(maps)} and masks {masks.shape} must have the same shape")
    weights, _ = region_weights(masks)
    return confusion_counts(np.asarray(maps), masks, weights)


def integrate_to(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """∫_0^limit y dx for a curve sorted by x (starting at x = 0), interpolating y linearly at x = limit."""
    inside = x <= limit
    xs, ys = x[inside], y[inside]
    if xs[-1] < limit and inside.sum() < len(x):
        k = int(np.argmax(~inside))
        x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
        y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0) if x1 > x0 else y1
        xs, ys = np.r_[xs, limit], np.r_[ys, y_lim]
    return float(np.trapezoid(ys, xs))


def aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit``; NaN without defect regions or good pixels."""
    c = pro_counts(maps, masks)
    if c.n_pos == 0 or c.n_neg == 0:
        return float("nan")
    fpr = np.r_[0.0, c.fp / c.n_neg]
    pro = np.r_[0.0, c.tp / c.n_pos]
    return integrate_to(fpr, pro, fpr_limit) / fpr_limit
