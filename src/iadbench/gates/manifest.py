"""The manifest gate: every image and mask of every dataset decodes, pairs and has a usable size; products have
their folders; a segments.png is readable and sized like its product's images (SegAD).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from iadbench.gates import GateResult, Table, product_counts, run_checkpoint
from iadbench.params import GateParams

DESCRIPTION = "data/manifest*.csv: images and masks decode, pair and have one size per product; segments.png"


def manifest_gate(
    images: pd.DataFrame,
    masks: pd.DataFrame,
    params: GateParams,
    paths: dict[str, str],
    segments: pd.DataFrame | None = None,
) -> GateResult:
    """Run the manifest gate (suites ``gx/expectations/manifest/*.json``); ``paths`` names the files the tables came
    from. ``params.empty_mask`` is a column of the images table: the suite holds the empty-mask rule twice, critical
    where it says ``fail`` and a warning otherwise.
    """
    products = product_counts(images, "split_folder", ("n_train_good", "n_test_good", "n_test_anomalous"))
    # a product's folder: three levels above any of its images (<product>/<split>/<type>/<file>), whatever dataset
    folder = {
        p: Path(path).parents[2].as_posix() for p, path in zip(images["product"], images["image_path"], strict=True)
    }
    products["product_path"] = [folder.get(p, p) for p in products["product"]]
    if segments is None:  # no table: no product has a segments.png (an empty table passes every rule)
        from iadbench.data.manifest import SEGMENT_COLUMNS

        segments = pd.DataFrame(columns=SEGMENT_COLUMNS)
    tables = {
        "images": Table(paths["images"], images.assign(empty_mask=params.empty_mask)),
        "masks": Table(paths["masks"], masks),
        "products": Table(paths["images"], products),
        "segments": Table(paths.get("segments", "data/manifest_segments.csv"), segments),
    }
    return run_checkpoint("manifest", tables)


def run(params: dict[str, Any]) -> GateResult:
    """The gate on ``data/manifest.csv``, ``data/manifest_masks.csv`` and ``data/manifest_segments.csv``."""
    from iadbench.data.manifest import read_table
    from iadbench.paths import MANIFEST, MANIFEST_MASKS, MANIFEST_SEGMENTS

    paths = {"images": str(MANIFEST), "masks": str(MANIFEST_MASKS), "segments": str(MANIFEST_SEGMENTS)}
    segments = read_table(MANIFEST_SEGMENTS) if MANIFEST_SEGMENTS.is_file() else None
    return manifest_gate(
        read_table(MANIFEST), read_table(MANIFEST_MASKS), GateParams.from_params(params), paths, segments
    )
