"""``iadbench thresholds``: fit every threshold rule of one (model, product) cell on its validation split."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from iadbench.stages import add_cell_arguments, read_params

if TYPE_CHECKING:
    import pandas as pd

    from iadbench.params import ThresholdParams

HELP = (
    "fit ROC-T, IoU-T, PR-T and the normal-only rules of one cell on its validation split (params: threshold, "
    "but method)"
)
IMPORTS = ("iadbench.evaluation.thresholds",)  # imported before any work: the warm worker preloads them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments: the cell."""
    add_cell_arguments(parser)


def run(args: argparse.Namespace) -> None:
    """Fit every threshold rule of one (model, product) cell on its validation split."""
    from iadbench.evaluation.cells import read_split_with_masks, without_masks_of
    from iadbench.params import EvaluateParams, ThresholdParams

    raw = read_params(args)
    p, excluded = ThresholdParams.from_params(raw), EvaluateParams.from_params(raw).excluded_mask_sources()
    doc = write_cell(args.model, args.product, without_masks_of(read_split_with_masks(), excluded), params=p)
    levels = [lv for lv in ("pixel", "image") if doc[lv]]
    summary = "; ".join(f"{lv}: " + ", ".join(f"{r}={f['threshold']:.4g}" for r, f in doc[lv].items()) for lv in levels)
    print(f"thresholds {args.model}/{args.product} ({doc['validation']['images']} validation images): {summary}")
    for note in doc["image_notes"] + (doc["pixel_notes"] or []):
        print(f"note: {note}")


def write_cell(
    model: str, product: str, split: pd.DataFrame, dataset: str | None = None, params: ThresholdParams | None = None
) -> dict[str, Any]:
    """Fit the cell's thresholds on its validation images (``data/maps/<model>/<product>.npz``); write
    ``reports/thresholds/<model>/<product>.json``, its ``.curves.csv`` (a DVC plot) and the report's figure of the
    curves, ``.png``: drawn here, by the stage whose outputs decide it, so that switching ``threshold.method`` (which
    reruns only metrics and report) redraws none of them. ``dataset``: read from the split rows when not given;
    ``params``: the ``threshold`` section (None: every default, all anomalous validation images).
    """
    from iadbench.evaluation.cells import load_cell, split_fingerprint, thresholds_path, write_cell_files
    from iadbench.evaluation.figures import threshold_curves
    from iadbench.evaluation.thresholds import anomalous_subset, fit_thresholds

    if dataset is None:
        dataset = str(split.loc[split["product"] == product, "dataset"].iloc[0])
    cell = load_cell(model, product, split, "validation")
    used = None
    if params is not None and params.anomalous_images != "all":
        used = ~cell.labels | anomalous_subset(cell.rows, params.anomalous_images, params.seed)
    doc, curves = fit_thresholds(
        cell, dataset, split_fingerprint(split, product),
        options=None if params is None else params.options(),
        factors=None if params is None else params.good_factor.model_dump(), used=used,
    )  # fmt: skip
    path = thresholds_path(model, product)
    write_cell_files(path, doc, curves, ".curves.csv")
    title = f"{model} / {product}: validation curves and fitted thresholds"
    threshold_curves(curves, doc, title, path.with_suffix(".png"))
    return doc
