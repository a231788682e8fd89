"""``iadbench manifest``: scan data/raw/<dataset> (and its drawn masks, annotation/masks/<dataset>) into
data/manifest.csv, data/manifest_masks.csv and data/manifest_segments.csv.
"""

from __future__ import annotations

import argparse

from iadbench.paths import MANIFEST, MANIFEST_MASKS, MANIFEST_SEGMENTS, dataset_root
from iadbench.stages import read_params

HELP = "scan data/raw/<each of data.datasets> into data/manifest.csv"


def run(args: argparse.Namespace) -> None:
    """Scan data/raw/<dataset> into data/manifest.csv, data/manifest_masks.csv and data/manifest_segments.csv."""
    from iadbench.data.drawn import PROVENANCE, drawn_masks, drawn_root, read_pending
    from iadbench.data.manifest import scan_datasets, write_table
    from iadbench.params import DataParams

    data = DataParams.from_params(read_params(args))
    roots = {d: dataset_root(d) for d in data.datasets}
    drawn = {d: drawn_masks(drawn_root(d)) for d in data.datasets}
    pending = {d: read_pending(root) for d, root in roots.items() if root.is_dir()}
    records = {d: drawn_root(d) / PROVENANCE for d in data.datasets}
    images, masks, segments = scan_datasets(roots, {d: data.prefix(d) for d in data.datasets}, not args.quiet, drawn,
                                            pending, records)  # fmt: skip
    write_table(images, MANIFEST)
    write_table(masks, MANIFEST_MASKS)
    write_table(segments, MANIFEST_SEGMENTS)
    sources = images["mask_source"].value_counts()
    drawn_note = ", ".join(f"{sources[s]} {s}" for s in sources.index if s not in ("", "shipped"))
    print(f"{MANIFEST}: {len(images)} images of {len(roots)} dataset(s), {images['product'].nunique()} product(s); "
          f"{len(masks)} masks" + (f" (anomalous images' masks: {drawn_note})" if drawn_note else ""))  # fmt: skip
