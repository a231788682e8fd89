"""Evaluation of one (model, product) cell on its test split (docs/metrics.md); the evaluate stage
(:mod:`iadbench.stages.evaluate`) reads the cell and writes the files.

At each threshold fitted on validation — and at the test-optimal ("oracle") pixel threshold, reported only as a
labelled upper bound — it counts, per test image, TP/FP/FN/TN pixels and the image decision. Per-image rows go to
``reports/evaluate/<model>/<product>.csv`` (the aggregate stage pools them into category tables and bootstrap
intervals); cell-level figures, threshold-free metrics, thresholds, weights and versions go to the ``.json`` beside it.

Threshold-free metrics are those of :data:`iadbench.metrics.registry.METRIC_TABLE` (image AUROC, F1-max, PG2, PB2,
FPR@95TPR; pixel AUROC, AP, F1-max and AUPRO@``aupro_fpr_limit`` over the pooled test pixels) and, per anomalous
test image with a mask, AUPIMO (:mod:`iadbench.metrics.pimo`: its TPR over log shared FPR 1e-5…1e-4 of the good
test images' pixels; column ``aupimo``, the cell's mean and the integration's points in ``pixel.aupimo``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iadbench.evaluation.cells import Cell
from iadbench.evaluation.records import EvaluateRecord, ThresholdsRecord
from iadbench.evaluation.thresholds import rule_used
from iadbench.metrics.counts import confusion_counts
from iadbench.metrics.curves import ratio
from iadbench.metrics.maps import iou, oracle_threshold, per_image_confusion, pixel_curves
from iadbench.metrics.pimo import aupimo
from iadbench.metrics.registry import level_metrics
from iadbench.metrics.rules import RULE_TABLE, level_rules
from iadbench.paths import EVALUATE_DIR

ORACLE = next(n for n, r in RULE_TABLE.items() if r.select is None)  # fitted on the test images: an upper bound


def evaluate_path(model: str, product: str) -> Path:
    """``reports/evaluate/<model>/<product>.json`` (and ``.csv`` with one row per test image)."""
    return EVALUATE_DIR / model / f"{product}.json"


def image_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Image-level decision counts and rates at one threshold (``score ≥ t`` is anomalous)."""
    predicted = scores >= threshold
    tp = float((predicted & labels).sum())
    fp = float((predicted & ~labels).sum())
    fn = float((~predicted & labels).sum())
    tn = float((~predicted & ~labels).sum())
    return {
        "threshold": float(threshold), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn), "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "false_alarm_rate": ratio(fp, fp + tn),
    }  # fmt: skip


TRAINING_KEYS = ("epochs", "epochs_rule", "epochs_full")  # what the evaluation records of how the model trained


