"""The split gate: disjoint splits, train only good (or the noise study's count), usable validation, counts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from iadbench.gates import GateResult, Table, product_counts, run_checkpoint

DESCRIPTION = "data/split.csv: disjoint splits, train good only, categories in validation and test, counts"


def split_gate(
    split: pd.DataFrame,
    manifest: pd.DataFrame,
    paths: dict[str, str],
    train_noise: float = 0.0,
    segad: Any = None,
    validation: str = "from_test",
) -> GateResult:
    """Run the split gate (suites ``gx/expectations/split/*.json``): disjoint splits, train only good, categories
    present, validation usable, counts. What the params decide is a column the suites compare with.

    With ``train_noise`` = f > 0 (the noise study) train holds exactly ``round(f·n)`` anomalous images per product
    (n = its train/good images) and the good images they replace are ``excluded``; without it, train is all good.
    With SegAD on (``segad``: :class:`iadbench.params.SegadParams`) split ``brf`` holds ``round(b·n)`` good images
    (n = the good images left in train before the BRF part is taken) and exactly ``segad.shots`` anomalous ones.
    """
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
    shipped = manifest[manifest["split_folder"] == "validation"].groupby("product").size()
    unused = products["product"].map(shipped).fillna(0).astype(int) if validation == "from_test" else 0
    products["n_excluded_expected"] = products["n_train_anomalous"] + unused  # + shipped validation images unused
    products["n_validation_anomalous_min"] = 0 if validation == "shipped" else 1  # shipped: good images only
    on = segad is not None and segad.on
    brf = split[split["split"] == "brf"]
    for label in ("good", "anomalous"):
        counts = brf[brf["label"] == label].groupby("product").size()
        products[f"n_brf_{label}"] = products["product"].map(counts).fillna(0).astype(int)
    good_pool = products["product"].map(
        split[split["split"].isin(["train", "brf"]) & (split["label"] == "good")].groupby("product").size()
    )
    products["n_brf_good_expected"] = np.floor(segad.brf_fraction * good_pool.fillna(0) + 0.5).astype(int) if on else 0
    products["n_brf_anomalous_expected"] = segad.shots if on else 0
    table["train_noise"] = train_noise
    tables = {
        "split": Table(paths["split"], table),
        "coverage": Table(paths["split"], coverage),
        "products": Table(paths["split"], products),
    }
    return run_checkpoint("split", tables)


def run(params: dict[str, Any]) -> GateResult:
    """The gate on ``data/split.csv`` against ``data/manifest.csv`` (params: split.train_noise, segad)."""
    from iadbench.data.manifest import read_table
    from iadbench.params import SegadParams, SplitParams
    from iadbench.paths import MANIFEST, SPLIT

    p = SplitParams.from_params(params)
    return split_gate(read_table(SPLIT), read_table(MANIFEST), {"split": str(SPLIT)}, p.train_noise,
                      SegadParams.from_params(params), p.validation)  # fmt: skip
