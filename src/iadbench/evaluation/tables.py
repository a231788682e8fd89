"""The metrics stage: per-image results of every cell pooled into the category tables, headline metrics and intervals.

Rows follow Table 1 of "Rethinking Benchmarking Framework of Self-Supervised Learning Approaches for Anomaly
Localization": defect category (structural / surface / contamination / combined), background category (with /
without) and all images, each × dataset; columns model × threshold rule. A category score is the mean per-image IoU
over the test images carrying that category (an image with two categories counts in both). A category with no test
image is reported as absent (``n_images = 0``, values null), never as 0.

A rule not fitted for a product (ROC-T, IoU-T, PR-T without anomalous validation images) is *not applicable* there:
its rows leave that product's images out and count them (``n_not_applicable``); only the headline at
``threshold.method`` counts them at the stand-in ``good_fpr`` (``n_good_only_products`` says how many products).
AUPIMO (``aupimo``) is threshold-free: the mean per-image value of the group's anomalous images, the same in every
rule's row.

Confidence intervals are percentile bootstrap intervals over test images (``evaluate.bootstrap`` resamples, seeded
by ``evaluate.seed``): a ratio of sums (pooled IoU, image F1) is resampled image by image; image AUROC is resampled
within each product and class, and the all-products value is the mean over products (threshold-free metrics are
macro-averaged over products, as scores of different products are not on one scale).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iadbench.errors import InputError
from iadbench.evaluation.cells import json_ready
from iadbench.evaluation.evaluate import ORACLE, evaluate_path
from iadbench.evaluation.records import EvaluateRecord
from iadbench.metrics.counts import confusion_counts, safe_divide
from iadbench.metrics.curves import auroc, ratio
from iadbench.metrics.registry import level_metrics
from iadbench.metrics.rules import RULE_TABLE, good_only_rule, headline_rules, level_rules
from iadbench.params import EvaluateParams, evaluated_models
from iadbench.paths import CATEGORIES, CATEGORY_TABLE, HEADLINE, METRICS, PRODUCT_TABLE, TABLES_DIR
from iadbench.seeding import stream
from iadbench.taxonomy import BACKGROUNDS, DEFECT_CATEGORIES, split_categories


def with_categories(table: pd.DataFrame, categories: Path = CATEGORIES) -> pd.DataFrame:
    """Join each image's defect categories and background from ``data/categories.csv`` (the annotations).

    The evaluate stage does not read annotations, so relabelling reruns only this stage and the report.
    """
    return attach_categories(table, read_categories(categories.read_text()), categories)


def read_categories(text: str) -> pd.DataFrame:
    """``data/categories.csv`` from its text (the workspace's, or a commit's): categories kept as strings."""
    return pd.read_csv(io.StringIO(text), keep_default_na=False, dtype={"defect_categories": str})


def attach_categories(table: pd.DataFrame, cats: pd.DataFrame, where: str | Path) -> pd.DataFrame:
    """``table`` with the ``defect_categories`` and ``background`` of each ``image_id`` from ``cats``; an evaluated
    image without a row is an :class:`InputError` naming ``where``.
    """
    cats = cats[["image_id", "defect_categories", "background"]]
    out = table.drop(columns=["defect_categories", "background"], errors="ignore")
    out = out.merge(cats, on="image_id", how="left")
    missing = out.loc[out["background"].isna(), "image_id"]
    if len(missing):
        raise InputError(where, "every evaluated image needs a row", f"missing {missing.iloc[0]}")
    return out


def read_cells(models: list[str], products: list[str]) -> tuple[pd.DataFrame, dict[tuple[str, str], EvaluateRecord]]:
    """All per-image rows (with their categories) and cell documents written by the evaluate stage."""
    frames, docs = [], {}
    for model in models:
        for product in products:
            path = evaluate_path(model, product)
            csv = path.with_suffix(".csv")
            if not path.is_file() or not csv.is_file():
                raise InputError(path, "evaluation of this cell not found", "run the evaluate stage (dvc repro)")
            docs[(model, product)] = EvaluateRecord.read(path)
            frames.append(pd.read_csv(csv))
    return with_categories(pd.concat(frames, ignore_index=True)), docs


_rng = stream


def ratio_ci(num: np.ndarray, den: np.ndarray, p: EvaluateParams, key: str) -> tuple[float, float]:
    """Percentile interval of Σnum/Σden over ``p.bootstrap`` resamples of the rows; NaNs if undefined."""
    n = len(num)
    if p.bootstrap == 0 or n == 0:
        return float("nan"), float("nan")
    idx = _rng(p.seed, key).integers(0, n, size=(p.bootstrap, n))
    stats = safe_divide(num[idx].sum(axis=1), den[idx].sum(axis=1))
    return _percentiles(stats, p.confidence)


def _percentiles(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    stats = stats[np.isfinite(stats)]
    if not len(stats):
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def auroc_replicates(scores: np.ndarray, labels: np.ndarray, p: EvaluateParams, key: str) -> np.ndarray:
    """``p.bootstrap`` AUROCs of class-stratified resamples (each class resampled within itself)."""
    pos, neg = scores[labels], scores[~labels]
    if p.bootstrap == 0 or not len(pos) or not len(neg):
        return np.full(p.bootstrap, np.nan)
    rng = _rng(p.seed, key)
    out = np.empty(p.bootstrap)
    y = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    for b in range(p.bootstrap):
        s = np.r_[pos[rng.integers(0, len(pos), len(pos))], neg[rng.integers(0, len(neg), len(neg))]]
        out[b] = auroc(confusion_counts(s, y))
    return out


def group_rows(table: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(kind, group, rows) for every Table-1 row: defect categories, backgrounds, all images."""
    anomalous = table["label"] == "anomalous"
    cats = table["defect_categories"].map(split_categories)
    out = [("defect_category", c, table[anomalous & cats.map(lambda cs, c=c: c in cs)]) for c in DEFECT_CATEGORIES]
    out += [("background", b, table[table["background"] == b]) for b in BACKGROUNDS]
    out.append(("all", "all", table))
    return out


