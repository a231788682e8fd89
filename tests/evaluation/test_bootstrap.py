"""The tables' confidence intervals against SciPy's percentile bootstrap on the same data (an independent reference).

Both are Monte-Carlo estimates from different random streams: with 20 000 resamples each, the 2.5 % and 97.5 %
quantiles of the two bootstrap distributions agree to about 0.005 on these data (their standard error is ~0.002);
a wrong statistic (an unpaired ratio, a mean of ratios, a quantile at α instead of α/2) moves them by 0.02 or more.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from iadbench.evaluation.tables import auroc_replicates, ratio_ci
from iadbench.params import EvaluateParams

P = EvaluateParams(aupro_fpr_limit=0.3, bootstrap=20_000, confidence=0.95, seed=0, exclude_prefill_accepted=True)
TOL = 0.006


def _scipy(data: tuple[np.ndarray, ...], statistic, paired: bool = True) -> tuple[float, float]:
    ci = stats.bootstrap(data, statistic, paired=paired, vectorized=True, n_resamples=20_000, method="percentile",
                         confidence_level=0.95, random_state=np.random.default_rng(1)).confidence_interval  # fmt: skip
    return ci.low, ci.high


def test_mean_iou_interval_is_scipys_percentile_bootstrap():
    rng = np.random.default_rng(7)
    iou = np.clip(rng.beta(2, 3, 60) + (rng.random(60) < 0.2) * 0.3, 0, 1)  # skewed, some near 1
    lo, hi = ratio_ci(iou, np.ones(len(iou)), P, "miou")
    ref_lo, ref_hi = _scipy((iou,), lambda x, axis=-1: x.mean(axis=axis))
    assert lo == pytest.approx(ref_lo, abs=TOL) and hi == pytest.approx(ref_hi, abs=TOL)


def test_pooled_ratio_interval_resamples_images_in_pairs():
    """Pooled IoU = Σtp / Σ(tp + fp + fn): numerator and denominator of an image are drawn together."""
    rng = np.random.default_rng(8)
    tp = rng.integers(0, 400, 50).astype(float)
    den = tp + rng.integers(1, 600, 50)
    lo, hi = ratio_ci(tp, den, P, "piou")
    ref_lo, ref_hi = _scipy((tp, den), lambda a, b, axis=-1: a.sum(axis=axis) / b.sum(axis=axis))
    assert lo == pytest.approx(ref_lo, abs=TOL) and hi == pytest.approx(ref_hi, abs=TOL)


def test_auroc_replicates_are_a_class_stratified_bootstrap():
    """Each class is resampled within itself (SciPy: two unpaired samples, the AUROC as the statistic)."""
    rng = np.random.default_rng(9)
    pos, neg = rng.normal(1.0, 1.0, 30), rng.normal(0.0, 1.0, 40)
    scores = np.r_[pos, neg]
    labels = np.r_[np.ones(30, bool), np.zeros(40, bool)]
    p = EvaluateParams(aupro_fpr_limit=0.3, bootstrap=4000, confidence=0.95, seed=0, exclude_prefill_accepted=True)
    reps = auroc_replicates(scores, labels, p, "auroc")

    def auc(a, b, axis=-1):  # Mann-Whitney U / (n_pos n_neg), ties count one half
        greater = (a[..., :, None] > b[..., None, :]).mean(axis=(-2, -1))
        return greater + 0.5 * (a[..., :, None] == b[..., None, :]).mean(axis=(-2, -1))

    ci = stats.bootstrap((pos, neg), auc, paired=False, vectorized=True, n_resamples=4000, method="percentile",
                         random_state=np.random.default_rng(1)).confidence_interval  # fmt: skip
    lo, hi = np.quantile(reps, [0.025, 0.975])
    assert lo == pytest.approx(ci.low, abs=0.015) and hi == pytest.approx(ci.high, abs=0.015)
    assert np.median(reps) == pytest.approx(auc(pos, neg), abs=0.01)


def test_no_resamples_no_interval():
    p = EvaluateParams(aupro_fpr_limit=0.3, bootstrap=0, confidence=0.95, seed=0, exclude_prefill_accepted=True)
    assert all(np.isnan(ratio_ci(np.ones(3), np.ones(3), p, "k")))
