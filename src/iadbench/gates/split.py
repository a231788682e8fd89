"""The split gate: disjoint splits, train only good (or the noise study's count), usable validation, counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from iadbench.gates import GateResult, Rule, Table, product_counts, run_gate

DESCRIPTION = "data/split.csv: disjoint splits, train good only, categories in validation and test, counts"


def split_gate(
    split: pd.DataFrame,
    manifest: pd.DataFrame,
    paths: dict[str, str],
    train_noise: float = 0.0,
    segad: Any = None,
) -> GateResult:
    """Run the split gate: disjoint splits, train only good, categories present, validation usable, counts.

    With ``train_noise`` = f > 0 (the noise study) train holds exactly ``round(f·n)`` anomalous images per product
    (n = its train/good images) and the good images they replace are ``excluded``; without it, train is all good.
    With SegAD on (``segad``: :class:`iadbench.params.SegadParams`) split ``brf`` holds ``round(b·n)`` good images
    (n = the good images left in train before the BRF part is taken) and exactly ``segad.shots`` anomalous ones.
    """
    import great_expectations as gx

    e = gx.expectations
    table = split.copy()
    table["n_categories"] = table["defect_categories"].str.len()
    coverage = manifest[["image_id", "image_path"]].merge(
        split[["image_id"]].drop_duplicates(), on="image_id", how="outer", indicator=True
    )
    coverage["_merge"] = coverage["_merge"].astype(str)
    coverage["image_path"] = coverage["image_path"].fillna(coverage["image_id"])
    products = product_counts(
        split, "split", ("n_validation_good", "n_validation_anomalous", "n_test_good", "n_test_anomalous")
    )
    n_manifest = manifest.groupby("product").size().rename("n_manifest")
    n_split = split.groupby("product").size().rename("n_split")
    products = products.merge(n_manifest, on="product", how="outer").merge(n_split, on="product", how="outer")
    products = products.fillna(0)
    train_folder = manifest[manifest["split_folder"] == "train"].groupby("product").size()
    expected = np.floor(train_noise * products["product"].map(train_folder).fillna(0) + 0.5).astype(int)
    products["n_train_noise_expected"] = expected
    anomalous_train = split[(split["split"] == "train") & (split["label"] == "anomalous")].groupby("product").size()
    products["n_train_anomalous"] = products["product"].map(anomalous_train).fillna(0).astype(int)
    excluded = split[split["split"] == "excluded"].groupby("product").size()
    products["n_excluded"] = products["product"].map(excluded).fillna(0).astype(int)
    splits = ["train", "validation", "test", "excluded"] if train_noise > 0 else ["train", "validation", "test"]
    segad_rules: list[Rule] = []
    if segad is not None and segad.on:
        splits.append("brf")
        brf = split[split["split"] == "brf"]
        for label in ("good", "anomalous"):
            counts = brf[brf["label"] == label].groupby("product").size()
            products[f"n_brf_{label}"] = products["product"].map(counts).fillna(0).astype(int)
        good_pool = products["product"].map(
            split[split["split"].isin(["train", "brf"]) & (split["label"] == "good")].groupby("product").size()
        )
        products["n_brf_good_expected"] = np.floor(segad.brf_fraction * good_pool.fillna(0) + 0.5).astype(int)
        products["n_brf_anomalous_expected"] = segad.shots
        segad_rules = [
            Rule(
                "products", f"the SegAD BRF part holds round({segad.brf_fraction}·n) good train images",
                e.ExpectColumnPairValuesToBeEqual(column_A="n_brf_good", column_B="n_brf_good_expected"),
                "product", ("n_brf_good", "n_brf_good_expected"),
            ),
            Rule(
                "products", f"the SegAD BRF part holds segad.shots = {segad.shots} anomalous images",
                e.ExpectColumnPairValuesToBeEqual(column_A="n_brf_anomalous", column_B="n_brf_anomalous_expected"),
                "product", ("n_brf_anomalous", "n_brf_anomalous_expected"),
            ),
        ]  # fmt: skip
    if train_noise > 0:
        train_rule = Rule(
            "products", f"train holds round({train_noise}·n_train) anomalous images (split.train_noise)",
            e.ExpectColumnPairValuesToBeEqual(column_A="n_train_anomalous", column_B="n_train_noise_expected"),
            "product", ("n_train_anomalous", "n_train_noise_expected"),
        )  # fmt: skip
    else:
        train_rule = Rule(
            "split", "train holds only good images",
            e.ExpectColumnValuesToBeInSet(
                column="label", value_set=["good"], row_condition='split=="train"', condition_parser="pandas"
            ),
            "image_path",
        )  # fmt: skip
    rules = [
        Rule(
            "split", "no image in two splits",
            e.ExpectColumnValuesToBeUnique(column="image_id"), "image_path", ("split",),
        ),
        Rule(
            "split", f"split is {', '.join(splits)}",
            e.ExpectColumnValuesToBeInSet(column="split", value_set=splits), "image_path",
        ),
        train_rule,
        *segad_rules,
        Rule(
            "products", "each product excludes as many good train images as anomalous ones joined train",
            e.ExpectColumnPairValuesToBeEqual(column_A="n_excluded", column_B="n_train_anomalous"),
            "product", ("n_excluded", "n_train_anomalous"),
        ),
        Rule(
            "split", "every anomalous validation/test image has at least one known defect category",
            e.ExpectColumnValuesToBeBetween(
                column="n_categories", min_value=1, row_condition='label=="anomalous"', condition_parser="pandas"
            ),
            "image_path", ("split",),
        ),
        Rule(
            "split", "every image has a background category (with/without)",
            e.ExpectColumnValuesToBeInSet(column="background", value_set=["with", "without"]), "image_path",
        ),
        Rule(
            "coverage", "every manifest image is in the split, and only those",
            e.ExpectColumnValuesToBeInSet(column="_merge", value_set=["both"]), "image_path", ("_merge",),
        ),
        Rule(
            "products", "split counts match the manifest",
            e.ExpectColumnPairValuesToBeEqual(column_A="n_manifest", column_B="n_split"),
            "product", ("n_manifest", "n_split"),
        ),
        Rule(
            "products", "every product's validation split holds good images",
            e.ExpectColumnValuesToBeBetween(column="n_validation_good", min_value=1), "product",
        ),
        Rule(
            "products", "every product's validation split holds anomalous images",
            e.ExpectColumnValuesToBeBetween(column="n_validation_anomalous", min_value=1), "product",
        ),
        Rule(
            "products", "every product's test split holds good images",
            e.ExpectColumnValuesToBeBetween(column="n_test_good", min_value=1), "product",
        ),
        Rule(
            "products", "every product's test split holds anomalous images",
            e.ExpectColumnValuesToBeBetween(column="n_test_anomalous", min_value=1), "product",
        ),
    ]  # fmt: skip
    tables = {
        "split": Table(paths["split"], table),
        "coverage": Table(paths["split"], coverage),
        "products": Table(paths["split"], products),
    }
    return run_gate("split", tables, rules)


def run(params: dict[str, Any]) -> GateResult:
    """The gate on ``data/split.csv`` against ``data/manifest.csv`` (params: split.train_noise, segad)."""
    from iadbench.data.manifest import read_table
    from iadbench.params import SegadParams, SplitParams
    from iadbench.paths import MANIFEST, SPLIT

    noise = SplitParams.from_params(params).train_noise
    return split_gate(read_table(SPLIT), read_table(MANIFEST), {"split": str(SPLIT)}, noise,
                      SegadParams.from_params(params))  # fmt: skip
