"""``iadbench predict``: write anomaly maps and scores of one (model, product) cell."""

from __future__ import annotations

import argparse

from iadbench.stages import read_params

HELP = "write anomaly maps and scores of one (model, product) cell"
IMPORTS = (
    "torch",
    "lightning",
    "anomalib.engine",
    "iadbench.models.run",
)  # what the verb imports before any work (the warm worker preloads it)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments."""
    parser.add_argument("--model", required=True, help="a registry name (iadbench models lists them)")
    parser.add_argument("--product", required=True)


def run(args: argparse.Namespace) -> None:
    """Write anomaly maps and scores of one (model, product) cell."""
    from iadbench.models.run import predict_cell

    report = predict_cell(read_params(args), args.model, args.product, progress=False if args.quiet else None)
    print(
        f"predicted {report['n_images']} images with {args.model} on {args.product}: "
        f"{report['images_per_second']} img/s, peak RSS {report['peak_rss_mb']} MiB"
    )
