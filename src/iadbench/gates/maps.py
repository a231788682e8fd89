"""The maps gate: one finite anomaly map of the declared shape, and one finite score, per validation/test image."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from iadbench.gates import ERROR, GateResult, Rule, Table, run_gate
from iadbench.models.registry import get_entry
from iadbench.params import evaluated_models
from iadbench.paths import MAPS_DIR

DESCRIPTION = "data/maps: one finite score (and map of the declared size) per validation/test image of the split"


def map_facts(params: dict[str, Any], split: pd.DataFrame) -> pd.DataFrame:
    """One row per expected (model, product, image): is it in the file, finite, of the expected shape."""
    size = int(params["data"]["image_size"])
    rows = []
    for model in evaluated_models(params):  # models, then the SegAD setups
        entry = get_entry(model)
        for product in params["data"]["products"]:
            path = MAPS_DIR / model / f"{product}.npz"
            expected = split[(split["product"] == product) & split["split"].isin(["validation", "test"])]
            data = dict(np.load(path, allow_pickle=False)) if path.is_file() else {}
            index = {str(k): i for i, k in enumerate(data.get("image_id", []))}
            for image_id in sorted(expected["image_id"]):
                i = index.get(image_id)
                row = {"file": str(path), "image_id": image_id, "model": model, "product": product,
                       "present": i is not None, "score_finite": False, "map_finite": not entry.pixel_maps,
                       "map_shape_ok": not entry.pixel_maps, "map_shape": ""}  # fmt: skip
                if i is not None:
                    row["score_finite"] = bool(np.isfinite(data["scores"][i]))
                    if entry.pixel_maps:
                        m = data["maps"][i]
                        row.update(map_finite=bool(np.isfinite(m).all()), map_shape_ok=m.shape == (size, size))
                        row["map_shape"] = "x".join(map(str, m.shape))
                rows.append(row)
            extra = set(index) - set(expected["image_id"])
            rows += [{"file": str(path), "image_id": k, "model": model, "product": product, "present": False,
                      "score_finite": True, "map_finite": True, "map_shape_ok": True, "map_shape": "extra"}
                     for k in sorted(extra)]  # fmt: skip
    return pd.DataFrame(rows)


def maps_gate(params: dict[str, Any], split: pd.DataFrame) -> GateResult:
    """Validate every predict output against the split file."""
    import great_expectations as gx

    e = gx.expectations
    facts = map_facts(params, split)
    facts["where"] = facts["file"] + "#" + facts["image_id"]
    size = int(params["data"]["image_size"])
    rules = [
        Rule("maps", "one prediction per validation/test image of the split, and no other",
             e.ExpectColumnValuesToBeInSet(column="present", value_set=[True]), "where", ("map_shape",), ERROR),
        Rule("maps", "image score is finite",
             e.ExpectColumnValuesToBeInSet(column="score_finite", value_set=[True]), "where"),
        Rule("maps", "anomaly map is finite (no NaN/inf)",
             e.ExpectColumnValuesToBeInSet(column="map_finite", value_set=[True]), "where"),
        Rule("maps", f"anomaly map has the declared shape {size}x{size}",
             e.ExpectColumnValuesToBeInSet(column="map_shape_ok", value_set=[True]), "where", ("map_shape",)),
    ]  # fmt: skip
    return run_gate("maps", {"maps": Table(str(MAPS_DIR), facts)}, rules)


def run(params: dict[str, Any]) -> GateResult:
    """The gate on every cell's ``data/maps/<model>/<product>.npz`` against ``data/assignment.csv``."""
    from iadbench.data.manifest import read_table
    from iadbench.paths import ASSIGNMENT

    return maps_gate(params, read_table(ASSIGNMENT))
