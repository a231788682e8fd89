"""Validation gates: Great Expectations 1.x suites over the manifest, categories and split tables.

Each gate is a DVC stage whose JSON result the next stage depends on. A gate validates one or more tables; every
failed expectation becomes one violation per offending row, naming the **file** (the image, mask or product
folder), the **rule** in words, and the values that broke it. Rules of severity ``error`` fail the gate (the stage
exits non-zero, so nothing downstream runs); ``warning`` rules are reported and recorded but let data through.

Great Expectations is imported lazily: it takes several seconds, and only the gate verbs need it.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iadbench.params import GateParams

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Rule:
    """One expectation on one table, with the words a user reads when it fails."""

    table: str
    rule: str
    expectation: Any  # a great_expectations.expectations.Expectation
    file_column: str | None = None  # column naming the offending file (None: a table-level rule)
    detail_columns: tuple[str, ...] = ()
    severity: str = ERROR


@dataclass(frozen=True)
class Table:
    """A table to validate, and the file it came from (named in table-level violations)."""

    path: str
    frame: pd.DataFrame


@dataclass(frozen=True)
class Violation:
    """One row (or one table) that broke one rule."""

    severity: str
    rule: str
    file: str
    detail: str

    def __str__(self) -> str:
        tail = f" ({self.detail})" if self.detail else ""
        return f"{self.severity.upper()} {self.file}: rule: {self.rule}{tail}"


@dataclass
class GateResult:
    """Outcome of one gate: per-rule summary and every violation."""

    gate: str
    rules: list[dict] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)

    @property
    def errors(self) -> list[Violation]:
        """Violations of error severity."""
        return [v for v in self.violations if v.severity == ERROR]

    @property
    def warnings(self) -> list[Violation]:
        """Violations of warning severity."""
        return [v for v in self.violations if v.severity == WARNING]

    @property
    def success(self) -> bool:
        """True when no error-severity rule failed."""
        return not self.errors

    def to_dict(self) -> dict:
        """JSON-ready result with stable ordering."""
        return {
            "gate": self.gate,
            "success": self.success,
            "n_errors": len(self.errors),
            "n_warnings": len(self.warnings),
            "rules": self.rules,
            "violations": [asdict(v) for v in self.violations],
        }

    def write(self, path: Path) -> None:
        """Write the result JSON (also on failure, so the user can read it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n")


def _context() -> Any:
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="great_expectations")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _fmt(value: Any) -> str:
    if hasattr(value, "item"):
        value = value.item()
    return str(value)


def run_gate(gate: str, tables: dict[str, Table], rules: list[Rule]) -> GateResult:
    """Validate each table against its rules with one Great Expectations suite per table."""
    import great_expectations as gx

    context = _context()
    source = context.data_sources.add_pandas(f"{gate}_source")
    result = GateResult(gate=gate)
    for table_name, table in tables.items():
        table_rules = [r for r in rules if r.table == table_name]
        if not table_rules:
            continue
        batch = (
            source.add_dataframe_asset(table_name)
            .add_batch_definition_whole_dataframe("all")
            .get_batch(batch_parameters={"dataframe": table.frame.reset_index(drop=True)})
        )
        suite = context.suites.add(gx.ExpectationSuite(name=f"{gate}.{table_name}"))
        for rule in table_rules:
            suite.add_expectation(rule.expectation)
        id_columns = sorted(
            {c for r in table_rules for c in ((r.file_column,) if r.file_column else ()) + r.detail_columns}
        )
        outcome = batch.validate(
            suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": id_columns or None}
        )
        by_id = {r.expectation.id: r for r in table_rules}
        for item in outcome.results:
            rule = by_id[item.expectation_config.id]
            summary = item.result or {}
            result.rules.append(
                {
                    "table": table.path,
                    "rule": rule.rule,
                    "severity": rule.severity,
                    "expectation": item.expectation_config.type,
                    "success": bool(item.success),
                    "unexpected_count": int(summary.get("unexpected_count") or 0),
                }
            )
            if item.success:
                continue
            rows = summary.get("unexpected_index_list") or []
            if rule.file_column is None or not rows:
                observed = summary.get("observed_value")
                detail = f"observed {_fmt(observed)}" if observed is not None else ""
                result.violations.append(Violation(rule.severity, rule.rule, table.path, detail))
                continue
            for row in rows:
                detail = ", ".join(f"{c}={_fmt(row[c])}" for c in rule.detail_columns if c in row)
                result.violations.append(Violation(rule.severity, rule.rule, _fmt(row[rule.file_column]), detail))
    result.violations.sort(key=lambda v: (v.severity != ERROR, v.rule, v.file))
    return result


# ------------------------------------------------------------------------------------------------- suites
def product_counts(images: pd.DataFrame, split_column: str, required: tuple[str, ...]) -> pd.DataFrame:
    """Per product: number of images per (split, label), as columns ``n_<split>_<label>``; ``required`` columns
    that no image fills are 0 (so a product missing a kind of image fails its rule instead of a KeyError).
    """
    counts = images.groupby(["product", split_column, "label"]).size().unstack([1, 2], fill_value=0)
    counts.columns = [f"n_{s}_{lbl}" for s, lbl in counts.columns]
    counts = counts.reset_index()
    for column in required:
        if column not in counts:
            counts[column] = 0
    return counts


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


def categories_gate(categories: pd.DataFrame, manifest: pd.DataFrame, paths: dict[str, str]) -> GateResult:
    """Run the categories gate on the resolved categories joined with the manifest."""
    import great_expectations as gx

    e = gx.expectations
    table = categories.merge(manifest[["image_id", "split_folder", "image_path"]], on="image_id", how="left")
    table["n_categories"] = table["defect_categories"].str.len()
    rules = [
        Rule(
            "categories", f"one row per manifest image ({len(manifest)})",
            e.ExpectTableRowCountToEqual(value=len(manifest)),
        ),
        Rule(
            "categories", "every anomalous test image has at least one known defect category",
            e.ExpectColumnValuesToBeBetween(
                column="n_categories", min_value=1, row_condition='label=="anomalous"', condition_parser="pandas"
            ),
            "image_path", ("task_id", "n_annotators"),
        ),
        Rule(
            "categories", "a good image carries no defect category (the export labels a good image anomalous)",
            e.ExpectColumnValuesToBeInSet(
                column="n_categories", value_set=[0], row_condition='label=="good"', condition_parser="pandas"
            ),
            "image_path", ("task_id", "defect_categories"),
        ),
        Rule(
            "categories", "every image has a background category (with/without)",
            e.ExpectColumnValuesToBeInSet(column="background", value_set=["with", "without"]), "image_path",
        ),
        Rule(
            "categories", "annotators agree on the defect category (a tie is kept as multi-label)",
            e.ExpectColumnValuesToBeInSet(column="defect_tie", value_set=[False]),
            "image_path", ("defect_categories", "defect_agreement"), WARNING,
        ),
        Rule(
            "categories", "annotators agree on the background category",
            e.ExpectColumnValuesToBeInSet(column="background_tie", value_set=[False]),
            "image_path", ("background",), WARNING,
        ),
    ]  # fmt: skip
    return run_gate("categories", {"categories": Table(paths["categories"], table)}, rules)


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
