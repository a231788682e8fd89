"""The categories gate: every anomalous image has known defect categories and every image a background."""

from __future__ import annotations

from typing import Any

import pandas as pd

from iadbench.gates import WARNING, GateResult, Rule, Table, run_gate

DESCRIPTION = "data/categories.csv: every anomalous image has known defect categories, every image a background"


def categories_gate(categories: pd.DataFrame, manifest: pd.DataFrame, paths: dict[str, str]) -> GateResult:
    """Run the categories gate on the resolved categories joined with the manifest."""
    import great_expectations as gx

    e = gx.expectations
    table = categories.merge(manifest[["image_id", "split_folder", "image_path"]], on="image_id", how="left")
    table["n_categories"] = table["defect_categories"].str.len()
    rules = [
        Rule(
            "categories", f"one row per manifest image ({len(manifest)})",
            e.ExpectTableRowCountToEqual(value=len(manifest)),
        ),
        Rule(
            "categories", "every anomalous test image has at least one known defect category",
            e.ExpectColumnValuesToBeBetween(
                column="n_categories", min_value=1, row_condition='label=="anomalous"', condition_parser="pandas"
            ),
            "image_path", ("task_id", "n_annotators"),
        ),
        Rule(
            "categories", "a good image carries no defect category (the export labels a good image anomalous)",
            e.ExpectColumnValuesToBeInSet(
                column="n_categories", value_set=[0], row_condition='label=="good"', condition_parser="pandas"
            ),
            "image_path", ("task_id", "defect_categories"),
        ),
        Rule(
            "categories", "every image has a background category (with/without)",
            e.ExpectColumnValuesToBeInSet(column="background", value_set=["with", "without"]), "image_path",
        ),
        Rule(
            "categories", "annotators agree on the defect category (a tie is kept as multi-label)",
            e.ExpectColumnValuesToBeInSet(column="defect_tie", value_set=[False]),
            "image_path", ("defect_categories", "defect_agreement"), WARNING,
        ),
        Rule(
            "categories", "annotators agree on the background category",
            e.ExpectColumnValuesToBeInSet(column="background_tie", value_set=[False]),
            "image_path", ("background",), WARNING,
        ),
    ]  # fmt: skip
    return run_gate("categories", {"categories": Table(paths["categories"], table)}, rules)


def run(params: dict[str, Any]) -> GateResult:
    """The gate on ``data/categories.csv`` joined with ``data/manifest.csv``."""
    from iadbench.data.manifest import read_table
    from iadbench.paths import CATEGORIES, MANIFEST

    return categories_gate(read_table(CATEGORIES), read_table(MANIFEST), {"categories": str(CATEGORIES)})
