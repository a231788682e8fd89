"""``iadbench thresholds``: fit every threshold rule of one (model, product) cell on its validation split."""

from __future__ import annotations

import argparse

from iadbench.paths import ASSIGNMENT
from iadbench.stages import add_cell_arguments

HELP = "fit ROC-T, IoU-T, PR-T and good_fpr1 of one cell on its validation split"
IMPORTS = ("iadbench.evaluation.thresholds",)  # imported before any work: the warm worker preloads them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments: the cell."""
    add_cell_arguments(parser)


def run(args: argparse.Namespace) -> None:
    """Fit every threshold rule of one (model, product) cell on its validation split."""
    from iadbench.data.manifest import read_table
    from iadbench.evaluation.thresholds import write_cell

    doc = write_cell(args.model, args.product, read_table(ASSIGNMENT))
    levels = [lv for lv in ("pixel", "image") if doc[lv]]
    summary = "; ".join(f"{lv}: " + ", ".join(f"{r}={f['threshold']:.4g}" for r, f in doc[lv].items()) for lv in levels)
    print(f"thresholds {args.model}/{args.product} ({doc['validation']['images']} validation images): {summary}")
    for note in doc["image_notes"] + (doc["pixel_notes"] or []):
        print(f"note: {note}")
