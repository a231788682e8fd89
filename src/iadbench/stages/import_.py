"""``iadbench import``: copy a dataset (any registered format) into data/raw/NAME in the MVTec layout and track it with
DVC.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "copy a dataset (mvtec, btad, visa, mvtec3d, folder) to data/raw/NAME; dvc add"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments."""
    parser.add_argument("path", help="the dataset as it ships (read only, never modified)")
    parser.add_argument("--name", required=True, help="dataset name: data/raw/NAME, an entry of data.datasets")
    parser.add_argument(
        "--format",
        default="auto",
        help="source layout: mvtec, btad, visa, mvtec3d or folder (default auto: detected; the error lists what each "
        "registered format looks for)",
    )
    parser.add_argument("--export", type=Path, help="Label Studio JSON export with the dataset's categories")
    parser.add_argument(
        "--defect-map", help="provisional categories before labelling: 'crack=structural,stain=surface'"
    )
    parser.add_argument(
        "--background", choices=["with", "without"], help="background category of the provisional export"
    )
    parser.add_argument(
        "--no-default-categories",
        action="store_true",
        help="MVTec AD / BTAD: do not apply the shipped per-type category map",
    )
    parser.add_argument(
        "--missing-masks",
        default="error",
        choices=["error", "empty", "skip", "annotate"],
        help="anomalous images without a mask: refuse (default), empty mask (image-level only), leave out, or "
        "annotate (mask pending until drawn in Label Studio: image-level metrics now, pixel metrics once drawn)",
    )
    parser.add_argument("--product", help="folder format: the product name (default: --name)")
    parser.add_argument(
        "--good-test-fraction",
        type=float,
        default=0.2,
        help="folder format: share of good images that go to test/good (default 0.2, as anomalib)",
    )
    parser.add_argument("--no-dvc", action="store_true", help="copy only, do not `dvc add`")


def run(args: argparse.Namespace) -> None:
    """Copy a dataset (any registered format) into data/raw/NAME in the MVTec layout and track it with DVC."""
    from iadbench.data.formats import Options
    from iadbench.data.importer import import_dataset, parse_defect_map

    defect_map = parse_defect_map(args.defect_map) if args.defect_map else None
    options = Options(product=args.product or "", good_test_fraction=args.good_test_fraction)
    fmt = None if args.format == "auto" else args.format
    result = import_dataset(
        Path(args.path), args.name, args.export, defect_map, args.background, track=not args.no_dvc, fmt=fmt,
        options=options, missing_masks=args.missing_masks, default_categories=not args.no_default_categories,
        progress=not args.quiet,
    )  # fmt: skip
    print(f"imported ({result.fmt} format, {result.record['images']} images): " + ", ".join(map(str, result.added)))
    for note in result.notes:
        print(f"  note: {note}")
    if args.no_dvc:
        return
    from iadbench.annotation.workflow import import_steps

    products = sorted(p.name for p in result.added[0].iterdir() if p.is_dir())
    print("next (dvc push sends the data to the DVC remote, so that a clone restores it with dvc pull):")
    for line in import_steps(args.name, result.added, products):
        print(f"  {line}")
