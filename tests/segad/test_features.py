"""SegAD's statistics against a hand-computed example and against scipy."""

import numpy as np
import pytest
from scipy import stats

from iadbench.segad.features import STATISTICS, feature_names, segment_statistics


def test_hand_computed_example():
    # one 2x2 map, two segments: left column {1, 3}, right column {2, 10}
    maps = np.array([[[1.0, 2.0], [3.0, 10.0]]])
    labels = np.array([[0, 1], [0, 1]])
    out = segment_statistics(maps, labels).reshape(2, 4)
    # quantile 0.995 of two values, linear: a + 0.995 (b - a)
    assert out[0] == pytest.approx([1 + 0.995 * 2, 0.0, -2.0, 2.0])
    assert out[1] == pytest.approx([2 + 0.995 * 8, 0.0, -2.0, 6.0])  # symmetric pair: skew 0, kurtosis 1 - 3 = -2


def test_matches_scipy_on_random_maps():
    rng = np.random.default_rng(0)
    maps = rng.gamma(2.0, size=(5, 16, 16)).astype(np.float16)
    labels = (np.arange(16)[:, None] // 6) * 3 + np.arange(16)[None, :] // 6  # 3x3 uneven grid, 9 segments
    out = segment_statistics(maps, labels).reshape(5, 9, 4)
    for n in range(5):
        for j in range(9):
            a = maps[n][labels == j].astype(np.float64)
            expected = [np.quantile(a, 0.995), stats.skew(a), stats.kurtosis(a), a.mean()]
            assert out[n, j] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_flat_segment_has_zero_shape_statistics_and_names_follow_the_order():
    maps = np.ones((1, 4, 4))
    out = segment_statistics(maps, np.zeros((4, 4), dtype=int))
    assert out.tolist() == [[1.0, 0.0, 0.0, 1.0]]  # scipy would give NaN for skew and kurtosis
    assert feature_names("padim", 2) == [f"padim/s{j}/{s}" for j in range(2) for s in STATISTICS]


def test_shape_mismatch_and_empty_segment_are_refused():
    with pytest.raises(ValueError, match="share their last two dimensions"):
        segment_statistics(np.zeros((1, 4, 4)), np.zeros((5, 5), dtype=int))
    with pytest.raises(ValueError, match="segment 1 has no pixel"):
        segment_statistics(np.zeros((1, 2, 2)), np.array([[0, 0], [2, 2]]))
