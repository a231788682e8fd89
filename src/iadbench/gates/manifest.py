"""The manifest gate: every image and mask of every dataset decodes, pairs and has a usable size; products have
their folders; a segments.png is readable and sized like its product's images (SegAD).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from iadbench.gates import ERROR, WARNING, GateResult, Rule, Table, product_counts, run_gate
from iadbench.params import GateParams

MIN_SIDE = 32  # the smallest data.image_size (params.DataParams): a smaller image is upsampled noise
DESCRIPTION = "data/manifest*.csv: images and masks decode, pair and have one size per product; segments.png"


def manifest_rules(gx: Any, params: GateParams) -> list[Rule]:
    """Rules of the manifest gate (images, masks, products)."""
    e = gx.expectations
    anomalous = 'label=="anomalous"'
    with_mask = "mask_exists==True"
    empty_severity = ERROR if params.empty_mask == "fail" else WARNING
    return [
        Rule("images", "dataset holds at least one image", e.ExpectTableRowCountToBeBetween(min_value=1)),
        Rule("images", "image ids are unique", e.ExpectColumnValuesToBeUnique(column="image_id"), "image_path"),
        Rule(
            "images", "an image's content (sha256) appears once per product: the same file in train/ and test/ "
            "is leakage, twice in test/ counts it twice",
            e.ExpectCompoundColumnsToBeUnique(column_list=["product", "sha256"]), "image_path", ("sha256",),
        ),
        *(
            Rule(
                "images", f"image {side} is at least {MIN_SIDE} px (the smallest model input, data.image_size >= 32)",
                e.ExpectColumnValuesToBeBetween(
                    column=side, min_value=MIN_SIDE, row_condition="decodes==True", condition_parser="pandas"
                ),
                "image_path", ("width", "height"),
            )
            for side in ("width", "height")
        ),
        Rule(
            "images", "image file decodes (not corrupt or truncated)",
            e.ExpectColumnValuesToBeInSet(column="decodes", value_set=[True]), "image_path", ("decode_error",),
        ),
        Rule(
            "images", "train/ holds only good images (train/good)",
            e.ExpectColumnValuesToBeInSet(
                column="label", value_set=["good"], row_condition='split_folder=="train"', condition_parser="pandas"
            ),
            "image_path", ("defect_type",),
        ),
        Rule(
            "images", "every anomalous image has a mask (ground_truth/<defect>/<stem>_mask.png)",
            e.ExpectColumnValuesToBeInSet(
                column="mask_exists", value_set=[True], row_condition=anomalous, condition_parser="pandas"
            ),
            "image_path",
        ),
        Rule(
            "images", "mask file decodes",
            e.ExpectColumnValuesToBeInSet(
                column="mask_decodes", value_set=[True], row_condition=with_mask, condition_parser="pandas"
            ),
            "mask_path",
        ),
        Rule(
            "images", "mask has the width of its image",
            e.ExpectColumnPairValuesToBeEqual(
                column_A="mask_width", column_B="width", row_condition="mask_decodes==True", condition_parser="pandas"
            ),
            "mask_path", ("image_path", "width", "height", "mask_width", "mask_height"),
        ),
        Rule(
            "images", "mask has the height of its image",
            e.ExpectColumnPairValuesToBeEqual(
                column_A="mask_height", column_B="height", row_condition="mask_decodes==True", condition_parser="pandas"
            ),
            "mask_path", ("image_path", "width", "height", "mask_width", "mask_height"),
        ),
        Rule(
            "images", "mask is binary (one channel, values 0/255 or 0/1)",
            e.ExpectColumnValuesToBeInSet(
                column="mask_binary", value_set=[True], row_condition="mask_decodes==True", condition_parser="pandas"
            ),
            "mask_path",
        ),
        Rule(
            "images", "anomalous image's mask marks at least one pixel (empty mask: image-level only)",
            e.ExpectColumnValuesToBeInSet(
                column="mask_empty", value_set=[False],
                row_condition='label=="anomalous" and mask_decodes==True', condition_parser="pandas",
            ),
            "mask_path", ("image_path",), empty_severity,
        ),
        Rule(
            "images", "a good image's mask (if any) is empty",
            e.ExpectColumnValuesToBeInSet(
                column="mask_empty", value_set=[True],
                row_condition='label=="good" and mask_decodes==True', condition_parser="pandas",
            ),
            "mask_path",
        ),
        Rule(
            "masks", "no mask without an image (orphan mask)",
            e.ExpectColumnValuesToBeInSet(column="has_image", value_set=[True]), "mask_path",
        ),
        Rule(
            "products", "every product has train/good images",
            e.ExpectColumnValuesToBeBetween(column="n_train_good", min_value=1), "product_path",
        ),
        Rule(
            "products", "every product has good test images (test/good)",
            e.ExpectColumnValuesToBeBetween(column="n_test_good", min_value=1), "product_path",
        ),
        Rule(
            "products", "every product has anomalous test images (test/<defect_type>)",
            e.ExpectColumnValuesToBeBetween(column="n_test_anomalous", min_value=1), "product_path",
        ),
    ]  # fmt: skip


def segment_rules(gx: Any) -> list[Rule]:
    """Rules on the products' static segmentation images (``<product>/segments.png``, SegAD), where one exists."""
    e = gx.expectations
    present = "exists==True"
    decoded = "exists==True and decodes==True"
    return [
        Rule(
            "segments", "segments.png decodes to one label per pixel",
            e.ExpectColumnValuesToBeInSet(
                column="decodes", value_set=[True], row_condition=present, condition_parser="pandas"
            ),
            "segments_path", ("decode_error",),
        ),
        Rule(
            "segments", "segments.png labels are 0..L-1, every label present",
            e.ExpectColumnValuesToBeInSet(
                column="labels_ok", value_set=[True], row_condition=decoded, condition_parser="pandas"
            ),
            "segments_path", ("labels", "decode_error"),
        ),
        Rule(
            "segments", "segments.png has the size of every image of its product",
            e.ExpectColumnValuesToBeInSet(
                column="sizes_ok", value_set=[True], row_condition=decoded, condition_parser="pandas"
            ),
            "segments_path", ("width", "height", "image_sizes"),
        ),
    ]  # fmt: skip


