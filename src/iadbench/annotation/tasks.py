"""Label Studio tasks for a dataset: one per anomalous validation/test image, with a suggested answer.

A suggestion (a Label Studio *prediction*, shown pre-filled so annotators confirm or correct rather than start blank):

- regions: the image's mask, shipped or drawn before, as brush regions on the image (one per 8-connected component,
  :func:`iadbench.annotation.masks.mask_regions`); for an image without a mask, with ``--prefill MODEL``, the regions
  a trained detector finds at a normal-only threshold (:func:`iadbench.annotation.masks.prefill_masks`), versioned
  ``iadbench-prefill <model> <rule> t=<threshold>``; else none (the annotator draws). A region's category: the
  image's current category from ``data/categories.csv`` when it is a single region category (e.g. the provisional
  per-defect-type map of ``iadbench import``), else ``surface`` for a component covering under 2 % of the image and
  ``structural`` above (a coarse prior: surface defects are small by definition). The image's categories follow from
  its regions' (several categories: ``combined``, [Rethinking] in docs/references.md);
- background: the product's majority background in ``data/categories.csv``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from iadbench.annotation.config import MASK_FIELD, REFERENCE_FIELD
from iadbench.labelstudio import BACKGROUND_FIELD, IMAGE_FIELD, choices_result, local_file_url
from iadbench.taxonomy import split_categories

SUGGESTION_VERSION = "iadbench-suggest-2"


def build_tasks(
    rows: pd.DataFrame,
    categories: pd.DataFrame,
    dataset: str,
    prefill: dict[str, np.ndarray] | None = None,
    prefill_version: str = "",
) -> list[dict]:
    """Tasks (data + one prediction) for the anomalous validation/test images, sorted by image id.

    ``rows``: the split's rows with ``mask_path`` and ``mask_source`` (``data/assignment.csv`` joined with
    ``data/masks.csv``); ``prefill``: image id -> a detector's decision at map size (images without a mask; in a
    sandbox every image), drawn instead of the image's mask; ``prefill_version`` then versions every prediction of
    the push (Label Studio pre-labels from one model version).
    """
    from iadbench.annotation.masks import PREFILL_REGION, mask_regions, read_mask, resize_mask

    cats = categories.set_index("image_id")
    majority = categories.groupby("product")["background"].agg(lambda s: s.value_counts().sort_index().idxmax())
    goods = rows[(rows["split"] == "train") & (rows["label"] == "good")].sort_values("image_id")
    reference = goods.groupby("product")["image_path"].first()
    chosen = rows[rows["split"].isin(["validation", "test"]) & (rows["label"] == "anomalous")]
    tasks = []
    for r in chosen.sort_values("image_id").itertuples(index=False):
        current = split_categories(cats["defect_categories"].get(r.image_id, ""))
        background = str(majority.get(r.product, "without"))
        data = {
            IMAGE_FIELD: local_file_url(r.image_path),
            MASK_FIELD: local_file_url(r.mask_path) if r.mask_path else "",
            REFERENCE_FIELD: local_file_url(reference[r.product]) if r.product in reference else "",
            "image_id": r.image_id,
            "product": r.product,
            "dataset": dataset,
            "defect_type": r.defect_type,
            "mask_source": r.mask_source,
        }
        mask, prefix = read_mask(r.mask_path), "region-"
        if prefill and r.image_id in prefill:  # images without a mask (a sandbox: every image, to try it)
            with Image.open(r.image_path) as im:
                mask, prefix = resize_mask(prefill[r.image_id], im.size), PREFILL_REGION
        result = mask_regions(mask, current, prefix) if mask is not None else []
        background_choice = choices_result(BACKGROUND_FIELD, [background], "suggest-b")
        background_choice["origin"] = "prediction"
        prediction = {"model_version": prefill_version or SUGGESTION_VERSION, "result": [*result, background_choice]}
        tasks.append({"data": data, "predictions": [prediction]})
    return tasks
