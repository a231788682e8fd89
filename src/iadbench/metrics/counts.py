"""The confusion-count kernel: TP and FP at every distinct threshold, computed once, exactly.

A score ``s ≥ t`` is predicted anomalous. For the distinct scores ``t_1 > t_2 > … > t_m`` the kernel returns
cumulative float64 counts ``TP_k = #{positives with s ≥ t_k}`` and ``FP_k = #{negatives with s ≥ t_k}``;
``FN_k = P − TP_k`` and ``TN_k = N − FP_k``. Every curve, threshold rule and metric in :mod:`iadbench.metrics` is
derived from these counts (the shape of scikit-learn's ``_binary_clf_curve``), so nothing sorts twice and no
function ever applies a sigmoid to raw scores.

Two exact paths:

- **sort** (any float dtype): one stable argsort of the scores, cumulative sums at the last index of each run of
  equal scores — O(n log n).
- **float16 histogram**: a float16 array has at most 65,536 distinct bit patterns, so counting positives and
  negatives per pattern (``bincount``) and walking the patterns in score order gives the same counts without a
  sort — O(n + 65,536). Anomaly maps are stored as float16, so this is the fast path for pixel metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def safe_divide(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Element-wise ``a / b`` as float64, NaN where ``b`` ≤ 0: an undefined rate is never 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


@dataclass(frozen=True)
class Counts:
    """Cumulative confusion counts at each distinct threshold, thresholds in descending order."""

    thresholds: np.ndarray  # float64, strictly decreasing
    tp: np.ndarray  # float64, non-decreasing
    fp: np.ndarray  # float64, non-decreasing
    n_pos: float
    n_neg: float

    @property
    def fn(self) -> np.ndarray:
        """False negatives ``P − TP``."""
        return self.n_pos - self.tp

    @property
    def tn(self) -> np.ndarray:
        """True negatives ``N − FP``."""
        return self.n_neg - self.fp

    def __add__(self, other: Counts) -> Counts:
        """Pool two count sets (e.g. several products) by merging their thresholds."""
        thresholds = np.union1d(self.thresholds, other.thresholds)[::-1]
        return Counts(
            thresholds,
            _at(self, thresholds, "tp") + _at(other, thresholds, "tp"),
            _at(self, thresholds, "fp") + _at(other, thresholds, "fp"),
            self.n_pos + other.n_pos,
            self.n_neg + other.n_neg,
        )


def _at(counts: Counts, thresholds: np.ndarray, field: str) -> np.ndarray:
    """Counts of ``field`` at arbitrary thresholds (0 above the highest score)."""
    values = getattr(counts, field)
    # number of own thresholds >= t  ->  index of the last one that is still >= t
    k = np.searchsorted(-counts.thresholds, -thresholds, side="right")
    out = np.zeros(len(thresholds), dtype=np.float64)
    has = k > 0
    out[has] = values[k[has] - 1]
    return out


def _validate(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must have the same shape")
    if not np.issubdtype(scores.dtype, np.floating) and not np.issubdtype(scores.dtype, np.integer):
        raise ValueError(f"scores must be numeric, got {scores.dtype}")
    scores, labels = scores.ravel(), labels.ravel().astype(bool)
    if scores.size and not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf")
    return scores, labels


def confusion_counts(scores: np.ndarray, labels: np.ndarray, positive_weights: np.ndarray | None = None) -> Counts:
    """TP/FP at every distinct threshold; the float16 histogram path for float16 input, the sort path otherwise.

    ``positive_weights`` (same shape, used where ``labels`` is true) turns TP into a weighted count: with weight
    ``1/(R·|region|)`` per defect pixel, TP is the mean per-region overlap (see :func:`iadbench.metrics.pro`).
    Edge cases: empty input gives empty curves with ``n_pos = n_neg = 0``; constant scores give one threshold.
    """
    scores, labels = _validate(scores, labels)
    weights = None
    if positive_weights is not None:
        weights = np.asarray(positive_weights, dtype=np.float64).ravel()
        if weights.shape != scores.shape:
            raise ValueError("positive_weights must have the shape of scores")
    if scores.dtype == np.float16:
        return _counts_float16(scores, labels, weights)
    return _counts_sorted(scores, labels, weights)


def _counts_sorted(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None) -> Counts:
    order = np.argsort(scores, kind="stable")[::-1]
    s = scores[order].astype(np.float64)
    y = labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1] if s.size else np.array([], dtype=int)
    fp = np.cumsum(~y, dtype=np.float64)[last]
    if weights is None:
        tp = np.cumsum(y, dtype=np.float64)[last]
        n_pos = float(labels.sum())
    else:
        w = np.where(y, weights[order], 0.0)
        tp = np.cumsum(w)[last]
        n_pos = float(w.sum())
    return Counts(s[last], tp, fp, n_pos, float((~labels).sum()))


def float16_keys(scores: np.ndarray) -> np.ndarray:
    """Map float16 scores to integer keys in [0, 65535] whose order is the float order (sign-magnitude → offset):
    key = 0xFFFF − bits for negative numbers, bits | 0x8000 otherwise. Inverse: :func:`float16_of_keys`.
    """
    bits = np.asarray(scores, dtype=np.float16).view(np.uint16).astype(np.uint32)
    negative = (bits & 0x8000) != 0
    return np.where(negative, 0xFFFF - bits, bits | 0x8000).astype(np.int64)


def float16_of_keys(keys: np.ndarray) -> np.ndarray:
    """The float16 scores (as float64) of keys made by :func:`float16_keys`."""
    keys = np.asarray(keys)
    bits = np.where(keys >= 0x8000, keys & 0x7FFF, 0xFFFF - keys).astype(np.uint16)
    return bits.view(np.float16).astype(np.float64)


class Float16Histogram:
    """Streaming form of the float16 path: add chunks of (scores, labels), read exact :class:`Counts` at the end.

    Memory is two 65,536-bin float64 histograms plus one chunk's keys, whatever the number of pixels, so the
    pixel curves of hundreds of maps need no more than the maps themselves. Positive weights must be > 0 (a
    weight of 0 would make its score vanish from the thresholds).
    """

    def __init__(self) -> None:
        self.pos = np.zeros(65536, dtype=np.float64)
        self.neg = np.zeros(65536, dtype=np.float64)
        self.n_pos_unweighted = 0

    def add(self, scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Count one chunk (any shape; ``scores`` float16, ``labels`` bool, ``weights`` float or None)."""
        scores = np.asarray(scores)
        if scores.dtype != np.float16:
            raise ValueError(f"Float16Histogram needs float16 scores, got {scores.dtype}")
        scores, labels = _validate(scores, labels)
        scores = np.where(scores == 0, np.float16(0), scores)  # -0.0 and +0.0 are one score
        keys = float16_keys(scores)
        self.neg += np.bincount(keys[~labels], minlength=65536)
        pos_w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()[labels]
        self.pos += np.bincount(keys[labels], weights=pos_w, minlength=65536)
        self.n_pos_unweighted += int(labels.sum())

    def counts(self, positive_scale: float = 1.0) -> Counts:
        """Cumulative counts over the distinct scores seen, descending; TP multiplied by ``positive_scale``."""
        present = np.flatnonzero((self.pos > 0) | (self.neg > 0))[::-1]
        tp = np.cumsum(self.pos[present]) * positive_scale
        fp = np.cumsum(self.neg[present])
        return Counts(float16_of_keys(present), tp, fp, float(self.pos.sum()) * positive_scale, float(self.neg.sum()))


def _counts_float16(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray | None) -> Counts:
    histogram = Float16Histogram()
    histogram.add(scores, labels, weights)
    return histogram.counts()
