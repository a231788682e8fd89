"""``iadbench train``: train one (model, product) cell."""

from __future__ import annotations

import argparse

from iadbench.stages import read_params

HELP = "train one (model, product) cell on the split's train rows"
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
    """Train one (model, product) cell."""
    from iadbench.models.run import train_cell

    meta = train_cell(read_params(args), args.model, args.product, progress=False if args.quiet else None)
    print(
        f"trained {args.model} on {args.product}: {meta['epochs']} epoch(s), {meta['fit_seconds']} s, "
        f"peak RSS {meta['peak_rss_mb']} MiB, weights {meta['weights_source']} {meta['backbone']}"
    )
