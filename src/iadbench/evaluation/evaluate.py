"""The evaluate stage: one (model, product) cell on the test split, from files on disk (docs/metrics.md).

At each threshold fitted on validation — and at the test-optimal ("oracle") pixel threshold, reported only as a
labelled upper bound — it counts, per test image, TP/FP/FN/TN pixels and the image decision. Per-image rows go to
``reports/evaluate/<model>/<product>.csv`` (the aggregate stage pools them into category tables and bootstrap
intervals); cell-level figures, threshold-free metrics, thresholds, weights and versions go to the ``.json`` beside it.

Threshold-free metrics are those of :data:`iadbench.metrics.registry.METRIC_TABLE` (image AUROC, F1-max, PG2, PB2,
FPR@95TPR; pixel AUROC, AP, F1-max and AUPRO@``aupro_fpr_limit`` over the pooled test pixels).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iadbench.errors import InputError
from iadbench.evaluation.cells import (
    load_cell,
    split_fingerprint,
    thresholds_path,
    write_cell_files,
)
from iadbench.evaluation.records import EvaluateRecord, ThresholdsRecord
from iadbench.evaluation.thresholds import rule_used
from iadbench.metrics.counts import confusion_counts
from iadbench.metrics.curves import ratio
from iadbench.metrics.maps import iou, oracle_threshold, per_image_confusion, pixel_curves
from iadbench.metrics.registry import level_metrics
from iadbench.metrics.rules import RULE_TABLE, level_rules
from iadbench.paths import EVALUATE_DIR, PREDICT_REPORTS

ORACLE = next(n for n, r in RULE_TABLE.items() if r.select is None)  # fitted on the test images: an upper bound


def evaluate_path(model: str, product: str) -> Path:
    """``reports/evaluate/<model>/<product>.json`` (and ``.csv`` with one row per test image)."""
    return EVALUATE_DIR / model / f"{product}.json"


def read_thresholds(model: str, product: str, split: pd.DataFrame) -> ThresholdsRecord:
    """The cell's thresholds file, refused if it was fitted on another split (fingerprint differs)."""
    path = thresholds_path(model, product)
    record = ThresholdsRecord.read(path)
    expected = split_fingerprint(split, product)
    if record.split_fingerprint != expected:
        raise InputError(
            path,
            "thresholds were fitted on another split (split fingerprint differs)",
            f"file {str(record.split_fingerprint)[:12]}…, current split {expected[:12]}…; "
            "refit them with the thresholds stage (dvc repro)",
        )
    return record


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


def evaluate_cell(
    model: str, product: str, split: pd.DataFrame, aupro_fpr_limit: float = 0.3
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Evaluate one cell on its test images; returns the cell document and the per-image table."""
    fitted = read_thresholds(model, product, split)
    cell = load_cell(model, product, split, "test")
    labels, scores = cell.labels, cell.scores.astype(np.float64)
    table = cell.rows[["image_id", "product", "label"]].copy()  # categories are joined later, by the metrics stage
    table.insert(0, "model", model)
    table["score"] = cell.scores

    image_counts = confusion_counts(scores, labels)
    image: dict[str, Any] = {m.name: m.compute(image_counts, aupro_fpr_limit) for m in level_metrics("image")}
    image["at"] = {}
    used: dict[str, Any] = {"image": {}, "pixel": {}}
    for rule in level_rules("image"):
        stand_in = rule_used(fitted.image, rule)
        used["image"][rule] = stand_in
        if stand_in is None:
            continue
        t = fitted.image[stand_in]["threshold"]
        image["at"][rule] = image_at(scores, labels, t)
        table[f"img_{rule}_pred"] = (scores >= t).astype(int)

    pixel: dict[str, Any] | None = None
    if cell.maps is not None and fitted.pixel is not None:
        keep = cell.pixel_rows
        curves = pixel_curves(cell.maps[keep], cell.masks[keep])
        pixel = {m.name: m.compute(curves, aupro_fpr_limit) for m in level_metrics("pixel")}
        pixel.update(aupro_fpr_limit=aupro_fpr_limit, regions=curves.regions, at={})
        thresholds: dict[str, float] = {}
        for rule in (r for r in level_rules("pixel") if r != ORACLE):
            stand_in = rule_used(fitted.pixel, rule)
            used["pixel"][rule] = stand_in
            if stand_in is not None:
                thresholds[rule] = fitted.pixel[stand_in]["threshold"]
        oracle_t, oracle_miou = oracle_threshold(cell.maps[keep], cell.masks[keep])
        if np.isfinite(oracle_t):
            thresholds[ORACLE] = oracle_t
            used["pixel"][ORACLE] = ORACLE
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

    predict = PREDICT_REPORTS / model / f"{product}.json"
    provenance = json.loads(predict.read_text()) if predict.is_file() else {}
    test = {
        "images": int(len(labels)),
        "good": int((~labels).sum()),
        "anomalous": int(labels.sum()),
        "anomalous_with_mask": int((labels & cell.has_mask).sum()) if cell.maps is not None else None,
    }
    record = EvaluateRecord(
        model, product, fitted.dataset, fitted.split_fingerprint, provenance.get("image_score", "unknown"), test,
        used, fitted.image_notes + (fitted.pixel_notes or []), image, pixel,
        {k: provenance.get(k) for k in ("backbone", "weights_source", "weights_sha256")},
        provenance.get("versions", {}),
    )  # fmt: skip
    return record.to_json(), table


def write_cell(model: str, product: str, split: pd.DataFrame, aupro_fpr_limit: float) -> dict[str, Any]:
    """Write the cell's ``.json`` and ``.csv`` under ``reports/evaluate/<model>/``."""
    doc, table = evaluate_cell(model, product, split, aupro_fpr_limit)
    return write_cell_files(evaluate_path(model, product), doc, table, ".csv")
