"""``iadbench export``: one benchmarked (model, product, rule) as a self-contained folder for the line.

The folder (:mod:`iadbench.deploy.bundle`) holds the graph with iadbench's corrections inside it, the rule's
thresholds in the units of its map, the preprocessing as data and a model card; :mod:`iadbench.deploy.export`
writes it from the built workspace. ``iadbench infer`` runs it.
"""

from __future__ import annotations

import argparse

from iadbench.stages import TORCH_LIBRARIES, add_cell_arguments, read_params

HELP = "export a trained cell with a fitted threshold rule (torch | onnx | openvino) and its model card"
IMPORTS = (*TORCH_LIBRARIES, "iadbench.deploy.export")  # imported before any work: the warm worker preloads them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments."""
    add_cell_arguments(parser)
    parser.add_argument("--rule", help="threshold rule fitted on validation (default: threshold.method)")
    parser.add_argument("--format", default="torch", help="torch | onnx | openvino (default torch)")
    parser.add_argument("--out", help="folder to write (default exports/<model>/<product>/<rule>-<format>)")
    parser.add_argument("--no-git", action="store_true", help="record no commit in the card (the export stage: "
                        "dvc.lock ties the folder to its commit)")  # fmt: skip


def run(args: argparse.Namespace) -> None:
    """Export the cell and print where, and the check of the converted graph."""
    from pathlib import Path

    from iadbench.deploy.export import default_out, export_cell

    params = read_params(args)
    rule = args.rule or str(params["threshold"]["method"])
    out = Path(args.out) if args.out else default_out(args.model, args.product, rule, args.format)
    manifest = export_cell(params, args.model, args.product, rule, args.format, out, record_git=not args.no_git)
    print(f"exported {args.model}/{args.product} at {rule} as {manifest['format']} to {out} "
          f"({', '.join(manifest['files'])})")  # fmt: skip
