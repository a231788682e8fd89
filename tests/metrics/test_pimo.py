"""AUPIMO with the counting kernel: against anomalib's own implementation on the same maps, and cases with a known
answer."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from iadbench.metrics.pimo import aupimo


def _maps(n_normal: int, n_anomalous: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-normal noise; each anomalous image has a square defect raised by a random amount (float16, as stored)."""
    rng = np.random.default_rng(seed)
    maps = np.abs(rng.normal(0, 1, (n_normal + n_anomalous, size, size)))
    masks = np.zeros(maps.shape, bool)
    for i in range(n_normal, n_normal + n_anomalous):
        r = int(rng.integers(2, size // 4))
        y, x = rng.integers(r, size - r, 2)
        masks[i, y - r : y + r, x - r : x + r] = True
        maps[i][masks[i]] += rng.uniform(0.2, 4.0)
    return maps.astype(np.float16), masks


@pytest.mark.parametrize(("n_normal", "n_anomalous", "size", "seed"), [(40, 12, 64, 0), (12, 6, 128, 1)])
def test_equal_to_anomalib_on_the_same_maps(n_normal, n_anomalous, size, seed):
    import torch
    from anomalib.metrics.pimo.functional import aupimo_scores

    maps, masks = _maps(n_normal, n_anomalous, size, seed)
    ours = aupimo(maps, masks)
    logging.disable(logging.WARNING)  # anomalib warns below 300 points: a coarse FPR grid is the test's own choice
    try:
        *_, reference, points = aupimo_scores(torch.from_numpy(maps.astype(np.float32)), torch.from_numpy(masks),
                                              force=True)  # fmt: skip
    finally:
        logging.disable(logging.NOTSET)
    reference = reference.numpy()
    assert np.isnan(ours.scores[:n_normal]).all() and np.isnan(reference[:n_normal]).all()
    np.testing.assert_allclose(ours.scores[n_normal:], reference[n_normal:], rtol=0, atol=1e-6)
    assert 0 < ours.points <= points and ours.note is None
    assert ours.fpr_bounds[0] == pytest.approx(1e-5, rel=0.5) and ours.fpr_bounds[1] == pytest.approx(1e-4, rel=0.1)


def test_known_answers():
    """A defect above every normal pixel is found at every budget (1); one below every normal pixel never (0)."""
    maps, masks = _maps(30, 3, 64, 2)
    top = float(maps[:30].max())
    maps[30][masks[30]] = np.float16(top * 2)
    maps[31][masks[31]] = np.float16(-1.0)
    result = aupimo(maps, masks)
    assert result.scores[30] == 1.0 and result.scores[31] == 0.0 and 0 < result.scores[32] <= 1


def test_undefined_and_bad_inputs():
    maps, masks = _maps(0, 3, 32, 3)
    assert np.isnan(aupimo(maps, masks).scores).all() and "normal and anomalous" in aupimo(maps, masks).note
    maps, masks = _maps(2, 2, 16, 4)  # 512 normal pixels: an FPR of 1e-5 cannot be resolved
    result = aupimo(maps, masks)
    assert np.isnan(result.scores).all() and "cannot resolve a shared FPR of 1e-05" in result.note
    with pytest.raises(ValueError, match="float16"):
        aupimo(maps.astype(np.float32), masks)
    with pytest.raises(ValueError, match="fpr_bounds"):
        aupimo(maps, masks, (1e-4, 1e-5))
    with pytest.raises(ValueError, match="same"):
        aupimo(maps, masks[:, :8])
