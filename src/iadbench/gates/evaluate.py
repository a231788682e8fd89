"""The evaluation gate: every test image of the split evaluated exactly once per cell, per-image IoU in [0, 1], and
``TP + FN`` = the mask's defect pixels at every rule (the per-image rows every table is pooled from).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from iadbench.gates import GateResult, Table, run_checkpoint
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
    from iadbench.metrics.rules import level_rules

    columns = ["where", "defect_pixels", "minus_defect_pixels"] + [
        c for r in level_rules("pixel") for c in (f"pix_{r}_tp", f"pix_{r}_fn", f"iou_{r}")
    ]  # every column the pixel suite reads, also when no cell has a mask (an empty table passes)
    pixel_rows = pd.concat(pixels, ignore_index=True) if pixels else pd.DataFrame()
    return pd.DataFrame(images), pixel_rows.reindex(columns=list(dict.fromkeys([*pixel_rows.columns, *columns])))


def evaluate_gate(params: dict[str, Any], split: pd.DataFrame) -> GateResult:
    """Validate every cell's per-image evaluation against the split (suites ``gx/expectations/evaluate/*.json``:
    the pixel suite checks every pixel-level rule of :data:`iadbench.metrics.rules.RULE_TABLE`).
    """
    images, pixels = evaluation_facts(params, split)
    tables = {"images": Table(str(EVALUATE_DIR), images), "pixels": Table(str(EVALUATE_DIR), pixels)}
    return run_checkpoint("evaluate", tables)


def run(params: dict[str, Any]) -> GateResult:
    """The gate on every cell's ``reports/evaluate/<model>/<product>.csv`` against ``data/assignment.csv``."""
    from iadbench.data.manifest import read_table
    from iadbench.paths import ASSIGNMENT

    return evaluate_gate(params, read_table(ASSIGNMENT))
