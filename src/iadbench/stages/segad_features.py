"""``iadbench segad-features``: SegAD: segment statistics of one detector's maps on one product (BRF part, validation,
test).
"""

from __future__ import annotations

import argparse

from iadbench.stages import TORCH_LIBRARIES, add_cell_arguments, read_params

HELP = "SegAD: segment statistics of one detector's maps (params: segad)"
IMPORTS = (*TORCH_LIBRARIES, "iadbench.segad.stages")  # imported before any work: the warm worker preloads them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments: the cell."""
    add_cell_arguments(parser, "--detector", "one of segad.detectors")


def run(args: argparse.Namespace) -> None:
    """SegAD: segment statistics of one detector's maps on one product (BRF part, validation, test)."""
    from iadbench.segad.stages import features_cell

    s = features_cell(read_params(args), args.detector, args.product, progress=False if args.quiet else None)
    print(
        f"SegAD features of {args.detector} on {args.product}: {s['n_features']} per image ({s['n_segments']} "
        f"segment(s), {s['segments']}); BRF part {s['n_brf_good']} good + {s['n_brf_shots']} shot(s) + "
        f"{s['n_synthetic']} synthetic; detector {s['detector_seconds']} s, statistics {s['feature_seconds']} s"
    )