def manifest_gate(
    images: pd.DataFrame,
    masks: pd.DataFrame,
    params: GateParams,
    paths: dict[str, str],
    segments: pd.DataFrame | None = None,
) -> GateResult:
    """Run the manifest gate; ``paths`` names the files the tables came from."""
    import great_expectations as gx

    products = product_counts(images, "split_folder", ("n_train_good", "n_test_good", "n_test_anomalous"))
    # a product's folder: three levels above any of its images (<product>/<split>/<type>/<file>), whatever dataset
    folder = {
        p: Path(path).parents[2].as_posix() for p, path in zip(images["product"], images["image_path"], strict=True)
    }
    products["product_path"] = [folder.get(p, p) for p in products["product"]]
    tables = {
        "images": Table(paths["images"], images),
        "masks": Table(paths["masks"], masks),
        "products": Table(paths["images"], products),
    }
    rules = manifest_rules(gx, params)
    if segments is not None and bool(segments["exists"].astype(bool).any()):
        tables["segments"] = Table(paths.get("segments", "data/manifest_segments.csv"), segments)
        rules += segment_rules(gx)
    return run_gate("manifest", tables, rules)


def run(params: dict[str, Any]) -> GateResult:
    """The gate on ``data/manifest.csv``, ``data/manifest_masks.csv`` and ``data/manifest_segments.csv``."""
    from iadbench.data.manifest import read_table
    from iadbench.paths import MANIFEST, MANIFEST_MASKS, MANIFEST_SEGMENTS

    paths = {"images": str(MANIFEST), "masks": str(MANIFEST_MASKS), "segments": str(MANIFEST_SEGMENTS)}
    segments = read_table(MANIFEST_SEGMENTS) if MANIFEST_SEGMENTS.is_file() else None
    return manifest_gate(
        read_table(MANIFEST), read_table(MANIFEST_MASKS), GateParams.from_params(params), paths, segments
    )
