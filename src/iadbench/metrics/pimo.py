"""AUPIMO: the area under each anomalous image's Per-IMage Overlap curve (Bertoldo et al., 2024), with the counting
kernel of :mod:`iadbench.metrics.counts`.

Definition (anomalib 2.7 ``metrics/pimo/functional.py``, from https://github.com/jpcbertoldo/aupimo): at a threshold
``t`` (``s ≥ t`` is anomalous), the *shared FPR* is the mean over the normal (mask-free) images of each image's pixel
FPR, and an anomalous image's TPR is the share of its mask pixels flagged. The PIMO curve of an image is its TPR
against the shared FPR; AUPIMO integrates it by the trapezoidal rule over ``log(shared FPR)`` between the bounds
(1e-5 and 1e-4 by default), divided by ``log(upper / lower)`` and clipped to [0, 1]: the mean TPR of that image over
a log-uniform false-alarm budget measured on normal images only.

Why our own code, not anomalib's (measured: ``benchmarks/aupimo_speed.py``): anomalib evaluates 300,000 linearly
spaced thresholds between the normal maps' minimum and maximum with a sort and a ``searchsorted`` per image. Our
maps are float16, so every distinct score is one of at most 65,536 keys (:func:`~iadbench.metrics.counts.
float16_keys`): one histogram of the normal pixels and one per anomalous image give the curves *exactly* at every
distinct score, with no threshold grid. Where anomalib's grid is finer than the float16 spacing of the scores (its
default on real maps), its sampled curve has the same points plus repeats of zero width, so the two agree (the
reference test: within 1e-6). As in anomalib, the curve is restricted to thresholds between the normal maps' minimum
and maximum; each bound is the curve point whose shared FPR is closest to it (the first, in ascending-threshold
order, on a tie); points with shared FPR 0 are left out of the log. anomalib refuses fewer than 30 points in the
range unless ``force=True``; here the value is computed as with ``force=True`` and the number of points is returned,
so a small test set's coarse FPR resolution is visible rather than fatal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iadbench.metrics.counts import float16_keys

FPR_BOUNDS = (1e-5, 1e-4)  # anomalib's default integration range of the shared FPR
KEYS = 65536


@dataclass(frozen=True)
class Aupimo:
    """Per-image AUPIMO (NaN for normal images and images without defect pixels) and how it was integrated."""

    scores: np.ndarray  # float64 (N,)
    points: int  # curve points in the integration range (anomalib warns below 300, refuses 30 or fewer)
    fpr_bounds: tuple[float, float]  # the shared FPR actually reached at the lower and upper bound
    note: str | None = None  # why no value could be computed, or None


def _descending_cumulative(histogram: np.ndarray) -> np.ndarray:
    """``out[..., k]`` = count of samples with key ≥ k."""
    return np.cumsum(histogram[..., ::-1], axis=-1)[..., ::-1]


def aupimo(maps: np.ndarray, masks: np.ndarray, fpr_bounds: tuple[float, float] = FPR_BOUNDS) -> Aupimo:
    """AUPIMO of every image of ``maps`` (float16, ``(N, H, W)``) against ``masks`` (bool, same shape).

    Normal images are those whose mask is empty; at least one normal and one anomalous image are needed (else every
    score is NaN and ``note`` says why). Exact at every distinct float16 score (see the module docstring).
    """
    lower, upper = fpr_bounds
    if not 0 < lower < upper <= 1:
        raise ValueError(f"fpr_bounds must satisfy 0 < lower < upper <= 1, got {fpr_bounds}")
    maps = np.asarray(maps)
    if maps.dtype != np.float16:
        raise ValueError(f"aupimo needs float16 maps (the stored maps), got {maps.dtype}")
    masks = np.asarray(masks, dtype=bool)
    if maps.shape != masks.shape or maps.ndim != 3:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must be the same (N, H, W)")
    n = len(maps)
    scores = np.full(n, np.nan)
    anomalous = masks.reshape(n, -1).any(axis=1)
    if not anomalous.any() or anomalous.all():
        return Aupimo(scores, 0, (np.nan, np.nan), "AUPIMO needs normal and anomalous test images")
    flat = np.where(maps == 0, np.float16(0), maps).reshape(n, -1)  # -0.0 and +0.0 are one score
    keys = float16_keys(flat)
    normal_keys = keys[~anomalous]
    pixels = normal_keys.shape[1]
    shared_fpr = _descending_cumulative(np.bincount(normal_keys.ravel(), minlength=KEYS)) / (pixels * len(normal_keys))
    lo_key, hi_key = int(normal_keys.min()), int(normal_keys.max())
    grid = np.arange(lo_key, hi_key + 1)  # thresholds between the normal maps' min and max, ascending
    fpr = shared_fpr[grid]  # descending along the grid
    if not fpr.min() <= lower:
        return Aupimo(scores, 0, (np.nan, np.nan), f"the normal test pixels cannot resolve a shared FPR of {lower:g} "
                      f"(lowest reached: {fpr.min():.3g})")  # fmt: skip
    lower_index = int(np.argmin(np.abs(fpr - lower)))  # the highest-threshold end of the range
    upper_index = int(np.argmin(np.abs(fpr - upper)))
    if upper_index >= lower_index:
        return Aupimo(scores, 0, (np.nan, np.nan), "the FPR bounds meet at one threshold: no range to integrate")
    window = grid[upper_index : lower_index + 1]
    x = fpr[upper_index : lower_index + 1][::-1]  # ascending shared FPR
    finite = x > 0
    distinct = np.r_[True, np.diff(x[finite]) != 0]  # points of zero width in log FPR add no area
    log_x = np.log(x[finite])
    factor = float(np.log(upper / lower))
    for i in np.flatnonzero(anomalous):
        defect = keys[i][masks[i].ravel()]
        tpr = _descending_cumulative(np.bincount(defect, minlength=KEYS))[window][::-1][finite] / len(defect)
        scores[i] = min(max(float(np.trapezoid(tpr, log_x)) / factor, 0.0), 1.0)
    reached = (float(fpr[lower_index]), float(fpr[upper_index]))
    return Aupimo(scores, int(distinct.sum()), reached)
