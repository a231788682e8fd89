"""Every threshold rule fitted per (model, product) on the validation split only (docs/metrics.md); the thresholds
stage (:mod:`iadbench.stages.thresholds`) reads the cell and writes the files.

Pixel level pools all validation pixels of the product (good images and anomalous images with a mask); image level
pools the validation image scores. ROC-T, IoU-T and PR-T need anomalous validation samples; the normal-only rules
(good-FPR, mean + k·σ, max good, quantile × factor: :mod:`iadbench.metrics.rules`) are fitted on the good images
alone, always. Without anomalous validation samples the anomalous-sample rules are not fitted (not applicable: the
per-rule tables leave such products out and count them); only the headline, at ``threshold.method``, uses
``good_fpr`` in their place, under its own name, with a note.

``threshold.anomalous_images`` (an int, or ``all``) fits every rule on that many anomalous validation images per
product — drawn per ``threshold.seed``, stratified by defect type (:func:`anomalous_subset`) — and all the good ones:
the few-anomalies study (``iadbench study fewshot``) varies it. The other validation images are left out of the fit,
and the thresholds file lists the ones used.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from iadbench.errors import ParamsError
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
    normal_only_rules,
)
from iadbench.seeding import stream

CURVE_POINTS = 400  # points per level kept in the curve CSV (the chosen thresholds are always kept)


def fit_all(c: Counts, good: Counts, options: Options | None = None) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Fit every rule that the counts allow: the rules that need anomalous samples on the pooled counts ``c``, the
    normal-only rules on ``good`` (the good images' samples alone), each described on ``c``; notes say which could
    not be fitted and why.
    """
    fitted: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    rules, normal_only = anomalous_rules(), normal_only_rules()
    if c.n_pos > 0:
        fitted.update({rule: fit_threshold(c, rule, options).to_dict() for rule in rules})
    else:
        notes.append(f"no anomalous validation sample: {'/'.join(rules)} not applicable (not fitted); the headline "
                     f"uses {good_only_rule()} in their place")  # fmt: skip
    if good.n_neg > 0:
        for rule in normal_only:
            on_good = fit_threshold(good, rule, options)
            fitted[rule] = describe_at(c, rule, on_good.threshold, on_good.objective).to_dict()
    else:
        notes.append(f"no good validation image: {'/'.join(normal_only)} not fitted")
    return fitted, notes


ALL = "all"  # threshold.anomalous_images: every anomalous validation image