def evaluate(
    cell: Cell,
    fitted: ThresholdsRecord,
    provenance: dict[str, Any],
    aupro_fpr_limit: float = 0.3,
    excluded: tuple[str, ...] = (),
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Evaluate one cell's test images at the thresholds ``fitted`` on its validation split.

    Args:
        cell: the cell's test images (:func:`iadbench.evaluation.cells.load_cell`).
        fitted: the cell's thresholds record.
        provenance: the cell's predict record (image score kind, weights, versions); empty when absent.
        aupro_fpr_limit: the FPR bound of AUPRO.
        excluded: mask sources left out of pixel figures (``evaluate.exclude_prefill_accepted``), recorded.

    Returns:
        The cell document (an :class:`~iadbench.evaluation.records.EvaluateRecord` as JSON) and the per-image table.

    """
    labels, scores = cell.labels, cell.scores.astype(np.float64)
    table = cell.rows[["image_id", "product", "label"]].copy()  # categories are joined later, by the metrics stage
    table.insert(0, "model", cell.model)
    table["score"] = cell.scores
    used: dict[str, Any] = {"image": {}, "pixel": {}}
    image = _image_level(scores, labels, fitted, aupro_fpr_limit, table, used["image"])
    pixel = None
    if cell.maps is not None and fitted.pixel is not None:
        pixel = _pixel_level(cell, fitted, aupro_fpr_limit, table, used["pixel"])
    test = {
        "images": int(len(labels)),
        "good": int((~labels).sum()),
        "anomalous": int(labels.sum()),
        "anomalous_with_mask": int((labels & cell.has_mask).sum()) if cell.maps is not None else None,
        "mask_sources": mask_sources(cell),
        "mask_sources_excluded": list(excluded),
    }
    record = EvaluateRecord(
        cell.model, cell.product, fitted.dataset, fitted.split_fingerprint, provenance.get("image_score", "unknown"),
        test, used, fitted.image_notes + (fitted.pixel_notes or []), image, pixel,
        {k: provenance.get(k) for k in ("backbone", "weights_source", "weights_sha256")},
        provenance.get("versions", {}),
        {k: provenance[k] for k in TRAINING_KEYS} if set(TRAINING_KEYS) <= set(provenance) else {},  # SegAD: none
    )  # fmt: skip
    return record.to_json(), table


def mask_sources(cell: Cell) -> dict[str, int]:
    """Anomalous test images per mask source (``shipped``, ``drawn``, ``pending``, ...; see
    :mod:`iadbench.data.drawn`): how many masks are pending or came from a detector's pre-drawn regions.
    """
    if "mask_source" not in cell.rows:
        return {}
    sources = cell.rows.loc[cell.labels, "mask_source"].astype(str).replace("", "none")
    return {str(k): int(v) for k, v in sorted(sources.value_counts().items())}


def _image_level(
    scores: np.ndarray,
    labels: np.ndarray,
    fitted: ThresholdsRecord,
    aupro_fpr_limit: float,
    table: pd.DataFrame,
    used: dict[str, str | None],
) -> dict[str, Any]:
    """Threshold-free image metrics and the decisions at each rule's image threshold (a column per rule in
    ``table``; ``used``: rule -> the rule that stood in).
    """
    image_counts = confusion_counts(scores, labels)
    image: dict[str, Any] = {m.name: m.compute(image_counts, aupro_fpr_limit) for m in level_metrics("image")}
    image["at"] = {}
    for rule in level_rules("image"):
        stand_in = rule_used(fitted.image, rule)
        used[rule] = stand_in
        if stand_in is None:
            continue
        t = fitted.image[stand_in]["threshold"]
        image["at"][rule] = image_at(scores, labels, t)
        table[f"img_{rule}_pred"] = (scores >= t).astype(int)
    return image


def _pixel_level(
    cell: Cell, fitted: ThresholdsRecord, aupro_fpr_limit: float, table: pd.DataFrame, used: dict[str, str | None]
) -> dict[str, Any]:
    """Threshold-free pixel metrics over the pooled test pixels and, at each rule's pixel threshold and the oracle's,
    the per-image TP/FP/FN and IoU (columns of ``table``) and the pooled figures.
    """
    labels = cell.labels
    keep = cell.pixel_rows
    curves = pixel_curves(cell.maps[keep], cell.masks[keep])
    pixel = {m.name: m.compute(curves, aupro_fpr_limit) for m in level_metrics("pixel")}
    pixel.update(aupro_fpr_limit=aupro_fpr_limit, regions=curves.regions, at={})
    thresholds: dict[str, float] = {}
    for rule in (r for r in level_rules("pixel") if r != ORACLE):
        stand_in = rule_used(fitted.pixel, rule)
        used[rule] = stand_in
        if stand_in is not None:
            thresholds[rule] = fitted.pixel[stand_in]["threshold"]
    oracle_t, oracle_miou = oracle_threshold(cell.maps[keep], cell.masks[keep])
    if np.isfinite(oracle_t):
        thresholds[ORACLE] = oracle_t
        used[ORACLE] = ORACLE
    pimo = aupimo(cell.maps[keep], cell.masks[keep])
    per_image_aupimo = np.full(len(labels), np.nan)
    per_image_aupimo[np.flatnonzero(keep)] = pimo.scores
    table["aupimo"] = per_image_aupimo
    pixel["aupimo"] = {
        "mean": float(np.nanmean(pimo.scores)) if np.isfinite(pimo.scores).any() else None,
        "images": int(np.isfinite(pimo.scores).sum()), "points": pimo.points,
        "fpr_bounds_reached": list(pimo.fpr_bounds), "note": pimo.note,
    }  # fmt: skip
    names = list(thresholds)
    counts = per_image_confusion(cell.maps, cell.masks, np.array([thresholds[r] for r in names]))
    has_mask, good = cell.has_mask, ~labels
    table["has_mask"] = has_mask
    table["defect_pixels"] = counts["tp"][:, 0] + counts["fn"][:, 0] if names else 0
    table["pixels"] = cell.maps[0].size if len(cell.maps) else 0
    for j, rule in enumerate(names):
        tp, fp, fn = counts["tp"][:, j], counts["fp"][:, j], counts["fn"][:, j]
        table[f"pix_{rule}_tp"], table[f"pix_{rule}_fp"], table[f"pix_{rule}_fn"] = tp, fp, fn
        per_image = np.where(labels & has_mask, iou(tp, fp, fn), np.nan)
        table[f"iou_{rule}"] = per_image
        s_tp, s_fp, s_fn = (float(x[keep].sum()) for x in (tp, fp, fn))
        good_pixels = float(good.sum()) * cell.maps[0].size
        pixel["at"][rule] = {
            "threshold": thresholds[rule],
            "mean_iou": float(np.nanmean(per_image)) if np.isfinite(per_image).any() else None,
            "images_with_iou": int(np.isfinite(per_image).sum()),
            "pooled_iou": ratio(s_tp, s_tp + s_fp + s_fn),
            "pooled_f1": ratio(2 * s_tp, 2 * s_tp + s_fp + s_fn),
            "fpr_good": ratio(float(fp[good].sum()), good_pixels),
            "tp": s_tp, "fp": s_fp, "fn": s_fn,
        }  # fmt: skip
    if ORACLE in pixel["at"]:
        pixel["at"][ORACLE]["note"] = "test-optimal threshold: an upper bound, not a result"
        pixel["at"][ORACLE]["mean_iou_check"] = oracle_miou
    return pixel
