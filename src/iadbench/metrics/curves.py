"""Curves, threshold fitting and threshold-free metrics, all derived from one :class:`Counts` (docs/metrics.md).

Definitions (``s ≥ t`` is anomalous; counts over pixels or images):
TPR = TP/(TP+FN), FPR = FP/(FP+TN), precision = TP/(TP+FP), F1 = 2TP/(2TP+FP+FN), IoU = TP/(TP+FP+FN).

The threshold rules (ROC-T, IoU-T, PR-T, good-FPR), their objectives and :func:`~iadbench.metrics.rules.fit_threshold`
are in :mod:`iadbench.metrics.rules`. Undefined values (a rate whose denominator is 0, AUROC without both classes)
are NaN, never 0.

References: AUROC and AP as scikit-learn's ``roc_auc_score`` and ``average_precision_score`` (AP is the step
sum ``Σ (R_k − R_{k−1}) P_k`` with no interpolation); PG_n = TNR at FNR ≤ n %, PB_n = TPR at FPR ≤ n %
(best over thresholds meeting the bound); FPR@95TPR = 1 − PG5 by definition.
"""

from __future__ import annotations

import numpy as np

from iadbench.metrics.counts import Counts, safe_divide

_div = safe_divide


def ratio(a: float, b: float) -> float:
    """``a / b`` for counts, NaN when ``b`` is 0 (an undefined rate is never 0)."""
    return float(_div(a, b))


def rates(c: Counts) -> dict[str, np.ndarray]:
    """TPR, FPR, precision, F1 and IoU at every threshold of ``c``."""
    return {
        "tpr": _div(c.tp, c.n_pos),
        "fpr": _div(c.fp, c.n_neg),
        "precision": _div(c.tp, c.tp + c.fp),
        "f1": _div(2 * c.tp, 2 * c.tp + c.fp + c.fn),
        "iou": _div(c.tp, c.tp + c.fp + c.fn),
    }


def roc_curve(c: Counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` with the point (0, 0) at threshold +inf prepended (scikit-learn's convention)."""
    r = rates(c)
    return np.r_[0.0, r["fpr"]], np.r_[0.0, r["tpr"]], np.r_[np.inf, c.thresholds]


def auroc(c: Counts) -> float:
    """Area under the ROC curve by the trapezoidal rule; NaN unless both classes are present."""
    if c.n_pos == 0 or c.n_neg == 0:
        return float("nan")
    fpr, tpr, _ = roc_curve(c)
    return float(np.trapezoid(tpr, fpr))


def average_precision(c: Counts) -> float:
    """AP = Σ_k (R_k − R_{k−1}) · P_k over descending thresholds, R_0 = 0; NaN without positives."""
    if c.n_pos == 0:
        return float("nan")
    r = rates(c)
    recall = np.r_[0.0, r["tpr"]]
    return float(np.sum(np.diff(recall) * np.nan_to_num(r["precision"])))


def f1_max(c: Counts) -> tuple[float, float]:
    """``(max F1, its threshold)``; NaN when there are no positives."""
    if c.n_pos == 0 or not len(c.thresholds):
        return float("nan"), float("nan")
    f1 = rates(c)["f1"]
    k = int(np.nanargmax(f1))
    return float(f1[k]), float(c.thresholds[k])


def tnr_at_fnr(c: Counts, fnr: float) -> float:
    """PG: the best TNR over thresholds whose FNR ≤ ``fnr`` (e.g. PG2 = ``tnr_at_fnr(c, 0.02)``)."""
    if c.n_pos == 0 or c.n_neg == 0:
        return float("nan")
    r = rates(c)
    ok = (1.0 - r["tpr"]) <= fnr + 1e-12
    return float(np.max(1.0 - r["fpr"][ok])) if ok.any() else 0.0


def tpr_at_fpr(c: Counts, fpr: float) -> float:
    """PB: the best TPR over thresholds whose FPR ≤ ``fpr`` (e.g. PB2 = ``tpr_at_fpr(c, 0.02)``); 0 if none."""
    if c.n_pos == 0 or c.n_neg == 0:
        return float("nan")
    r = rates(c)
    ok = r["fpr"] <= fpr + 1e-12
    return float(np.max(r["tpr"][ok])) if ok.any() else 0.0


def fpr_at_tpr(c: Counts, tpr: float) -> float:
    """FPR at the first threshold reaching TPR ≥ ``tpr`` (FPR@95TPR = ``fpr_at_tpr(c, 0.95)`` = 1 − PG5)."""
    return 1.0 - tnr_at_fnr(c, 1.0 - tpr)
