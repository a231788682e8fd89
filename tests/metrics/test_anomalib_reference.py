"""iadbench's metrics against anomalib 2.7's metric classes: equal within 1e-3 where the definitions agree.

Where they differ (documented in docs/metrics.md):
- anomalib's AUROC / F1Max use torchmetrics binary curves, which apply a sigmoid to scores outside [0, 1]; on raw
  anomaly scores (PatchCore, PaDiM: tens to thousands) the sigmoid saturates in float32 and ties distinct scores.
  iadbench never transforms scores, so its values do not change under a monotone rescaling.
- anomalib's PGn/PBn take an interpolated quantile of one class as the threshold; iadbench takes the best actual
  threshold meeting the bound. They agree up to the samples lying between two adjacent order statistics.
"""

import numpy as np
import pytest
import torch

from iadbench.metrics.counts import confusion_counts
from iadbench.metrics.curves import auroc, f1_max, tnr_at_fnr, tpr_at_fpr
from iadbench.metrics.rules import fit_threshold


def _scores(seed: int, n_good: int = 5000, n_bad: int = 2000):
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(0, 1, n_good), rng.normal(1.5, 1, n_bad)]
    labels = np.r_[np.zeros(n_good, bool), np.ones(n_bad, bool)]
    return scores, labels


def _anomalib(metric, scores, labels) -> float:
    metric.update(torch.tensor(scores, dtype=torch.float32), torch.tensor(labels.astype(int)))
    return float(metric.compute())


@pytest.mark.parametrize("seed", range(3))
def test_auroc_and_f1max_equal_anomalib_on_unit_interval_scores(seed):
    from anomalib.metrics.auroc import _AUROC
    from anomalib.metrics.f1_score import _F1Max

    scores, labels = _scores(seed)
    unit = 1 / (1 + np.exp(-scores))  # already in [0, 1]: torchmetrics leaves them alone
    c = confusion_counts(unit, labels)
    assert auroc(c) == pytest.approx(_anomalib(_AUROC(), unit, labels), abs=1e-3)
    assert f1_max(c)[0] == pytest.approx(_anomalib(_F1Max(), unit, labels), abs=1e-3)


def test_raw_scores_are_never_squashed():
    from anomalib.metrics.auroc import _AUROC

    scores, labels = _scores(0)
    raw = 40 + 25 * scores  # PatchCore-like magnitudes
    ours = auroc(confusion_counts(raw, labels))
    assert ours == pytest.approx(auroc(confusion_counts(scores, labels)), abs=1e-12)  # invariant
    theirs = _anomalib(_AUROC(), raw, labels)
    assert abs(theirs - ours) > 0.05, "anomalib's sigmoid ties saturated scores (documented difference)"


@pytest.mark.parametrize("seed", range(3))
def test_pg_and_pb_equal_anomalib_within_1e3(seed):
    from anomalib.metrics.pg_pb import _PBn, _PGn

    scores, labels = _scores(seed)
    c = confusion_counts(scores, labels)
    for n in (0.02, 0.05):
        assert tnr_at_fnr(c, n) == pytest.approx(_anomalib(_PGn(fnr=n), scores, labels), abs=1e-3)
        assert tpr_at_fpr(c, n) == pytest.approx(_anomalib(_PBn(fpr=n), scores, labels), abs=1e-3)


def test_pg_differs_from_anomalib_on_a_tiny_sample_as_documented():
    from anomalib.metrics.pg_pb import _PGn

    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.9])
    labels = np.array([0, 0, 0, 1, 0, 1], bool)
    # exact: FNR <= 50 % allows the threshold 0.9 (0.35 missed): every good image is below it, TNR = 1
    assert tnr_at_fnr(confusion_counts(scores, labels), 0.5) == 1.0
    # anomalib: threshold = interpolated median of the bad scores (0.625) -> TNR = 1 as well, but at 0.2 FNR:
    assert tnr_at_fnr(confusion_counts(scores, labels), 0.2) == 0.75  # threshold 0.35, must catch both
    assert _anomalib(_PGn(fnr=0.2), scores, labels) == pytest.approx(1.0)  # quantile 0.46 lets 0.35 slip


def test_pr_t_on_validation_reaches_validation_f1_max():
    scores, labels = _scores(4, 300, 60)
    c = confusion_counts(scores, labels)
    assert fit_threshold(c, "pr").f1 == pytest.approx(f1_max(c)[0], abs=1e-12)
    assert fit_threshold(c, "pr").threshold == f1_max(c)[1]
