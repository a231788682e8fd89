"""The one place where threshold rules and threshold-free metrics are declared.

Fitting (:func:`iadbench.metrics.curves.fit_threshold`), the thresholds and evaluate stages, the tables, the report,
its figures, ``threshold.method``'s check and the README benchmarks all read these two tables, so a new rule or
metric is one entry here (and its test).

Rules, fitted on the validation split only (``s ≥ t`` is anomalous; rates as in :mod:`iadbench.metrics.curves`):

- **ROC-T**: argmax_t √(TPR·(1−FPR)); **IoU-T**: argmax_t √(IoU·(1−FPR)); **PR-T**: argmax_t F1 — the three rules
  of [Rethinking] (docs/references.md), which need anomalous validation samples;
- **good-FPR1** (good-only): the lowest threshold that flags at most 1 % of the good samples; fitted always, and
  standing in for the others on a product whose validation split has no anomalous sample;
- **oracle**: the test-optimal pixel threshold (maximum mean per-image IoU on the test images themselves) — an
  upper bound reported beside the rules, never a result.

Ties between thresholds go to the highest threshold (the first in descending order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from iadbench.metrics import curves as c
from iadbench.metrics.maps import aupro_from_counts

Rates = dict[str, np.ndarray]


def _argmax(goal: Callable[[Rates], np.ndarray]) -> Callable[[Rates], tuple[int, float]]:
    """A rule that maximises ``goal`` over thresholds (NaN rates count as 0; ties: the highest threshold)."""

    def select(r: Rates) -> tuple[int, float]:
        values = goal({k: np.nan_to_num(v) for k, v in r.items()})
        k = int(np.argmax(values))
        return k, float(values[k])

    return select


def _lowest_within_fpr(limit: float) -> Callable[[Rates], tuple[int, float]]:
    """The lowest threshold whose FPR ≤ ``limit``; index -1 (above every score) when even the top one exceeds it."""

    def select(r: Rates) -> tuple[int, float]:
        ok = np.flatnonzero(r["fpr"] <= limit + 1e-12)
        k = int(ok[-1]) if len(ok) else -1
        return k, float(r["fpr"][k]) if k >= 0 else 0.0

    return select


@dataclass(frozen=True)
class Rule:
    """A threshold rule: how it is fitted, named and drawn."""

    name: str  # key in the thresholds/evaluate files, the tables and threshold.method
    label: str  # how tables and figures name it
    objective: str  # the formula, for docs and the thresholds file's readers
    select: Callable[[Rates], tuple[int, float]] | None  # rates per threshold -> (index, objective); None: oracle
    needs_anomalous: bool = True  # False: fitted on good samples alone
    headline: bool = True  # may be threshold.method
    levels: tuple[str, ...] = ("image", "pixel")
    marker: str = "d"  # matplotlib marker and colour of its point on the report's curves
    color: str = "k"


RULE_TABLE: dict[str, Rule] = {
    r.name: r
    for r in (
        Rule("roc", "ROC-T", "argmax √(TPR·(1−FPR))", _argmax(lambda r: np.sqrt(r["tpr"] * (1 - r["fpr"]))),
             marker="o", color="tab:blue"),
        Rule("iou", "IoU-T", "argmax √(IoU·(1−FPR))", _argmax(lambda r: np.sqrt(r["iou"] * (1 - r["fpr"]))),
             marker="s", color="tab:orange"),
        Rule("pr", "PR-T", "argmax F1", _argmax(lambda r: r["f1"]), marker="^", color="tab:green"),
        Rule("good_fpr1", "good-FPR1 (good only)", "lowest t with FPR ≤ 1 %", _lowest_within_fpr(0.01),
             needs_anomalous=False, headline=False, marker="x", color="tab:red"),
        Rule("oracle", "oracle (upper bound)", "argmax mean per-image IoU on test", None, headline=False,
             levels=("pixel",), marker="*", color="tab:purple"),
    )
}  # fmt: skip


def fitted_rules() -> tuple[str, ...]:
    """Rules fitted on validation (every rule but the oracle), in table order."""
    return tuple(n for n, r in RULE_TABLE.items() if r.select is not None)


def anomalous_rules() -> tuple[str, ...]:
    """Validation rules that need anomalous samples (roc, iou, pr)."""
    return tuple(n for n in fitted_rules() if RULE_TABLE[n].needs_anomalous)


def good_only_rule() -> str:
    """The rule fitted on good samples alone, which stands in for the others without anomalous samples."""
    (name,) = (n for n in fitted_rules() if not RULE_TABLE[n].needs_anomalous)
    return name


def headline_rules() -> tuple[str, ...]:
    """The values ``threshold.method`` accepts."""
    return tuple(n for n, r in RULE_TABLE.items() if r.headline)


def headline_method(params: dict[str, Any], source: str = "params.yaml") -> str:
    """``threshold.method``, checked against :func:`headline_rules` (the schema in :mod:`iadbench.params` knows only
    that it is a string: the rules live here).
    """
    from iadbench.errors import ParamsError
    from iadbench.params import ThresholdParams

    method = ThresholdParams.from_params(params, source).method
    if method not in headline_rules():
        raise ParamsError(f"{source}: threshold.method must be one of {list(headline_rules())}, got {method!r}")
    return method


def level_rules(level: str) -> tuple[str, ...]:
    """Every rule evaluated at ``level`` (image or pixel), in table order; the oracle is pixel-only and last."""
    return tuple(n for n, r in RULE_TABLE.items() if level in r.levels)


def rule_label(name: str) -> str:
    """The display name of a rule."""
    return RULE_TABLE[name].label


@dataclass(frozen=True)
class Metric:
    """A threshold-free metric of one level, computed on the test split of a cell."""

    name: str  # key in the evaluate file's image/pixel section and the products table (<level>_<name>)
    level: str  # image | pixel
    label: str  # column header; {limit} is evaluate.aupro_fpr_limit
    compute: Callable[[Any, float], float]  # (Counts for image, PixelCurves for pixel; AUPRO's FPR limit) -> value
    headline_key: str  # key in reports/metrics.json (the mean over products)
    definition: str


def _image(fn: Callable[..., float], *args: float) -> Callable[[Any, float], float]:
    return lambda counts, _limit: fn(counts, *args)


def _pixel(fn: Callable[..., float]) -> Callable[[Any, float], float]:
    return lambda curves, _limit: fn(curves.pixels)


def _metrics() -> dict[tuple[str, str], Metric]:
    table = (
        Metric("auroc", "image", "image AUROC", _image(c.auroc), "image_auroc",
               "area under the ROC curve (trapezoidal), as scikit-learn's roc_auc_score"),
        Metric("f1_max", "image", "image F1-max", _image(lambda k: c.f1_max(k)[0]), "image_f1_max",
               "the best F1 over thresholds"),
        Metric("pg2", "image", "PG2", _image(c.tnr_at_fnr, 0.02), "pg2", "TNR at FNR ≤ 2 % (best over thresholds)"),
        Metric("pb2", "image", "PB2", _image(c.tpr_at_fpr, 0.02), "pb2", "TPR at FPR ≤ 2 % (best over thresholds)"),
        Metric("fpr_at_95tpr", "image", "FPR@95TPR", _image(c.fpr_at_tpr, 0.95), "fpr_at_95tpr",
               "FPR at the first threshold reaching TPR ≥ 95 % (= 1 − PG5)"),
        Metric("auroc", "pixel", "pixel AUROC", _pixel(c.auroc), "pixel_auroc", "AUROC over the pooled test pixels"),
        Metric("ap", "pixel", "pixel AP", _pixel(c.average_precision), "pixel_ap",
               "average precision Σ (R_k − R_{k−1}) P_k, as scikit-learn's average_precision_score"),
        Metric("f1_max", "pixel", "pixel F1-max", _pixel(lambda k: c.f1_max(k)[0]), "pixel_f1_max",
               "the best F1 over pixel thresholds"),
        Metric("aupro", "pixel", "AUPRO@{limit}", lambda curves, limit: aupro_from_counts(curves.pro, limit),
               "pixel_aupro", "area under the PRO curve up to the FPR limit, normalised ([MVTec AD IJCV])"),
    )  # fmt: skip
    return {(m.level, m.name): m for m in table}


METRIC_TABLE: dict[tuple[str, str], Metric] = _metrics()


def level_metrics(level: str) -> tuple[Metric, ...]:
    """The threshold-free metrics of one level, in table order."""
    return tuple(m for (lv, _), m in METRIC_TABLE.items() if lv == level)
