"""Every threshold rule fitted per (model, product) on the validation split only (docs/metrics.md); the thresholds
stage (:mod:`iadbench.stages.thresholds`) reads the cell and writes the files.

Pixel level pools all validation pixels of the product (good images and anomalous images with a mask); image level
pools the validation image scores. ROC-T, IoU-T and PR-T need anomalous validation samples; the good-only rule
``good_fpr`` (the lowest threshold that flags at most ``threshold.good_fpr`` of the good validation images, or of
their pixels) is fitted on the good images alone, always, and takes the others' place — under its own name, with a
note — when a product's validation split has no anomalous image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from iadbench.evaluation.cells import Cell
from iadbench.evaluation.records import ThresholdsRecord
from iadbench.metrics.counts import Counts, confusion_counts
from iadbench.metrics.curves import rates
from iadbench.metrics.maps import pixel_curves
from iadbench.metrics.rules import (
    Options,
    anomalous_rules,
    describe_at,
    fit_threshold,
    good_only_rule,
)

CURVE_POINTS = 400  # points per level kept in the curve CSV (the chosen thresholds are always kept)


def fit_all(c: Counts, good: Counts, options: Options | None = None) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Fit every rule that the counts allow: the rules that need anomalous samples on the pooled counts ``c``, the
    good-only rule on ``good`` (the good images' samples alone) and described on ``c``; notes say which could not be
    fitted and why.
    """
    fitted: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    rules, good_only = anomalous_rules(), good_only_rule()
    if c.n_pos > 0:
        fitted.update({rule: fit_threshold(c, rule, options).to_dict() for rule in rules})
    else:
        notes.append(f"no anomalous validation sample: {'/'.join(rules)} not fitted, {good_only} used in their place")
    if good.n_neg > 0:
        on_good = fit_threshold(good, good_only, options)
        fitted[good_only] = describe_at(c, good_only, on_good.threshold, on_good.objective).to_dict()
    else:
        notes.append(f"no good validation image: {good_only} not fitted")
    return fitted, notes


def rule_used(fitted: dict[str, Any], rule: str) -> str | None:
    """The rule that stands in for ``rule`` (itself, or the good-only rule); None if neither was fitted."""
    if rule in fitted:
        return rule
    good_only = good_only_rule()
    return good_only if good_only in fitted else None


def curve_table(c: Counts, level: str, fitted: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """A thinned copy of the validation curves (ROC, PR, IoU vs FPR) for plots, keeping every chosen threshold;
    column ``rule`` names the rules fitted at a row's threshold (``dvc plots`` marks them).
    """
    if not len(c.thresholds):
        return pd.DataFrame()
    r = rates(c)
    n = len(c.thresholds)
    keep = set(np.linspace(0, n - 1, min(n, CURVE_POINTS)).round().astype(int).tolist())
    index = {t: k for k, t in enumerate(c.thresholds)}
    keep |= {index[f["threshold"]] for f in fitted.values() if f["threshold"] in index}
    k = np.array(sorted(keep))
    marks: dict[float, list[str]] = {}
    for rule, f in fitted.items():
        marks.setdefault(f["threshold"], []).append(rule)
    return pd.DataFrame(
        {
            "level": level,
            "threshold": c.thresholds[k],
            "tpr": r["tpr"][k],
            "fpr": r["fpr"][k],
            "precision": r["precision"][k],
            "f1": r["f1"][k],
            "iou": r["iou"][k],
            # the rules fitted at this threshold ("roc+iou" when two agree), empty elsewhere: the marks of the plots
            "rule": ["+".join(marks.get(t, [])) for t in c.thresholds[k].tolist()],
        }
    )


def fit_thresholds(
    cell: Cell, dataset: str | None, fingerprint: str, options: Options | None = None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit every rule on one cell's validation images.

    Args:
        cell: the cell's validation images (:func:`iadbench.evaluation.cells.load_cell`).
        dataset: the cell's dataset (recorded).
        fingerprint: the split's fingerprint for the product (evaluate refuses thresholds of another split).
        options: the rules' settings, e.g. the good-only budget ``{"good_fpr": 0.05}``
            (:func:`~iadbench.metrics.rules.fit_threshold` fills in the defaults).

    Returns:
        The thresholds document (a :class:`~iadbench.evaluation.records.ThresholdsRecord` as JSON) and the curve
        table (:func:`curve_table` per level).

    """
    labels = cell.labels
    scores = cell.scores.astype(np.float64)
    image_counts = confusion_counts(scores, labels)
    image_fits, image_notes = fit_all(image_counts, confusion_counts(scores[~labels], labels[~labels]), options)
    validation = {"images": int(len(labels)), "good": int((~labels).sum()), "anomalous": int(labels.sum())}
    pixel_fits, pixel_notes = None, ["model writes no anomaly maps: image level only"]
    curves = [curve_table(image_counts, "image", image_fits)]
    if cell.maps is not None:
        keep = cell.pixel_rows
        pixel = pixel_curves(cell.maps[keep], cell.masks[keep], with_pro=False).pixels
        good_rows = ~labels
        good_pixels = (pixel_curves(cell.maps[good_rows], cell.masks[good_rows], with_pro=False).pixels
                       if good_rows.any() else confusion_counts(np.empty(0), np.empty(0, bool)))  # fmt: skip
        pixel_fits, pixel_notes = fit_all(pixel, good_pixels, options)
        excluded = int((~keep).sum())
        if excluded:
            pixel_notes.append(f"{excluded} anomalous validation image(s) with an empty mask left out of pixel level")
        validation.update(pixels=int(pixel.n_pos + pixel.n_neg), defect_pixels=int(pixel.n_pos),
                          empty_mask_excluded=excluded)  # fmt: skip
        curves.append(curve_table(pixel, "pixel", pixel_fits))
    record = ThresholdsRecord(cell.model, cell.product, dataset, fingerprint, validation, image_fits, image_notes,
                              pixel_fits, pixel_notes)  # fmt: skip
    return record.to_json(), pd.concat([c for c in curves if not c.empty], ignore_index=True)
