"""``iadbench figures``: draw the figures that threshold.method does not decide: overlays per headline rule, drift
examples.
"""

from __future__ import annotations

import argparse

from iadbench.stages import read_params

HELP = "draw the overlays of every figure rule (roc, iou, pr, good_fpr) and the drift examples: reports/overlays"
IMPORTS = ("iadbench.evaluation.panels",)  # imported before any work: the warm worker preloads them


def run(args: argparse.Namespace) -> None:
    """Draw the figures that threshold.method does not decide: overlays per headline rule, drift examples."""
    from iadbench.evaluation.cells import read_split_with_masks
    from iadbench.evaluation.panels import write_figures
    from iadbench.paths import OVERLAYS_DIR

    written = write_figures(read_params(args), read_split_with_masks())
    print(f"{OVERLAYS_DIR}: {len(written)} figure(s)")
