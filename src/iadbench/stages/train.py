"""``iadbench train``: train one (model, product) cell."""

from __future__ import annotations

import argparse

from iadbench.stages import TORCH_LIBRARIES, add_cell_arguments, read_params

HELP = "train one (model, product) cell on the split's train rows"
IMPORTS = (*TORCH_LIBRARIES, "iadbench.models.run")  # imported before any work: the warm worker preloads them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments: the cell."""
    add_cell_arguments(parser)


def run(args: argparse.Namespace) -> None:
    """Train one (model, product) cell."""
    from iadbench.models.run import train_cell

    meta = train_cell(read_params(args), args.model, args.product, progress=False if args.quiet else None)
    print(
        f"trained {args.model} on {args.product}: {meta['epochs']} epoch(s), {meta['fit_seconds']} s, "
        f"peak RSS {meta['peak_rss_mb']} MiB, weights {meta['weights_source']} {meta['backbone']}"
    )
