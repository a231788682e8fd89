"""The one place where threshold-free metrics are declared (the threshold rules: :mod:`iadbench.metrics.rules`).

The evaluate stage, the tables, the report and the README benchmarks read :data:`METRIC_TABLE`, so a new metric is
one entry here (and its test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from iadbench.metrics import curves as c
from iadbench.metrics.maps import aupro_from_counts


@dataclass(frozen=True)
class Metric:
    """A threshold-free metric of one level, computed on the test split of a cell."""

    name: str  # key in the evaluate file's image/pixel section and the products table (<level>_<name>)
    level: str  # image | pixel
    label: str  # column header; {limit} is evaluate.aupro_fpr_limit
    compute: Callable[[Any, float], float]  # (Counts for image, PixelCurves for pixel; AUPRO's FPR limit) -> value
    headline_key: str  # key in reports/metrics.json (the mean over products)
    definition: str


def image_metric(fn: Callable[..., float], *args: float) -> Callable[[Any, float], float]:
    """An image-level metric: ``fn(counts, *args)`` on the image Counts."""
    return lambda counts, _limit: fn(counts, *args)


def pixel_metric(fn: Callable[..., float]) -> Callable[[Any, float], float]:
    """A pixel-level metric: ``fn`` on the pooled pixel Counts."""
    return lambda curves, _limit: fn(curves.pixels)


def _metrics() -> dict[tuple[str, str], Metric]:
    table = (
        Metric("auroc", "image", "image AUROC", image_metric(c.auroc), "image_auroc",
               "area under the ROC curve (trapezoidal), as scikit-learn's roc_auc_score"),
        Metric("f1_max", "image", "image F1-max", image_metric(lambda k: c.f1_max(k)[0]), "image_f1_max",
               "the best F1 over thresholds"),
        Metric("pg2", "image", "PG2", image_metric(c.tnr_at_fnr, 0.02), "pg2",
               "TNR at FNR ≤ 2 % (best over thresholds)"),
        Metric("pb2", "image", "PB2", image_metric(c.tpr_at_fpr, 0.02), "pb2",
               "TPR at FPR ≤ 2 % (best over thresholds)"),
        Metric("fpr_at_95tpr", "image", "FPR@95TPR", image_metric(c.fpr_at_tpr, 0.95), "fpr_at_95tpr",
               "FPR at the first threshold reaching TPR ≥ 95 % (= 1 − PG5)"),
        Metric("auroc", "pixel", "pixel AUROC", pixel_metric(c.auroc), "pixel_auroc",
               "AUROC over the pooled test pixels"),
        Metric("ap", "pixel", "pixel AP", pixel_metric(c.average_precision), "pixel_ap",
               "average precision Σ (R_k − R_{k−1}) P_k, as scikit-learn's average_precision_score"),
        Metric("f1_max", "pixel", "pixel F1-max", pixel_metric(lambda k: c.f1_max(k)[0]), "pixel_f1_max",
               "the best F1 over pixel thresholds"),
        Metric("aupro", "pixel", "AUPRO@{limit}", lambda curves, limit: aupro_from_counts(curves.pro, limit),
               "pixel_aupro", "area under the PRO curve up to the FPR limit, normalised ([MVTec AD IJCV])"),
    )  # fmt: skip
    return {(m.level, m.name): m for m in table}


METRIC_TABLE: dict[tuple[str, str], Metric] = _metrics()


def level_metrics(level: str) -> tuple[Metric, ...]:
    """The threshold-free metrics of one level, in table order."""
    return tuple(m for (lv, _), m in METRIC_TABLE.items() if lv == level)
