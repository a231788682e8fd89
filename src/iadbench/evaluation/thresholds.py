"""The thresholds stage: every rule fitted per (model, product) on the validation split only (DESIGN.md §3).

Pixel level pools all validation pixels of the product (good images and anomalous images with a mask); image level
pools the validation image scores. ROC-T, IoU-T and PR-T need anomalous validation samples; the good-only rule
``good_fpr1`` (the lowest threshold that flags at most 1 % of good samples) is always fitted too, and takes their
place — under its own name, with a note — when a product's validation split has no anomalous image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from iadbench.evaluation.cells import json_ready, load_cell, split_fingerprint, thresholds_path, write_cell_files
from iadbench.metrics.counts import Counts, confusion_counts
from iadbench.metrics.curves import GOOD_ONLY_RULE, RULES, fit_threshold, rates
from iadbench.metrics.maps import pixel_curves

CURVE_POINTS = 400  # points per level kept in the curve CSV (the chosen thresholds are always kept)


def fit_all(c: Counts) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Fit every rule that the counts allow; notes say which could not be fitted and why."""
    fitted: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    if c.n_pos > 0:
        fitted.update({rule: fit_threshold(c, rule).to_dict() for rule in RULES})
    else:
        notes.append(f"no anomalous validation sample: roc/iou/pr not fitted, {GOOD_ONLY_RULE} used in their place")
    if c.n_neg > 0:
        fitted[GOOD_ONLY_RULE] = fit_threshold(c, GOOD_ONLY_RULE).to_dict()
    else:
        notes.append(f"no good validation sample: {GOOD_ONLY_RULE} not fitted")
    return fitted, notes


def rule_used(fitted: dict[str, Any], rule: str) -> str | None:
    """The rule that stands in for ``rule`` (itself, or the good-only rule); None if neither was fitted."""
    if rule in fitted:
        return rule
    return GOOD_ONLY_RULE if GOOD_ONLY_RULE in fitted else None


def curve_table(c: Counts, level: str, fitted: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """A thinned copy of the validation curves (ROC, PR, IoU vs FPR) for plots, keeping every chosen threshold."""
    if not len(c.thresholds):
        return pd.DataFrame()
    r = rates(c)
    n = len(c.thresholds)
    keep = set(np.linspace(0, n - 1, min(n, CURVE_POINTS)).round().astype(int).tolist())
    index = {t: k for k, t in enumerate(c.thresholds)}
    keep |= {index[f["threshold"]] for f in fitted.values() if f["threshold"] in index}
    k = np.array(sorted(keep))
    return pd.DataFrame(
        {
            "level": level,
            "threshold": c.thresholds[k],
            "tpr": r["tpr"][k],
            "fpr": r["fpr"][k],
            "precision": r["precision"][k],
            "f1": r["f1"][k],
            "iou": r["iou"][k],
        }
    )


def fit_cell(
    model: str, product: str, split: pd.DataFrame, dataset: str | None = None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit the thresholds of one cell; returns the thresholds document and the curve table (``dataset``: the
    cell's dataset, read from the split rows when not given).
    """
    cell = load_cell(model, product, split, "validation")
    if dataset is None:
        dataset = str(split.loc[split["product"] == product, "dataset"].iloc[0])
    labels = cell.labels
    image_counts = confusion_counts(cell.scores.astype(np.float64), labels)
    image_fits, image_notes = fit_all(image_counts)
    doc: dict[str, Any] = {
        "model": model,
        "product": product,
        "dataset": dataset,
        "split_fingerprint": split_fingerprint(split, product),
        "validation": {
            "images": int(len(labels)),
            "good": int((~labels).sum()),
            "anomalous": int(labels.sum()),
        },
        "image": image_fits,
        "image_notes": image_notes,
        "pixel": None,
        "pixel_notes": ["model writes no anomaly maps: image level only"],
    }
    curves = [curve_table(image_counts, "image", image_fits)]
    if cell.maps is not None:
        keep = cell.pixel_rows
        pixel = pixel_curves(cell.maps[keep], cell.masks[keep], with_pro=False).pixels
        pixel_fits, pixel_notes = fit_all(pixel)
        excluded = int((~keep).sum())
        if excluded:
            pixel_notes.append(f"{excluded} anomalous validation image(s) with an empty mask left out of pixel level")
        doc["validation"].update(pixels=int(pixel.n_pos + pixel.n_neg), defect_pixels=int(pixel.n_pos),
                                 empty_mask_excluded=excluded)  # fmt: skip
        doc.update(pixel=pixel_fits, pixel_notes=pixel_notes)
        curves.append(curve_table(pixel, "pixel", pixel_fits))
    return json_ready(doc), pd.concat([c for c in curves if not c.empty], ignore_index=True)


def write_cell(model: str, product: str, split: pd.DataFrame, dataset: str | None = None) -> dict[str, Any]:
    """Write ``reports/thresholds/<model>/<product>.json`` and its ``.curves.csv``."""
    doc, curves = fit_cell(model, product, split, dataset)
    return write_cell_files(thresholds_path(model, product), doc, curves, ".curves.csv")
