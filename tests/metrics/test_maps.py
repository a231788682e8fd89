"""Pixel-level counts over map stacks: streaming float16 path vs sort path vs brute force."""

import numpy as np
import pytest

from iadbench.metrics import maps as pm
from iadbench.metrics.counts import confusion_counts
from iadbench.metrics.curves import auroc


def _stack(seed: int, n: int = 40, size: int = 24, dtype=np.float16):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), bool)
    for i in range(0, n, 2):  # every other image anomalous, 1-2 blobs
        for _ in range(rng.integers(1, 3)):
            y, x = rng.integers(0, size - 5, 2)
            masks[i, y : y + rng.integers(2, 6), x : x + rng.integers(2, 6)] = True
    maps = (rng.random((n, size, size)) + 0.8 * masks).astype(dtype)
    return maps, masks


@pytest.mark.parametrize("chunk", [1, 7, 32])
def test_streaming_histogram_equals_one_sort(monkeypatch, chunk):
    monkeypatch.setattr(pm, "CHUNK", chunk)
    maps, masks = _stack(0)
    curves = pm.pixel_curves(maps, masks)
    reference = confusion_counts(maps.astype(np.float32), masks)
    np.testing.assert_array_equal(curves.pixels.tp, reference.tp)
    np.testing.assert_array_equal(curves.pixels.fp, reference.fp)
    assert pm.aupro_from_counts(curves.pro) == pytest.approx(pm.aupro(maps.astype(np.float32), masks), abs=1e-12)
    float32 = pm.pixel_curves(maps.astype(np.float32), masks)
    assert pm.aupro_from_counts(float32.pro) == pytest.approx(pm.aupro_from_counts(curves.pro), abs=1e-12)
    assert auroc(float32.pixels) == pytest.approx(auroc(curves.pixels), abs=1e-12)


def test_per_image_confusion_is_brute_force():
    maps, masks = _stack(1, n=6, size=12, dtype=np.float32)
    thresholds = np.array([0.2, 0.9, 1.5])
    out = pm.per_image_confusion(maps, masks, thresholds)
    for i in range(len(maps)):
        for j, t in enumerate(thresholds):
            p = maps[i] >= t
            assert out["tp"][i, j] == (p & masks[i]).sum() and out["fp"][i, j] == (p & ~masks[i]).sum()
            assert out["fn"][i, j] == (~p & masks[i]).sum() and out["tn"][i, j] == (~p & ~masks[i]).sum()


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_oracle_is_the_best_mean_iou_over_every_threshold(dtype):
    maps, masks = _stack(2, n=8, size=10, dtype=dtype)
    t, best = pm.oracle_threshold(maps, masks)
    keep = masks.any(axis=(1, 2))

    def mean_iou(threshold):
        c = pm.per_image_confusion(maps[keep], masks[keep], [threshold])
        return np.mean(pm.iou(c["tp"], c["fp"], c["fn"]))

    brute = max(mean_iou(x) for x in np.unique(maps[keep]))
    assert best == pytest.approx(brute, abs=1e-12)
    assert mean_iou(t) == pytest.approx(best, abs=1e-12)


def test_oracle_without_defect_pixels_is_undefined():
    maps = np.zeros((2, 4, 4), np.float16)
    t, best = pm.oracle_threshold(maps, np.zeros((2, 4, 4), bool))
    assert np.isnan(t) and np.isnan(best)


def test_iou_is_nan_when_nothing_is_there_and_nothing_predicted():
    assert np.isnan(pm.iou(0, 0, 0)) and pm.iou(0, 3, 0) == 0 and pm.iou(2, 1, 1) == 0.5


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"anomaly maps \(2, 8, 8\) and masks \(2, 4, 4\) differ in shape"):
        pm.pixel_curves(np.zeros((2, 8, 8), np.float16), np.zeros((2, 4, 4), bool))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_map_names_the_image(bad):
    maps = np.zeros((5, 4, 4), np.float16)
    maps[3, 1, 1] = bad
    with pytest.raises(ValueError, match="anomaly map 3 contains NaN or inf"):
        pm.pixel_curves(maps, np.zeros_like(maps, dtype=bool))


def test_constant_maps_give_one_threshold_and_chance_auroc():
    maps = np.full((3, 5, 5), 0.5, np.float16)
    masks = np.zeros((3, 5, 5), bool)
    masks[0, :2] = True
    curves = pm.pixel_curves(maps, masks)
    assert len(curves.pixels.thresholds) == 1 and auroc(curves.pixels) == 0.5
