"""Every fitted threshold rule against a brute-force reference: try every candidate threshold (each distinct score,
prediction ``score >= t``), compute the rule's objective from scratch, keep the best (ties: the highest threshold);
good_fpr keeps the lowest threshold whose false-positive rate is within its budget; the other normal-only rules are
numpy's own statistics of the good scores (``np.mean``, ``np.std``, ``np.max``, ``np.quantile``). Random data with
many ties (integer scores), float16 scores (the histogram path) and float64 scores (the sort path).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from iadbench.metrics.counts import confusion_counts
from iadbench.metrics.rules import fit_threshold, fitted_rules


def _objective(rule: str, tp: int, fp: int, n_pos: int, n_neg: int) -> float:
    fn = n_pos - tp
    tpr, fpr = tp / n_pos, fp / n_neg
    if rule == "roc":
        return math.sqrt(tpr * (1 - fpr))
    if rule == "iou":
        return math.sqrt((tp / (tp + fp + fn) if tp + fp + fn else 0.0) * (1 - fpr))
    if rule == "pr":
        return 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0
    raise AssertionError(rule)


STATISTICS = {  # the normal-only rules as numpy computes them on the good scores g (defaults of params.yaml)
    "good_ksigma": lambda g: np.mean(g) + 3.0 * np.std(g),
    "good_max": lambda g: np.nextafter(np.max(g), np.inf),
    "good_quantile": lambda g: np.quantile(g, 0.95) * 1.421,
}


def brute_force(scores: np.ndarray, labels: np.ndarray, rule: str, fpr_budget: float = 0.01) -> float:
    """The threshold ``rule`` picks, by trying every candidate (numpy's statistic for the other normal-only rules)."""
    if rule in STATISTICS:
        return float(STATISTICS[rule](scores[~labels]))
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    candidates = np.unique(scores.astype(np.float64))[::-1]  # highest first
    if rule == "good_fpr":
        within = [t for t in candidates if ((scores >= t) & ~labels).sum() / n_neg <= fpr_budget + 1e-12]
        return float(within[-1]) if within else float(np.nextafter(candidates[0], np.inf))
    best, best_t = -1.0, None
    for t in candidates:
        pred = scores >= t
        value = _objective(rule, int((pred & labels).sum()), int((pred & ~labels).sum()), n_pos, n_neg)
        if value > best + 1e-12:  # strictly better: on a tie the higher threshold (seen first) stays
            best, best_t = value, float(t)
    return best_t


def _cases(n_cases: int = 60):
    rng = np.random.default_rng(2024)
    for i in range(n_cases):
        n = int(rng.integers(8, 400))
        labels = rng.random(n) < rng.uniform(0.05, 0.6)
        labels[0], labels[1] = True, False  # both classes present
        shift = rng.uniform(0, 3)
        raw = rng.normal(0, 1, n) + shift * labels
        if i % 3 == 0:
            scores = np.round(raw * 2)  # integer-ish: many ties
        elif i % 3 == 1:
            scores = raw.astype(np.float16)  # float16 maps: the histogram path
        else:
            scores = raw
        yield i, scores, labels


@pytest.mark.parametrize("rule", fitted_rules())
def test_each_rule_equals_brute_force(rule):
    for i, scores, labels in _cases():
        fitted = fit_threshold(confusion_counts(scores, labels), rule)
        expected = brute_force(scores.astype(np.float64), labels, rule)
        rel = 1e-12 if rule in ("good_ksigma", "good_quantile") else 0  # a sum's order: the last bits may differ
        assert fitted.threshold == pytest.approx(expected, rel=rel, abs=0), (rule, i)
        pred = scores.astype(np.float64) >= fitted.threshold
        assert (fitted.tp, fitted.fp) == (float((pred & labels).sum()), float((pred & ~labels).sum())), (rule, i)


def test_the_rules_are_the_ones_this_file_knows():
    assert set(fitted_rules()) == {"roc", "iou", "pr", "good_fpr", *STATISTICS}  # a new rule needs its reference here


@pytest.mark.parametrize(
    ("rule", "options", "good", "expected"),
    [  # hand-computed: g = [0, 1, 1, 2, 6] (mean 2, population σ √(22/5), sorted positions 0..4)
        ("good_ksigma", {"good_k": 1.0}, [0, 1, 1, 2, 6], 2 + np.sqrt(22 / 5)),
        ("good_ksigma", {"good_k": 3.0}, [0, 1, 1, 2, 6], 2 + 3 * np.sqrt(22 / 5)),
        ("good_quantile", {"good_quantile": 0.5, "good_factor": 2.0}, [0, 1, 1, 2, 6], 2.0),  # median 1 × 2
        ("good_quantile", {"good_quantile": 0.9, "good_factor": 1.0}, [0, 1, 1, 2, 6], 2 + 0.6 * 4),  # 3.6 → 2..6
        ("good_max", {}, [0, 1, 1, 2, 6], np.nextafter(6.0, np.inf)),
    ],
)
def test_normal_only_rules_on_a_hand_computed_case(rule, options, good, expected):
    scores = np.r_[np.array(good, float), 9.0]  # one anomalous sample above: ignored by a normal-only rule
    labels = np.r_[np.zeros(len(good), bool), True]
    fitted = fit_threshold(confusion_counts(scores, labels), rule, options)
    assert fitted.threshold == pytest.approx(expected, rel=1e-15)
    assert fitted.fp == float((np.array(good) >= fitted.threshold).sum())


@pytest.mark.parametrize("budget", [0.01, 0.05, 0.2])
def test_the_good_only_budget_is_a_setting(budget):
    for i, scores, labels in _cases():
        fitted = fit_threshold(confusion_counts(scores, labels), "good_fpr", {"good_fpr": budget})
        assert fitted.threshold == brute_force(scores.astype(np.float64), labels, "good_fpr", budget), (budget, i)


def test_at_pixel_level_the_budget_counts_the_good_images_pixels_only():
    """The thresholds stage fits good_fpr on the good images' pixels (not on every normal pixel of the validation
    split) and writes the pooled counts at that threshold; the normal pixels of anomalous images here score higher,
    so a budget on all normal pixels would pick a higher threshold."""
    from iadbench.evaluation.thresholds import fit_all

    rng = np.random.default_rng(7)
    good_pixels = rng.normal(0, 1, 5000)
    scores = np.r_[good_pixels, rng.normal(1.5, 1, 3000), rng.normal(3, 1, 500)]  # good, normal of anomalous, defect
    labels = np.r_[np.zeros(8000, bool), np.ones(500, bool)]
    pooled = confusion_counts(scores, labels)
    fitted, notes = fit_all(pooled, confusion_counts(good_pixels, np.zeros(5000, bool)), {"good_fpr": 0.01})
    rec = fitted["good_fpr"]
    assert rec["threshold"] == brute_force(good_pixels, np.zeros(5000, bool), "good_fpr", 0.01) and not notes
    assert rec["objective"] == pytest.approx((good_pixels >= rec["threshold"]).mean()) and rec["objective"] <= 0.01
    assert rec["threshold"] < fit_threshold(pooled, "good_fpr", {"good_fpr": 0.01}).threshold
    pred = scores >= rec["threshold"]
    assert (rec["tp"], rec["fp"]) == (float((pred & labels).sum()), float((pred & ~labels).sum()))
    assert rec["fpr"] == pytest.approx((pred & ~labels).sum() / 8000)
