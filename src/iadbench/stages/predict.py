"""``iadbench predict``: write anomaly maps and scores of one (model, product) cell."""

from __future__ import annotations

import argparse

from iadbench.stages import TORCH_LIBRARIES, add_cell_arguments, read_params

HELP = "write anomaly maps and scores of one (model, product) cell"
IMPORTS = (*TORCH_LIBRARIES, "iadbench.models.run")  # imported before any work: the warm worker preloads them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments: the cell."""
    add_cell_arguments(parser)


def run(args: argparse.Namespace) -> None:
    """Write anomaly maps and scores of one (model, product) cell."""
    from iadbench.models.run import predict_cell

    report = predict_cell(read_params(args), args.model, args.product, progress=False if args.quiet else None)
    print(
        f"predicted {report['n_images']} images with {args.model} on {args.product}: "
        f"{report['images_per_second']} img/s, peak RSS {report['peak_rss_mb']} MiB"
    )
