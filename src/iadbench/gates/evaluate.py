"""The evaluation gate: every test image of the split evaluated exactly once per cell, per-image IoU in [0, 1], and
``TP + FN`` = the mask's defect pixels at every rule (the per-image rows every table is pooled from).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from iadbench.gates import GateResult, Rule, Table, run_gate
from iadbench.params import evaluated_models
from iadbench.paths import EVALUATE_DIR

DESCRIPTION = "reports/evaluate: each test image once per cell; IoU in [0, 1]; TP + FN = the mask's defect pixels"


def evaluation_facts(params: dict[str, Any], split: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(images, pixels)``: one row per (cell, image) of the split's test rows or the file, with how many rows the
    file has for it and the split it belongs to; and the file's rows of anomalous images with a mask.
    """
    images, pixels = [], []
    split_of = dict(zip(split["image_id"], split["split"], strict=True))
    for model in evaluated_models(params):
        for product in params["data"]["products"]:
            path = EVALUATE_DIR / model / f"{product}.csv"
            rows = pd.read_csv(path) if path.is_file() else pd.DataFrame({"image_id": []})
            counts = rows["image_id"].value_counts()
            expected = split.loc[(split["product"] == product) & (split["split"] == "test"), "image_id"]
            for image_id in sorted(set(expected) | set(counts.index)):
                images.append({"file": str(path), "where": f"{path}#{image_id}", "image_id": image_id,
                               "n_rows": int(counts.get(image_id, 0)),
                               "split": split_of.get(image_id, "none")})  # fmt: skip
            if "has_mask" in rows:
                masked = rows[rows["has_mask"].astype(bool)].copy()
                masked["where"] = str(path) + "#" + masked["image_id"].astype(str)
                masked["minus_defect_pixels"] = -masked["defect_pixels"]
                pixels.append(masked)
    return pd.DataFrame(images), (pd.concat(pixels, ignore_index=True) if pixels else pd.DataFrame())


def evaluate_gate(params: dict[str, Any], split: pd.DataFrame) -> GateResult:
    """Validate every cell's per-image evaluation against the split."""
    import great_expectations as gx

    from iadbench.metrics.registry import level_rules

    e = gx.expectations
    images, pixels = evaluation_facts(params, split)
    rules = [
        Rule("images", "every test image of the split is evaluated exactly once per cell",
             e.ExpectColumnValuesToBeBetween(column="n_rows", min_value=1, max_value=1), "where", ("n_rows",)),
        Rule("images", "only test images are evaluated (never validation, train or an image not in the split)",
             e.ExpectColumnValuesToBeInSet(column="split", value_set=["test"]), "where", ("split",)),
    ]  # fmt: skip
    tables = {"images": Table(str(EVALUATE_DIR), images)}
    if len(pixels):
        tables["pixels"] = Table(str(EVALUATE_DIR), pixels)
        for rule in (r for r in level_rules("pixel") if f"iou_{r}" in pixels):
            rules += [
                Rule("pixels", f"per-image IoU at {rule} lies in [0, 1]",
                     e.ExpectColumnValuesToBeBetween(column=f"iou_{rule}", min_value=0, max_value=1), "where",
                     (f"iou_{rule}",)),
                Rule("pixels", f"TP + FN at {rule} = the mask's defect pixels",
                     e.ExpectMulticolumnSumToEqual(
                         column_list=[f"pix_{rule}_tp", f"pix_{rule}_fn", "minus_defect_pixels"], sum_total=0),
                     "where", (f"pix_{rule}_tp", f"pix_{rule}_fn", "defect_pixels")),
            ]  # fmt: skip
    return run_gate("evaluate", tables, rules)


def run(params: dict[str, Any]) -> GateResult:
    """The gate on every cell's ``reports/evaluate/<model>/<product>.csv`` against ``data/assignment.csv``."""
    from iadbench.data.manifest import read_table
    from iadbench.paths import ASSIGNMENT

    return evaluate_gate(params, read_table(ASSIGNMENT))
