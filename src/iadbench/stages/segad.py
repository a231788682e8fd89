"""``iadbench segad``: SegAD: fit one setup's boosted random forest on one product, score its validation and test
images.
"""

from __future__ import annotations

import argparse

from iadbench.stages import add_cell_arguments, read_params

HELP = "SegAD: fit one setup's boosted random forest and score its images"
IMPORTS = ("xgboost", "iadbench.segad.stages")  # imported before any work: the warm worker preloads them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments: the cell."""
    add_cell_arguments(parser, "--setup", "<detector>+segad or all+segad (params: segad)")


def run(args: argparse.Namespace) -> None:
    """SegAD: fit one setup's boosted random forest on one product and score its validation/test images."""
    from iadbench.segad.stages import fit_cell

    r = fit_cell(read_params(args), args.setup, args.product)
    print(
        f"{args.setup} on {args.product} ({r['mode']}): BRF on {r['n_brf_good']} good + {r['n_brf_anomalous']} "
        f"anomalous, {r['n_features']} features; fit {r['fit_seconds']} s, scored {r['n_images']} images"
    )
