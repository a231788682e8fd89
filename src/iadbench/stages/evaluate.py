"""``iadbench evaluate``: evaluate one (model, product) cell on its test split at every fitted threshold."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from iadbench.stages import add_cell_arguments, read_params

if TYPE_CHECKING:
    import pandas as pd

    from iadbench.evaluation.records import ThresholdsRecord

HELP = "evaluate one cell on its test split at every fitted threshold"
IMPORTS = ("iadbench.evaluation.evaluate",)  # imported before any work: the warm worker preloads them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments: the cell."""
    add_cell_arguments(parser)


def run(args: argparse.Namespace) -> None:
    """Evaluate one (model, product) cell on its test split at every fitted threshold."""
    from iadbench.evaluation.cells import read_split_with_masks, without_masks_of
    from iadbench.formatting import fmt as _fmt
    from iadbench.params import EvaluateParams

    params = EvaluateParams.from_params(read_params(args))
    excluded = params.excluded_mask_sources()
    split = without_masks_of(read_split_with_masks(), excluded)
    doc = write_cell(args.model, args.product, split, params.aupro_fpr_limit, excluded)
    pixel = doc["pixel"] or {}
    print(
        f"evaluated {args.model}/{args.product} on {doc['test']['images']} test images: image AUROC "
        f"{_fmt(doc['image']['auroc'])}, pixel AUPRO {_fmt(pixel.get('aupro'))}, mean IoU "
        + ", ".join(f"{r} {_fmt(v['mean_iou'])}" for r, v in pixel.get("at", {}).items())
    )


def read_thresholds(model: str, product: str, split: pd.DataFrame) -> ThresholdsRecord:
    """The cell's :class:`~iadbench.evaluation.records.ThresholdsRecord`, refused if it was fitted on another split
    (its fingerprint differs).
    """
    from iadbench.errors import InputError
    from iadbench.evaluation.cells import split_fingerprint, thresholds_path
    from iadbench.evaluation.records import ThresholdsRecord

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


def write_cell(
    model: str, product: str, split: pd.DataFrame, aupro_fpr_limit: float, excluded: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Evaluate the cell's test images (its maps, its thresholds, its predict record for provenance); write
    ``reports/evaluate/<model>/<product>.json`` and the per-image ``.csv`` beside it. ``excluded``: the mask sources
    whose masks ``split`` no longer holds (recorded, see :func:`iadbench.evaluation.cells.without_masks_of`).
    """
    import json

    from iadbench.evaluation.cells import load_cell, write_cell_files
    from iadbench.evaluation.evaluate import evaluate, evaluate_path
    from iadbench.paths import PREDICT_REPORTS

    fitted = read_thresholds(model, product, split)
    cell = load_cell(model, product, split, "test")
    predict = PREDICT_REPORTS / model / f"{product}.json"
    provenance = json.loads(predict.read_text()) if predict.is_file() else {}
    doc, table = evaluate(cell, fitted, provenance, aupro_fpr_limit, excluded)
    return write_cell_files(evaluate_path(model, product), doc, table, ".csv")
