"""SegAD's features: four statistics of an anomaly map over each segment (Baitieva et al., CVPR 2024, §4).

For a map ``A`` and the pixels ``x_1..x_n`` of segment ``j`` (values ``a_i = A(x_i)``, mean ``μ``, central moments
``m_k = (1/n) Σ (a_i − μ)^k``):

- ``q995`` = the 99.5 % quantile of the ``a_i`` (linear interpolation between order statistics, numpy's default);
- ``skew`` = ``m_3 / m_2^{3/2}`` (the biased estimator, ``scipy.stats.skew`` with its defaults);
- ``kurtosis`` = ``m_4 / m_2^2 − 3`` (Fisher's excess kurtosis, biased: ``scipy.stats.kurtosis``'s defaults);
- ``mean`` = ``μ``.

A segment whose values are all equal (``m_2 = 0``) has skewness and kurtosis 0 here, where scipy returns NaN; an
image's features are ``K·L·4`` values for K detectors and L segments, in the order detector, segment, statistic.
"""

from __future__ import annotations

import numpy as np

STATISTICS = ("q995", "skew", "kurtosis", "mean")
QUANTILE = 0.995


def segment_statistics(maps: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(N, L·4)`` statistics of ``maps`` ``(N, S, S)`` over the segments of ``labels`` ``(S, S)`` (0..L-1)."""
    if maps.ndim != 3 or maps.shape[1:] != labels.shape:
        raise ValueError(f"maps {maps.shape} and segments {labels.shape} must share their last two dimensions")
    n_segments = int(labels.max()) + 1
    flat = labels.reshape(-1)
    values = maps.reshape(len(maps), -1).astype(np.float64)
    out = np.zeros((len(maps), n_segments, len(STATISTICS)), dtype=np.float64)
    for j in range(n_segments):
        a = values[:, flat == j]
        if a.shape[1] == 0:
            raise ValueError(f"segment {j} has no pixel")
        mean = a.mean(axis=1)
        centred = a - mean[:, None]
        m2, m3, m4 = ((centred**k).mean(axis=1) for k in (2, 3, 4))
        flat_segment = m2 <= np.finfo(np.float64).tiny * 1e3
        safe = np.where(flat_segment, 1.0, m2)
        out[:, j, 0] = np.quantile(a, QUANTILE, axis=1)
        out[:, j, 1] = np.where(flat_segment, 0.0, m3 / safe**1.5)
        out[:, j, 2] = np.where(flat_segment, 0.0, m4 / safe**2 - 3.0)
        out[:, j, 3] = mean
    return out.reshape(len(maps), -1)


def feature_names(detector: str, n_segments: int) -> list[str]:
    """Names of one detector's columns: ``<detector>/s<j>/<statistic>``, in :func:`segment_statistics`'s order."""
    return [f"{detector}/s{j}/{s}" for j in range(n_segments) for s in STATISTICS]