def not_applicable(docs: dict[tuple[str, str], EvaluateRecord]) -> pd.DataFrame:
    """Per (model, product), ``na_<level>_<rule>``: True where ``rule`` was not fitted at that level (an
    anomalous-sample rule on a product without anomalous validation samples), so that the evaluate stage's columns
    for it hold the stand-in's figures (:data:`~iadbench.metrics.rules.STAND_IN`), which only the headline may use.
    """
    records = []
    for (model, product), doc in docs.items():
        rec: dict[str, Any] = {"model": model, "product": product}
        for level, prefix in (("image", "na_img"), ("pixel", "na_pix")):
            for rule, stand_in in (doc.rule_used.get(level) or {}).items():
                rec[f"{prefix}_{rule}"] = stand_in is not None and stand_in != rule
        records.append(rec)
    return pd.DataFrame.from_records(records)


def _applicable(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    return rows[~rows[column].astype(bool)] if column in rows else rows


def group_metrics(rows: pd.DataFrame, rule: str, p: EvaluateParams, key: str, stand_in: bool = False) -> dict[str, Any]:
    """Threshold-dependent figures of one group of images at one rule (see the module docstring).

    Images of products where ``rule`` was not fitted (the ``na_*`` columns of :func:`not_applicable`) are left out
    and counted (``n_not_applicable``), unless ``stand_in`` (the headline: the stand-in's figures count for them).
    """
    n_na = 0
    if not stand_in:
        columns = [c for c in (f"na_img_{rule}", f"na_pix_{rule}") if c in rows]
        n_na = int(rows[columns].astype(bool).any(axis=1).sum()) if columns else 0
    anomalous = (rows["label"] == "anomalous").to_numpy()
    good = ~anomalous
    out: dict[str, Any] = {"n_images": len(rows), "n_good": int(good.sum()), "n_anomalous": int(anomalous.sum())}
    if n_na:
        out["n_not_applicable"] = n_na
    if "aupimo" in rows:  # threshold-free (the same in every rule's row): mean over the group's anomalous images
        values = rows["aupimo"].to_numpy(dtype=float)
        out["aupimo"] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    pixel_rows = rows if stand_in else _applicable(rows, f"na_pix_{rule}")
    image_rows = rows if stand_in else _applicable(rows, f"na_img_{rule}")
    iou_col = f"iou_{rule}"
    if iou_col in rows and len(pixel_rows):
        rows = pixel_rows
        anomalous = (rows["label"] == "anomalous").to_numpy()
        good = ~anomalous
        values = rows[iou_col].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        out["n_iou"] = len(values)
        out["mean_iou"] = float(values.mean()) if len(values) else float("nan")
        out["mean_iou_lo"], out["mean_iou_hi"] = ratio_ci(values, np.ones(len(values)), p, key + ":miou")
        has = rows["has_mask"].astype(str).str.lower().eq("true").to_numpy() | good
        tp, fp, fn = (rows[f"pix_{rule}_{k}"].to_numpy(dtype=float)[has] for k in ("tp", "fp", "fn"))
        out["pooled_iou"] = ratio(tp.sum(), (tp + fp + fn).sum())
        out["pooled_iou_lo"], out["pooled_iou_hi"] = ratio_ci(tp, tp + fp + fn, p, key + ":piou")
        pixels = rows["pixels"].to_numpy(dtype=float)
        out["pixel_fpr_good"] = ratio(rows[f"pix_{rule}_fp"].to_numpy(dtype=float)[good].sum(), pixels[good].sum())
    pred_col = f"img_{rule}_pred"
    if pred_col in image_rows and len(image_rows):
        rows = image_rows
        anomalous = (rows["label"] == "anomalous").to_numpy()
        good = ~anomalous
        pred = rows[pred_col].to_numpy(dtype=bool)
        tp, fp = (pred & anomalous).astype(float), (pred & good).astype(float)
        fn = (~pred & anomalous).astype(float)
        out["image_recall"] = ratio(tp.sum(), anomalous.sum())
        out["image_false_alarm"] = ratio(fp.sum(), good.sum())
        if anomalous.any() and good.any():
            out["image_f1"] = ratio(2 * tp.sum(), (2 * tp + fp + fn).sum())
            out["image_f1_lo"], out["image_f1_hi"] = ratio_ci(2 * tp, 2 * tp + fp + fn, p, key + ":if1")
    return out


POOLED = "all"  # the dataset column of the rows that pool every dataset of a run of several


def pooled(categories: pd.DataFrame) -> pd.DataFrame:
    """The rows of the category table that cover every image of the run: the single dataset's rows, or the
    ``dataset == "all"`` rows of a run of several datasets.
    """
    if categories["dataset"].nunique() > 1:
        return categories[categories["dataset"] == POOLED]
    return categories


def category_table(
    table: pd.DataFrame,
    datasets: list[str],
    p: EvaluateParams,
    rules: tuple[str, ...] | None = None,
    stand_in: bool = False,
) -> pd.DataFrame:
    """Long-format Table 1: one row per (model, rule, row kind, group, dataset).

    ``table`` has a ``dataset`` column; with several datasets the rows of each dataset come first, then the rows
    that pool them all (dataset ``all``). Bootstrap streams are keyed by model, kind, group, rule (and the dataset
    when there are several), so a one-dataset run draws exactly the resamples it always did. ``rules``: every rule
    when None; ``stand_in``: see :func:`group_metrics` (the headline's table).
    """
    scopes = [(d, table[table["dataset"] == d], f"{d}:" if len(datasets) > 1 else "") for d in datasets]
    if len(datasets) > 1:
        scopes.append((POOLED, table, ""))
    records = []
    for model in table["model"].drop_duplicates():
        for dataset, scope, prefix in scopes:
            for kind, group, rows in group_rows(scope[scope["model"] == model]):
                for rule in rules or RULE_TABLE:  # every rule either level evaluated, in table order
                    if f"iou_{rule}" not in rows and f"img_{rule}_pred" not in rows:
                        continue
                    key = f"{prefix}{model}:{kind}:{group}:{rule}"
                    records.append({"model": model, "rule": rule, "kind": kind, "group": group, "dataset": dataset,
                                    **group_metrics(rows, rule, p, key, stand_in)})  # fmt: skip
    return pd.DataFrame.from_records(records)


def applied_thresholds(doc: EvaluateRecord) -> dict[str, float | None]:
    """``pixel_threshold@<rule>`` and ``image_threshold@<rule>`` of every rule fitted on validation: the value applied
    on test (the good-only rule's where it stood in; None where a level has no maps or the rule could not be fitted).
    """
    out: dict[str, float | None] = {}
    for level in ("pixel", "image"):
        at = (getattr(doc, level) or {}).get("at") or {}
        for rule in (r for r in level_rules(level) if r != ORACLE):
            out[f"{level}_threshold@{rule}"] = (at.get(rule) or {}).get("threshold")
    return out


def product_table(
    docs: dict[tuple[str, str], EvaluateRecord], table: pd.DataFrame, method: str, p: EvaluateParams
) -> pd.DataFrame:
    """One row per (model, product): counts (masks pending or pre-drawn and accepted among them), threshold-free
    metrics, figures at the headline rule, the threshold values of every rule (:func:`applied_thresholds`).
    """
    records = []
    for (model, product), doc in docs.items():
        rows = table[(table["model"] == model) & (table["product"] == product)]
        rec: dict[str, Any] = {"model": model, "product": product, "dataset": doc.dataset}
        rec["image_score"] = doc.image_score
        rec.update({f"n_{k}": v for k, v in doc.test.items() if not isinstance(v, dict | list)})
        # masks still pending, or accepted unchanged from a detector (left out of pixel figures when masks_excluded
        # names them): how far the pixel columns of this row rest on people's masks (iadbench.data.drawn)
        sources = doc.test.get("mask_sources") or {}
        rec["n_masks_pending"] = int(sources.get("pending", 0))
        rec["n_masks_prefill_accepted"] = int(sources.get("prefill_accepted", 0))
        rec["masks_excluded"] = " ".join(doc.test.get("mask_sources_excluded") or [])
        for level in ("image", "pixel"):
            section = getattr(doc, level) or {}
            rec.update({f"{level}_{m.name}": section.get(m.name) for m in level_metrics(level)})
        reps = auroc_replicates(rows["score"].to_numpy(float), (rows["label"] == "anomalous").to_numpy(), p,
                                f"{model}:{product}:auroc")  # fmt: skip
        rec["image_auroc_lo"], rec["image_auroc_hi"] = _percentiles(reps, p.confidence)
        rec["_auroc_replicates"] = reps
        rec.update({f"{k}@{method}": v for k, v in group_metrics(rows, method, p, f"{model}:{product}:{method}",
                                                                 stand_in=True).items()
                    if k.startswith(("mean_iou", "pooled_iou", "pixel_fpr", "image_f1", "image_false"))})  # fmt: skip
        rec.update(applied_thresholds(doc))
        rec["rule_used"] = doc.used(method)
        rec["notes"] = "; ".join(doc.notes)
        records.append(rec)
    return pd.DataFrame.from_records(records)


def headline(
    categories: pd.DataFrame,
    products: pd.DataFrame,
    method: str,
    p: EvaluateParams,
    at_method: pd.DataFrame | None = None,
) -> dict[str, dict[str, Any]]:
    """``reports/metrics.json``: one flat block per model with stable keys (null where a metric is undefined).

    ``at_method``: the category rows at ``method`` with the stand-in counted (:func:`category_table` with
    ``stand_in``), behind the headline figures; None: ``categories``' rows (the same when every product had anomalous
    validation samples).
    """
    out: dict[str, dict[str, Any]] = {}
    every_dataset = pooled(categories)
    head = pooled(at_method) if at_method is not None else every_dataset
    for model, prod in products.groupby("model", sort=False):
        cats = every_dataset[every_dataset["model"] == model]
        heads = head[(head["model"] == model) & (head["rule"] == method)]
        every = heads[heads["kind"] == "all"].iloc[0]
        reps = np.vstack(prod["_auroc_replicates"].to_list()) if p.bootstrap else np.empty((0, 0))
        lo, hi = _percentiles(np.nanmean(reps, axis=0), p.confidence) if reps.size else (np.nan, np.nan)
        block: dict[str, Any] = {
            "mean_iou": every.get("mean_iou"), "mean_iou_lo": every.get("mean_iou_lo"),
            "mean_iou_hi": every.get("mean_iou_hi"), "pooled_iou": every.get("pooled_iou"),
            "pixel_fpr_good": every.get("pixel_fpr_good"), "image_f1": every.get("image_f1"),
            "image_f1_lo": every.get("image_f1_lo"), "image_f1_hi": every.get("image_f1_hi"),
            "image_recall": every.get("image_recall"), "image_false_alarm": every.get("image_false_alarm"),
            "image_auroc": prod["image_auroc"].astype(float).mean(), "image_auroc_lo": lo, "image_auroc_hi": hi,
        }  # fmt: skip
        for level in ("image", "pixel"):  # macro means over products (image AUROC above, with its interval)
            for m in level_metrics(level):
                if m.headline_key != "image_auroc":
                    block[m.headline_key] = prod[f"{level}_{m.name}"].astype(float).mean()
        all_rules = cats[cats["kind"] == "all"].set_index("rule")
        block["mean_iou_by_rule"] = {r: all_rules["mean_iou"].get(r) for r in headline_rules()}
        block["oracle_mean_iou"] = all_rules["mean_iou"].get(ORACLE)
        by_cat = heads[heads["kind"] == "defect_category"].set_index("group")
        block["mean_iou_by_category"] = {c: by_cat["mean_iou"].get(c) for c in DEFECT_CATEGORIES}
        block["aupimo"] = every.get("aupimo")  # mean per-image AUPIMO of the anomalous test images (all products)
        block["aupimo_by_category"] = (
            {c: by_cat["aupimo"].get(c) for c in DEFECT_CATEGORIES} if "aupimo" in by_cat else {}
        )
        block["n_test_images"] = int(every["n_images"])
        block["n_good_only_products"] = int((prod["rule_used"] == good_only_rule()).sum())
        out[model] = block
    return json_ready(out)


HEADLINE_KEYS = ("mean_iou", "mean_iou_lo", "mean_iou_hi", "image_auroc", "pixel_aupro", "image_recall",
                 "image_false_alarm")  # fmt: skip


def headline_summary(metrics: dict[str, dict[str, Any]], method: str) -> dict[str, Any]:
    """``reports/headline.json``, the DVC metric: the threshold rule, then per model the mean IoU at that rule with
    its interval, image AUROC, pixel AUPRO, image recall and false-alarm rate (:data:`HEADLINE_KEYS`) — one readable
    row per experiment in ``dvc exp show`` (every other figure stays in ``reports/metrics.json``).
    """
    return {"threshold_rule": method, **{m: {k: block.get(k) for k in HEADLINE_KEYS} for m, block in metrics.items()}}


def write_tables(params: dict[str, Any]) -> dict[str, Any]:
    """Write ``reports/metrics.json``, ``reports/headline.json`` and ``reports/tables/{categories,products}.csv``."""
    from iadbench.metrics.rules import headline_method
    from iadbench.params import DataParams

    method = headline_method(params)
    p = EvaluateParams.from_params(params)
    data = DataParams.from_params(params)
    models, products = evaluated_models(params), list(data.products)
    table, docs = read_cells(models, products)
    table["dataset"] = table["product"].map(data.dataset_of)
    table = table.merge(not_applicable(docs), on=["model", "product"], how="left")
    for column in (c for c in table.columns if c.startswith("na_")):
        table[column] = table[column].eq(True)  # a rule a record does not list (an image-only model's pixel): fitted
    categories = category_table(table, list(data.datasets), p)
    at_method = category_table(table, list(data.datasets), p, rules=(method,), stand_in=True)
    per_product = product_table(docs, table, method, p)
    metrics = headline(categories, per_product, method, p, at_method)
    TABLES_DIR.mkdir(parents=True, exist_ok=True)
    categories.to_csv(CATEGORY_TABLE, index=False, float_format="%.6g")
    per_product.drop(columns="_auroc_replicates").to_csv(PRODUCT_TABLE, index=False, float_format="%.6g")
    METRICS.parent.mkdir(parents=True, exist_ok=True)
    METRICS.write_text(json.dumps(metrics, indent=1) + "\n")
    HEADLINE.write_text(json.dumps(headline_summary(metrics, method), indent=1) + "\n")
    return metrics
