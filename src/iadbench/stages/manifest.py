"""``iadbench manifest``: scan data/raw/<dataset> into data/manifest.csv, data/manifest_masks.csv and
data/manifest_segments.csv.
"""

from __future__ import annotations

import argparse

from iadbench.paths import MANIFEST, MANIFEST_MASKS, MANIFEST_SEGMENTS, dataset_root
from iadbench.stages import read_params

HELP = "scan data/raw/<each of data.datasets> into data/manifest.csv"


def run(args: argparse.Namespace) -> None:
    """Scan data/raw/<dataset> into data/manifest.csv, data/manifest_masks.csv and data/manifest_segments.csv."""
    from iadbench.data.manifest import scan_datasets, write_table
    from iadbench.params import DataParams

    data = DataParams.from_params(read_params(args))
    roots = {d: dataset_root(d) for d in data.datasets}
    images, masks, segments = scan_datasets(roots, {d: data.prefix(d) for d in data.datasets}, not args.quiet)
    write_table(images, MANIFEST)
    write_table(masks, MANIFEST_MASKS)
    write_table(segments, MANIFEST_SEGMENTS)
    print(f"{MANIFEST}: {len(images)} images of {len(roots)} dataset(s), {images['product'].nunique()} product(s); "
          f"{len(masks)} masks")  # fmt: skip
