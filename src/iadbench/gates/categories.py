"""The categories gate: every anomalous image has known defect categories and every image a background."""

from __future__ import annotations

from typing import Any

import pandas as pd

from iadbench.gates import GateResult, Table, run_checkpoint

DESCRIPTION = "data/categories.csv: every anomalous image has known defect categories, every image a background"


def categories_gate(categories: pd.DataFrame, manifest: pd.DataFrame, paths: dict[str, str]) -> GateResult:
    """Run the categories gate (suite ``gx/expectations/categories/categories.json``) on the resolved categories
    joined with the manifest; the manifest's image count is the suite's ``n_manifest_images``.
    """
    table = categories.merge(manifest[["image_id", "split_folder", "image_path"]], on="image_id", how="left")
    table["n_categories"] = table["defect_categories"].str.len()
    tables = {"categories": Table(paths["categories"], table)}
    return run_checkpoint("categories", tables, {"n_manifest_images": len(manifest)})


def run(params: dict[str, Any]) -> GateResult:
    """The gate on ``data/categories.csv`` joined with ``data/manifest.csv``."""
    from iadbench.data.manifest import read_table
    from iadbench.paths import CATEGORIES, MANIFEST

    return categories_gate(read_table(CATEGORIES), read_table(MANIFEST), {"categories": str(CATEGORIES)})
