"""The tables gate: the image counts of Table 1 (per defect category, background, all; per dataset and pooled) and
of the products table equal an independent recount of the split's test rows, so a join or a filter that lost or
doubled images stops the pipeline before the report shows its numbers.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from iadbench.gates import GateResult, Table, run_checkpoint
from iadbench.paths import CATEGORY_TABLE, PRODUCT_TABLE

DESCRIPTION = "reports/tables: n per defect category, background and product equal the split's test counts"


def expected_counts(split: pd.DataFrame, products: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(groups, products)``: test images per (dataset, kind, group) — a defect category counts the anomalous
    images carrying it, a background every image on it, ``all`` every image; dataset ``all`` pools the datasets —
    and per product. Recounted from ``data/split.csv``, not from the evaluation.
    """
    from iadbench.taxonomy import BACKGROUNDS, DEFECT_CATEGORIES, split_categories

    test = split[(split["split"] == "test") & split["product"].isin(products)].copy()
    cats = test["defect_categories"].fillna("").astype(str).map(split_categories)
    anomalous = test["label"] == "anomalous"
    rows = []
    for dataset, part in [*test.groupby("dataset"), ("all", test)]:
        idx = part.index
        for c in DEFECT_CATEGORIES:
            carrying = anomalous.loc[idx] & cats.loc[idx].map(lambda cs, c=c: c in cs)
            rows.append({"dataset": dataset, "kind": "defect_category", "group": c, "expected_n_images":
                         int(carrying.sum()), "expected_n_anomalous": int(carrying.sum())})  # fmt: skip
        for b in BACKGROUNDS:
            on = part["background"] == b
            rows.append({"dataset": dataset, "kind": "background", "group": b, "expected_n_images": int(on.sum()),
                         "expected_n_anomalous": int((on & anomalous.loc[idx]).sum())})  # fmt: skip
        rows.append({"dataset": dataset, "kind": "all", "group": "all", "expected_n_images": len(part),
                     "expected_n_anomalous": int(anomalous.loc[idx].sum())})  # fmt: skip
    per_product = test.groupby("product").size().rename("expected_n_images").reset_index()
    return pd.DataFrame(rows).astype({"dataset": str}), per_product


def tables_gate(
    categories: pd.DataFrame, product_table: pd.DataFrame, split: pd.DataFrame, products: list[str]
) -> GateResult:
    """Validate the two tables' counts against the split (suites ``gx/expectations/tables/*.json``)."""
    groups, per_product = expected_counts(split, products)
    keys = ["dataset", "kind", "group"]
    cat = categories.astype({"dataset": str}).merge(groups, on=keys, how="left")
    cat[["expected_n_images", "expected_n_anomalous"]] = cat[["expected_n_images", "expected_n_anomalous"]].fillna(-1)
    cat["where"] = f"{CATEGORY_TABLE}#" + cat["model"] + "/" + cat["rule"] + "/" + cat["dataset"] + "/" + cat["group"]
    prod = product_table.merge(per_product, on="product", how="left").fillna({"expected_n_images": -1})
    prod["where"] = f"{PRODUCT_TABLE}#" + prod["model"] + "/" + prod["product"]
    counts = ["where", "n_images", "expected_n_images", "n_anomalous", "expected_n_anomalous"]
    tables = {  # only what the suites read: a rule switch changes the tables' values, never these facts
        "categories": Table(str(CATEGORY_TABLE), cat[counts]),
        "products": Table(str(PRODUCT_TABLE), prod[counts[:3]]),
    }
    return run_checkpoint("tables", tables)


def run(params: dict[str, Any]) -> GateResult:
    """The gate on ``reports/tables/{categories,products}.csv`` against ``data/split.csv``."""
    from iadbench.data.manifest import read_table
    from iadbench.paths import SPLIT

    categories = pd.read_csv(CATEGORY_TABLE, dtype={"dataset": str})
    product_table = pd.read_csv(PRODUCT_TABLE, dtype={"dataset": str, "product": str})
    return tables_gate(categories, product_table, read_table(SPLIT), list(params["data"]["products"]))
