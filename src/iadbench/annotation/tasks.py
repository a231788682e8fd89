"""Label Studio tasks for a dataset: one per anomalous validation/test image, with a suggested answer.

A suggestion (a Label Studio *prediction*, shown pre-filled so annotators confirm rather than start blank):

- defect category: ``combined`` when the mask has two or more 8-connected components ([Rethinking] in
  docs/references.md: several defects, several components); otherwise the image's current category from
  ``data/categories.csv`` when it has one (e.g. the provisional per-defect-type mapping of ``iadbench import``),
  else ``surface`` for a defect covering under 2 % of the image and ``structural`` above (a coarse prior: surface
  defects are small by definition);
- background: the product's majority background in ``data/categories.csv``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from iadbench.annotation.config import MASK_FIELD, REFERENCE_FIELD
from iadbench.labelstudio import BACKGROUND_FIELD, DEFECT_FIELD, IMAGE_FIELD, choices_result, local_file_url
from iadbench.taxonomy import split_categories

SUGGESTION_VERSION = "iadbench-suggest-1"
SMALL_DEFECT = 0.02  # fraction of the image below which a single-component defect is suggested as surface


def suggest_defect(mask: np.ndarray, current: tuple[str, ...] = ()) -> list[str]:
    """Suggested defect categories for one mask (see the module docstring)."""
    mask = np.asarray(mask, dtype=bool)
    _, components = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if components >= 2:
        return ["combined"]
    if current:
        return list(current)
    return ["surface"] if mask.mean() < SMALL_DEFECT else ["structural"]


def read_mask(path: str) -> np.ndarray:
    """A ground-truth mask as booleans (non-zero = defect); empty if the image has no mask file."""
    if not path:
        return np.zeros((1, 1), dtype=bool)
    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > 0


def build_tasks(assignment: pd.DataFrame, categories: pd.DataFrame, dataset: str) -> list[dict]:
    """Tasks (data + one prediction) for the anomalous validation/test images, sorted by image id."""
    cats = categories.set_index("image_id")
    majority = categories.groupby("product")["background"].agg(lambda s: s.value_counts().sort_index().idxmax())
    goods = assignment[(assignment["split"] == "train") & (assignment["label"] == "good")].sort_values("image_id")
    reference = goods.groupby("product")["image_path"].first()
    rows = assignment[assignment["split"].isin(["validation", "test"]) & (assignment["label"] == "anomalous")]
    tasks = []
    for r in rows.sort_values("image_id").itertuples(index=False):
        current = split_categories(cats["defect_categories"].get(r.image_id, ""))
        defect = suggest_defect(read_mask(r.mask_path), current)
        background = str(majority.get(r.product, "without"))
        data = {
            IMAGE_FIELD: local_file_url(r.image_path),
            MASK_FIELD: local_file_url(r.mask_path) if r.mask_path else "",
            REFERENCE_FIELD: local_file_url(reference[r.product]) if r.product in reference else "",
            "image_id": r.image_id,
            "product": r.product,
            "dataset": dataset,
            "defect_type": r.defect_type,
        }
        result = [
            choices_result(DEFECT_FIELD, defect, "suggest-d"),
            choices_result(BACKGROUND_FIELD, [background], "suggest-b"),
        ]
        for entry in result:
            entry["origin"] = "prediction"
        tasks.append({"data": data, "predictions": [{"model_version": SUGGESTION_VERSION, "result": result}]})
    return tasks
