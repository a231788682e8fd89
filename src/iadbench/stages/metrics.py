"""``iadbench metrics``: pool every cell into reports/metrics.json and the category and product tables."""

from __future__ import annotations

import argparse

from iadbench.stages import read_params

HELP = "pool all cells into reports/metrics.json and reports/tables/ (params: threshold)"
IMPORTS = ("iadbench.evaluation.tables",)  # imported before any work: the warm worker preloads them


def run(args: argparse.Namespace) -> None:
    """Pool every cell into reports/metrics.json and the category and product tables."""
    from iadbench.evaluation.tables import write_tables
    from iadbench.formatting import fmt as _fmt
    from iadbench.paths import CATEGORY_TABLE, HEADLINE, METRICS, PRODUCT_TABLE

    metrics = write_tables(read_params(args))
    for model, block in metrics.items():
        print(f"{model:14s} mean IoU {_fmt(block['mean_iou'])} [{_fmt(block['mean_iou_lo'])}, "
              f"{_fmt(block['mean_iou_hi'])}]  image AUROC {_fmt(block['image_auroc'])}  "
              f"pixel AUPRO {_fmt(block['pixel_aupro'])}")  # fmt: skip
    print(f"wrote {METRICS}, {HEADLINE}, {CATEGORY_TABLE}, {PRODUCT_TABLE}")
