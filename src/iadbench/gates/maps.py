"""The maps gate: one finite anomaly map of the declared shape, and one finite score, per validation/test image."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from iadbench.gates import GateResult, Table, run_checkpoint
from iadbench.models.registry import get_entry
from iadbench.params import evaluated_models
from iadbench.paths import MAPS_DIR

DESCRIPTION = "data/maps: one finite score (and map of the declared size) per validation/test image of the split"


def map_facts(params: dict[str, Any], split: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, product, image) expected by the split or found in the file: how many rows the file has
    for it, its split, its score, its map's height, width, lowest and highest value (NaN where there is none).
    """
    rows = []
    split_of = dict(zip(split["image_id"], split["split"], strict=True))
    for model in evaluated_models(params):  # models, then the SegAD setups
        entry = get_entry(model)
        for product in params["data"]["products"]:
            path = MAPS_DIR / model / f"{product}.npz"
            data = dict(np.load(path, allow_pickle=False)) if path.is_file() else {}
            ids = [str(k) for k in data.get("image_id", [])]
            expected = split[(split["product"] == product) & split["split"].isin(["validation", "test"])]
            for image_id in sorted(set(expected["image_id"]) | set(ids)):
                row = {"file": str(path), "where": f"{path}#{image_id}", "model": model, "product": product,
                       "image_id": image_id, "n_rows": ids.count(image_id), "split": split_of.get(image_id, "none"),
                       "pixel_maps": entry.pixel_maps, "score": np.nan, "map_height": np.nan, "map_width": np.nan,
                       "map_min": np.nan, "map_max": np.nan}  # fmt: skip
                if image_id in ids:
                    i = ids.index(image_id)
                    row["score"] = float(data["scores"][i])
                    if entry.pixel_maps:
                        m = data["maps"][i].astype(np.float64)
                        row.update(map_height=m.shape[0], map_width=m.shape[-1] if m.ndim > 1 else np.nan,
                                   map_min=float(np.nan_to_num(m, nan=np.inf).min()),
                                   map_max=float(np.nan_to_num(m, nan=np.inf).max()))  # fmt: skip
                rows.append(row)
    return pd.DataFrame(rows)


def maps_gate(params: dict[str, Any], split: pd.DataFrame) -> GateResult:
    """Validate every predict output against the split (suite ``gx/expectations/maps/maps.json`` on the stored
    values; ``data.image_size`` is its ``image_size``).
    """
    tables = {"maps": Table(str(MAPS_DIR), map_facts(params, split))}
    return run_checkpoint("maps", tables, {"image_size": int(params["data"]["image_size"])})


def run(params: dict[str, Any]) -> GateResult:
    """The gate on every cell's ``data/maps/<model>/<product>.npz`` against ``data/assignment.csv``."""
    from iadbench.data.manifest import read_table
    from iadbench.paths import ASSIGNMENT

    return maps_gate(params, read_table(ASSIGNMENT))
