"""Reference tests for the counting kernel and everything derived from it."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score, roc_curve

from iadbench.metrics.counts import confusion_counts
from iadbench.metrics.curves import auroc, average_precision, f1_max, fpr_at_tpr, rates, tnr_at_fnr, tpr_at_fpr
from iadbench.metrics.curves import roc_curve as our_roc
from iadbench.metrics.rules import fit_threshold, good_only_rule

GOOD_ONLY_RULE = good_only_rule()


def _cases():
    rng = np.random.default_rng(0)
    yield "random", rng.normal(size=2000), rng.random(2000) < 0.05
    yield "ties", rng.integers(0, 7, 1000).astype(float), rng.random(1000) < 0.3
    yield "separable", np.r_[np.zeros(50), np.ones(5)], np.r_[np.zeros(50, bool), np.ones(5, bool)]
    yield "inverted", np.r_[np.ones(50), np.zeros(5)], np.r_[np.zeros(50, bool), np.ones(5, bool)]
    yield "float16 map", rng.random((20, 32, 32)).astype(np.float16), rng.random((20, 32, 32)) < 0.03
    yield "negatives", rng.normal(-5, 3, 500), rng.random(500) < 0.5


@pytest.mark.parametrize(("name", "scores", "labels"), list(_cases()), ids=[c[0] for c in _cases()])
def test_equal_to_scikit_learn(name, scores, labels):
    c = confusion_counts(scores, labels)
    s64, y = scores.astype(np.float64).ravel(), labels.ravel()
    assert auroc(c) == pytest.approx(roc_auc_score(y, s64), abs=1e-9)
    assert average_precision(c) == pytest.approx(average_precision_score(y, s64), abs=1e-9)
    fpr, tpr, thr = roc_curve(y, s64, drop_intermediate=False)
    ours = our_roc(c)
    np.testing.assert_allclose(ours[0], fpr, atol=1e-12)
    np.testing.assert_allclose(ours[1], tpr, atol=1e-12)
    np.testing.assert_array_equal(ours[2][1:], thr[1:])
    best, t = f1_max(c)
    assert best == pytest.approx(f1_score(y, s64 >= t), abs=1e-9)


def test_float16_histogram_path_equals_sort_path():
    rng = np.random.default_rng(1)
    scores = np.r_[rng.normal(size=5000), [0.0, -0.0, 65504, -65504, 1e-7]].astype(np.float16)
    labels = rng.random(scores.size) < 0.2
    fast = confusion_counts(scores, labels)
    slow = confusion_counts(scores.astype(np.float32), labels)
    np.testing.assert_array_equal(fast.thresholds, slow.thresholds.astype(np.float16).astype(np.float64))
    np.testing.assert_array_equal(fast.tp, slow.tp)
    np.testing.assert_array_equal(fast.fp, slow.fp)
    assert np.all(np.diff(fast.thresholds) < 0)


def test_pooled_counts_equal_counts_of_the_concatenation():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=300), rng.normal(1, 1, 200)
    ya, yb = rng.random(300) < 0.2, rng.random(200) < 0.4
    pooled = confusion_counts(a, ya) + confusion_counts(b, yb)
    whole = confusion_counts(np.r_[a, b], np.r_[ya, yb])
    np.testing.assert_array_equal(pooled.thresholds, whole.thresholds)
    np.testing.assert_array_equal(pooled.tp, whole.tp)
    np.testing.assert_array_equal(pooled.fp, whole.fp)


def test_hand_computed_example():
    # scores 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.7 (neg), 0.1 (neg): thresholds 0.9, 0.8, 0.7, 0.1
    c = confusion_counts(np.array([0.9, 0.8, 0.7, 0.7, 0.1]), np.array([1, 0, 1, 0, 0], bool))
    np.testing.assert_array_equal(c.thresholds, [0.9, 0.8, 0.7, 0.1])
    np.testing.assert_array_equal(c.tp, [1, 1, 2, 2])
    np.testing.assert_array_equal(c.fp, [0, 1, 2, 3])
    r = rates(c)
    np.testing.assert_allclose(r["f1"], [2 / 3, 0.5, 2 / 3, 4 / 7])
    np.testing.assert_allclose(r["iou"], [0.5, 1 / 3, 0.5, 0.4])
    # ROC-T: sqrt(TPR (1-FPR)) = sqrt(.5), sqrt(.5*2/3), sqrt(1/3), 0 -> the first threshold
    assert fit_threshold(c, "roc").threshold == 0.9
    # PR-T: F1 ties at 0.9 and 0.7 -> the highest threshold wins
    assert fit_threshold(c, "pr").threshold == 0.9
    iou = fit_threshold(c, "iou")
    assert (iou.threshold, iou.tp, iou.fp, iou.fn, iou.tn) == (0.9, 1.0, 0.0, 1.0, 3.0)
    # AUROC by hand: 5 of 6 (pos, neg) pairs ordered, one tie counted half -> (4 + 0.5) / 6
    assert auroc(c) == pytest.approx(4.5 / 6)


def test_identities():
    rng = np.random.default_rng(3)
    scores, labels = rng.normal(size=3000), rng.random(3000) < 0.1
    scores[labels] += 1.5
    c = confusion_counts(scores, labels)
    assert fpr_at_tpr(c, 0.95) == pytest.approx(1 - tnr_at_fnr(c, 0.05))
    assert fit_threshold(c, "pr").f1 == pytest.approx(f1_max(c)[0])
    # PB2 from its definition
    fpr, tpr = rates(c)["fpr"], rates(c)["tpr"]
    assert tpr_at_fpr(c, 0.02) == pytest.approx(tpr[fpr <= 0.02].max())


def test_edge_cases():
    constant = confusion_counts(np.full(10, 0.5), np.r_[np.ones(3, bool), np.zeros(7, bool)])
    assert len(constant.thresholds) == 1 and auroc(constant) == pytest.approx(0.5)
    all_good = confusion_counts(np.arange(5.0), np.zeros(5, bool))
    assert np.isnan(auroc(all_good)) and np.isnan(average_precision(all_good)) and np.isnan(f1_max(all_good)[0])
    with pytest.raises(ValueError, match="needs anomalous validation samples; use 'good_fpr'"):
        fit_threshold(all_good, "roc")
    good_only = fit_threshold(confusion_counts(np.arange(200.0), np.zeros(200, bool)), GOOD_ONLY_RULE)
    assert good_only.threshold == 198.0 and good_only.fpr == pytest.approx(0.01)
    all_bad = confusion_counts(np.arange(5.0), np.ones(5, bool))
    assert np.isnan(auroc(all_bad)) and average_precision(all_bad) == pytest.approx(1.0)
    empty = confusion_counts(np.array([]), np.array([], bool))
    assert empty.n_pos == empty.n_neg == 0 and np.isnan(auroc(empty))


@pytest.mark.parametrize(
    ("scores", "message"), [(np.array([0.1, np.nan]), "NaN or inf"), (np.array([np.inf, 0]), "NaN or inf")]
)
def test_bad_scores(scores, message):
    with pytest.raises(ValueError, match=message):
        confusion_counts(scores, np.array([True, False]))


def test_shape_mismatch():
    with pytest.raises(ValueError, match="must have the same shape"):
        confusion_counts(np.zeros((4, 4)), np.zeros((4, 5), bool))


def test_unknown_rule():
    with pytest.raises(ValueError, match="unknown threshold rule 'youden'"):
        fit_threshold(confusion_counts(np.arange(4.0), np.array([0, 0, 1, 1], bool)), "youden")