def anomalous_subset(rows: pd.DataFrame, count: int | str, seed: int, where: str = "params.yaml") -> np.ndarray:
    """Which anomalous rows of one product's validation images fit the thresholds (a bool mask over ``rows``).

    ``count`` = ``all`` keeps every one. Otherwise ``count`` images, stratified by ``defect_type``: each type's
    images in a random order, the types in a random order, then taken round-robin (one of each type before a second
    of any), so that 1, 2, 4, 8 images spread over as many types as they can. The draw is a function of (``seed``,
    product) and nested: the first k images of a larger draw are the draw of k. More than the product has is a
    :class:`~iadbench.errors.ParamsError` naming the product and its count.
    """
    anomalous = (rows["label"] == "anomalous").to_numpy()
    if count == ALL:
        return anomalous
    product = str(rows["product"].iloc[0]) if len(rows) else "?"
    if int(count) > anomalous.sum():
        raise ParamsError(f"{where}: threshold.anomalous_images = {count} but product {product!r} has only "
                          f"{int(anomalous.sum())} anomalous validation image(s)")  # fmt: skip
    rng = stream(seed, f"anomalous_subset:{product}")
    positions = np.flatnonzero(anomalous)
    types = rows["defect_type"].astype(str).to_numpy()[positions]
    ids = rows["image_id"].astype(str).to_numpy()[positions]
    groups = []
    for kind in sorted(set(types)):
        members = positions[types == kind][np.argsort(ids[types == kind])]  # a fixed order before the shuffle
        groups.append(list(members[rng.permutation(len(members))]))
    groups = [groups[i] for i in rng.permutation(len(groups))]
    order = [g[k] for k in range(max((len(g) for g in groups), default=0)) for g in groups if k < len(g)]
    keep = np.zeros(len(rows), dtype=bool)
    keep[order[: int(count)]] = True
    return keep


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
    cell: Cell,
    dataset: str | None,
    fingerprint: str,
    options: Options | None = None,
    factors: dict[str, float] | None = None,
    used: np.ndarray | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit every rule on one cell's validation images.

    Args:
        cell: the cell's validation images (:func:`iadbench.evaluation.cells.load_cell`).
        dataset: the cell's dataset (recorded).
        fingerprint: the split's fingerprint for the product (evaluate refuses thresholds of another split).
        options: the rules' settings, e.g. the good-only budget ``{"good_fpr": 0.05}``
            (:func:`~iadbench.metrics.rules.fit_threshold` fills in the defaults).
        factors: quantile × factor's factor per level (``{"pixel": 1.421, "image": 1.0}``); None: the options'.
        used: which validation images fit (:func:`anomalous_subset` or'd with the good ones); None: all.

    Returns:
        The thresholds document (a :class:`~iadbench.evaluation.records.ThresholdsRecord` as JSON) and the curve
        table (:func:`curve_table` per level).

    """
    n_images, n_anomalous_all = int(len(cell.labels)), int(cell.labels.sum())
    if used is not None and not used.all():
        cell = replace(cell, rows=cell.rows[used].reset_index(drop=True), scores=cell.scores[used],
                       maps=None if cell.maps is None else cell.maps[used],
                       masks=None if cell.masks is None else cell.masks[used])  # fmt: skip
    level_options = {lv: {**(options or {}), **({"good_factor": factors[lv]} if factors else {})}
                     for lv in ("image", "pixel")}  # fmt: skip
    labels = cell.labels
    scores = cell.scores.astype(np.float64)
    image_counts = confusion_counts(scores, labels)
    image_fits, image_notes = fit_all(image_counts, confusion_counts(scores[~labels], labels[~labels]),
                                      level_options["image"])  # fmt: skip
    validation: dict[str, Any] = {"images": n_images, "good": int((~labels).sum()), "anomalous": int(labels.sum())}
    if int(labels.sum()) != n_anomalous_all:
        validation.update(anomalous_available=n_anomalous_all,
                          anomalous_used=sorted(cell.rows.loc[labels, "image_id"].astype(str)))  # fmt: skip
        image_notes.append(f"fitted on {int(labels.sum())} of {n_anomalous_all} anomalous validation image(s) "
                           "(threshold.anomalous_images) and every good one")  # fmt: skip
    pixel_fits, pixel_notes = None, ["model writes no anomaly maps: image level only"]
    curves = [curve_table(image_counts, "image", image_fits)]
    if cell.maps is not None:
        keep = cell.pixel_rows
        pixel = pixel_curves(cell.maps[keep], cell.masks[keep], with_pro=False).pixels
        good_rows = ~labels
        good_pixels = (pixel_curves(cell.maps[good_rows], cell.masks[good_rows], with_pro=False).pixels
                       if good_rows.any() else confusion_counts(np.empty(0), np.empty(0, bool)))  # fmt: skip
        pixel_fits, pixel_notes = fit_all(pixel, good_pixels, level_options["pixel"])
        excluded = int((~keep).sum())
        if excluded:
            pixel_notes.append(f"{excluded} anomalous validation image(s) with an empty mask left out of pixel level")
        validation.update(pixels=int(pixel.n_pos + pixel.n_neg), defect_pixels=int(pixel.n_pos),
                          empty_mask_excluded=excluded)  # fmt: skip
        curves.append(curve_table(pixel, "pixel", pixel_fits))
    record = ThresholdsRecord(cell.model, cell.product, dataset, fingerprint, validation, image_fits, image_notes,
                              pixel_fits, pixel_notes)  # fmt: skip
    return record.to_json(), pd.concat([c for c in curves if not c.empty], ignore_index=True)
