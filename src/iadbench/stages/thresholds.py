"""``iadbench thresholds``: fit every threshold rule of one (model, product) cell on its validation split."""

from __future__ import annotations

import argparse

from iadbench.paths import ASSIGNMENT
from iadbench.stages import add_cell_arguments, read_params

HELP = "fit ROC-T, IoU-T, PR-T and good_fpr of one cell on its validation split (params: threshold.good_fpr)"
IMPORTS = ("iadbench.evaluation.thresholds",)  # imported before any work: the warm worker preloads them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments: the cell."""
    add_cell_arguments(parser)


def run(args: argparse.Namespace) -> None:
    """Fit every threshold rule of one (model, product) cell on its validation split."""
    from iadbench.data.manifest import read_table
    from iadbench.evaluation.thresholds import write_cell
    from iadbench.params import ThresholdParams

    budget = ThresholdParams.from_params(read_params(args)).good_fpr
    doc = write_cell(args.model, args.product, read_table(ASSIGNMENT), options={"good_fpr": budget})
    levels = [lv for lv in ("pixel", "image") if doc[lv]]
    summary = "; ".join(f"{lv}: " + ", ".join(f"{r}={f['threshold']:.4g}" for r, f in doc[lv].items()) for lv in levels)
    print(f"thresholds {args.model}/{args.product} ({doc['validation']['images']} validation images): {summary}")
    for note in doc["image_notes"] + (doc["pixel_notes"] or []):
        print(f"note: {note}")
