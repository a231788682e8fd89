import numpy as np
import pytest
from scipy import ndimage

from iadbench.metrics.maps import _inverse_areas, aupro, integrate_to


def region_weights(masks: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-pixel PRO weight 1/(R·|region|), as the production kernel weighs defect pixels."""
    inverse, regions = _inverse_areas(masks)
    return inverse / max(regions, 1), regions


def _brute_force_aupro(maps: np.ndarray, masks: np.ndarray, limit: float) -> float:
    """MVTec AD's definition evaluated threshold by threshold (slow, obviously right)."""
    regions = []
    for i, mask in enumerate(masks):
        labelled, n = ndimage.label(mask, structure=np.ones((3, 3)))
        regions += [(i, labelled == k) for k in range(1, n + 1)]
    negatives = ~masks
    xs, ys = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        predicted = maps >= t
        xs.append((predicted & negatives).sum() / negatives.sum())
        ys.append(np.mean([(predicted[i] & r).sum() / r.sum() for i, r in regions]))
    x, y = np.array(xs), np.array(ys)
    keep = x <= limit
    y_at_limit = np.interp(limit, x, y)
    x_cut, y_cut = np.r_[x[keep], limit], np.r_[y[keep], y_at_limit]
    return float(np.trapezoid(y_cut, x_cut) / limit)


@pytest.mark.parametrize("seed", range(4))
def test_equal_to_brute_force(seed):
    rng = np.random.default_rng(seed)
    masks = np.zeros((4, 24, 24), bool)
    masks[0, 2:6, 3:9] = True
    masks[0, 15:17, 15:22] = True  # a second region in the same image
    masks[1, 10:20, 4:8] = True
    maps = rng.normal(size=masks.shape) + 1.2 * masks
    maps = np.round(maps, 1)  # many ties
    assert aupro(maps, masks) == pytest.approx(_brute_force_aupro(maps, masks, 0.3), abs=1e-9)
    assert aupro(maps.astype(np.float16), masks) == pytest.approx(
        _brute_force_aupro(maps.astype(np.float16).astype(np.float64), masks, 0.3), abs=1e-9
    )


def test_every_region_weighs_the_same_whatever_its_size():
    masks = np.zeros((1, 10, 10), bool)
    masks[0, 0, 0] = True  # 1 pixel
    masks[0, 5:9, 5:9] = True  # 16 pixels
    weights, regions = region_weights(masks)
    assert regions == 2
    assert weights[0, 0, 0] == pytest.approx(0.5) and weights[0, 5:9, 5:9].sum() == pytest.approx(0.5)


def test_perfect_and_useless_maps():
    masks = np.zeros((2, 16, 16), bool)
    masks[0, 4:8, 4:8] = True
    assert aupro(masks.astype(float), masks) == pytest.approx(1.0)
    # constant map: PRO jumps to 1 only at FPR 1, beyond the 0.3 limit -> interpolated area of the diagonal
    assert aupro(np.zeros(masks.shape), masks) == pytest.approx(0.15)
    assert np.isnan(aupro(np.zeros((1, 4, 4)), np.zeros((1, 4, 4), bool)))


def test_integrate_to_interpolates_at_the_limit():
    x, y = np.array([0.0, 0.2, 0.6]), np.array([0.0, 1.0, 1.0])
    assert integrate_to(x, y, 0.3) == pytest.approx(0.1 + 0.1)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        aupro(np.zeros((2, 8, 8)), np.zeros((2, 8, 9), bool))


def test_agrees_with_anomalib_aupro():
    """anomalib 2.7's AUPRO (same definition, float32 arithmetic) agrees to well within 1e-3."""
    import torch
    from anomalib.metrics.aupro import _AUPRO

    rng = np.random.default_rng(7)
    masks = np.zeros((6, 64, 64), bool)
    masks[0, 5:15, 5:20] = True
    masks[1, 30:40, 30:34] = True
    masks[1, 50:52, 2:10] = True
    masks[3, 20:44, 20:44] = True
    maps = (rng.normal(size=masks.shape) + 1.5 * masks).astype(np.float32)
    reference = _AUPRO(fpr_limit=0.3)
    reference.update(torch.from_numpy(maps), torch.from_numpy(masks.astype(int)))
    assert aupro(maps, masks) == pytest.approx(float(reference.compute()), abs=1e-5)
