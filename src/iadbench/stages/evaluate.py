"""``iadbench evaluate``: evaluate one (model, product) cell on its test split at every fitted threshold."""

from __future__ import annotations

import argparse

from iadbench.paths import ASSIGNMENT
from iadbench.stages import add_cell_arguments, read_params

HELP = "evaluate one cell on its test split at every fitted threshold"
IMPORTS = ("iadbench.evaluation.evaluate",)  # imported before any work: the warm worker preloads them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments: the cell."""
    add_cell_arguments(parser)


def run(args: argparse.Namespace) -> None:
    """Evaluate one (model, product) cell on its test split at every fitted threshold."""
    from iadbench.data.manifest import read_table
    from iadbench.evaluation.evaluate import write_cell
    from iadbench.formatting import fmt as _fmt
    from iadbench.params import EvaluateParams

    limit = EvaluateParams.from_params(read_params(args)).aupro_fpr_limit
    doc = write_cell(args.model, args.product, read_table(ASSIGNMENT), limit)
    pixel = doc["pixel"] or {}
    print(
        f"evaluated {args.model}/{args.product} on {doc['test']['images']} test images: image AUROC "
        f"{_fmt(doc['image']['auroc'])}, pixel AUPRO {_fmt(pixel.get('aupro'))}, mean IoU "
        + ", ".join(f"{r} {_fmt(v['mean_iou'])}" for r, v in pixel.get("at", {}).items())
    )
