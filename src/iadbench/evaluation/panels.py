"""The figures stage: the panels the evaluations decide but ``threshold.method`` does not, and the stage that draws
them — each model's best and worst test image per defect category at every figure rule (metrics.rules.figure_rules)
(``reports/overlays/<rule>/<model>.png``) and the drift examples (``reports/figures/drift_examples.png``). The
report embeds the method's overlays; a rule switch redraws none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iadbench.data.drift import DriftParams
from iadbench.evaluation.cells import load_cell, load_mask, thresholds_path
from iadbench.evaluation.evaluate import evaluate_path
from iadbench.evaluation.figures import drift_examples, overlays
from iadbench.evaluation.records import EvaluateRecord, ThresholdsRecord
from iadbench.evaluation.tables import with_categories
from iadbench.metrics.rules import figure_rules, rule_label
from iadbench.params import DataParams, evaluated_models
from iadbench.paths import DRIFT_EXAMPLES, OVERLAYS_DIR, THUMBS_DIR, overlay_path, thumbs_path
from iadbench.taxonomy import DEFECT_CATEGORIES, split_categories


def shown_image(cell: Any, i: int) -> np.ndarray:
    """The image the model saw (resized, drifted by its stored plan if any) as H × W × 3 uint8. Without a plan it is
    :func:`iadbench.data.images.resized_rgb`, what the model's input is made from (no torch to import).
    """
    from iadbench.data.drift import decode
    from iadbench.data.images import resized_rgb

    plan = decode(cell.plans[i]) if cell.plans is not None else []
    path, size = cell.rows["image_path"].iloc[i], cell.maps.shape[-1]
    if not plan:
        return resized_rgb(path, size)
    from iadbench.data.drift import apply_image
    from iadbench.data.images import model_input

    image = apply_image(model_input(path, size), plan)
    return (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def drift_panels(products: list[str], models: list[str], split: pd.DataFrame, per_product: int = 2) -> list:
    """Drifted test examples (anomalous first) of each product, from the plans stored beside the first model's maps."""
    from iadbench.data.drift import apply_image, decode, describe
    from iadbench.data.images import model_input

    examples = []
    for product in products:
        cell = load_cell(models[0], product, split, "test")
        if cell.plans is None or cell.maps is None:
            continue
        order = np.argsort(~cell.labels, kind="stable")[:per_product]
        for i in order:
            steps = decode(cell.plans[i])
            path = cell.rows["image_path"].iloc[i]
            size = cell.maps.shape[-1]
            examples.append({
                "image_id": cell.rows["image_id"].iloc[i],
                "clean": (clean := model_input(path, size)).permute(1, 2, 0).numpy(),
                "drifted": (apply_image(clean, steps) if steps else clean).permute(1, 2, 0).numpy(),
                "mask": load_mask(cell.rows["mask_path"].iloc[i], size),
                "drifted_mask": cell.masks[i],
                "label": describe(steps),
            })  # fmt: skip
    return examples


def overlay_panels(model: str, products: list[str], split: pd.DataFrame, method: str) -> list[dict[str, Any]]:
    """Best and worst test image (per-image IoU at ``method``) of every defect category, across products."""
    frames = []
    for product in products:
        csv = evaluate_path(model, product).with_suffix(".csv")
        frames.append(pd.read_csv(csv))
    table = with_categories(pd.concat(frames, ignore_index=True))
    col = f"iou_{method}"
    if col not in table:
        return []
    table = table[np.isfinite(table[col].astype(float))]
    picks: list[tuple[str, str, pd.Series]] = []
    for category in DEFECT_CATEGORIES:
        rows = table[table["defect_categories"].fillna("").map(split_categories).map(lambda cs, c=category: c in cs)]
        if rows.empty:
            continue
        ordered = rows.sort_values([col, "image_id"], ascending=[False, True])
        picks.append((category, "best", ordered.iloc[0]))
        if len(ordered) > 1:
            picks.append((category, "worst", ordered.iloc[-1]))
    panels, cells, positions = [], {}, {}
    for category, which, row in picks:
        product = row["product"]
        if product not in cells:
            cells[product] = load_cell(model, product, split, "test")
            positions.update({k: i for i, k in enumerate(cells[product].rows["image_id"])})
        cell = cells[product]
        i = positions[row["image_id"]]
        tp, fp, fn = (float(row[f"pix_{method}_{k}"]) for k in ("tp", "fp", "fn"))
        negatives = float(row["pixels"]) - (tp + fn)
        fitted = ThresholdsRecord.read(thresholds_path(model, product))
        used = EvaluateRecord.read(evaluate_path(model, product)).rule_used["pixel"][method]
        panels.append({
            "image": shown_image(cell, i), "mask": cell.masks[i], "map": cell.maps[i],
            "threshold": fitted.level("pixel")[used]["threshold"],
            "label": f"{category} · {which} · {row['image_id']}",
            "iou": float(row[col]), "f1": 2 * tp / max(2 * tp + fp + fn, 1), "fpr": fp / max(negatives, 1),
        })  # fmt: skip
    return panels


THUMB = 48  # px of one thumbnail tile


def thumbnail_tiles() -> list[str]:
    """What the columns of a thumbnail sheet show, left to right."""
    return ["image", "ground truth", "anomaly map", *(f"mask · {r}" for r in figure_rules())]


def thumbnail_sheet(model: str, product: str, split: pd.DataFrame) -> np.ndarray | None:
    """Every test image of a cell (the evaluate table's order) as one row of :data:`THUMB`-pixel tiles: the image the
    model saw, the ground truth, the anomaly map (min-max over the cell's test maps, magma) and the predicted mask at
    each headline rule's pixel threshold (black where the rule has none); None for a model without maps.
    """
    from matplotlib import colormaps
    from PIL import Image

    cell = load_cell(model, product, split, "test")
    if cell.maps is None:
        return None
    fitted = ThresholdsRecord.read(thresholds_path(model, product))
    used = EvaluateRecord.read(evaluate_path(model, product)).rule_used["pixel"]
    thresholds = [fitted.level("pixel")[used[r]]["threshold"] if used.get(r) else None for r in figure_rules()]
    maps = cell.maps.astype(np.float32)
    lo, span = float(maps.min()), max(float(maps.max() - maps.min()), 1e-12)
    magma = colormaps["magma"]

    def tile(array: np.ndarray) -> np.ndarray:
        image = Image.fromarray(array if array.ndim == 3 else np.repeat(array[..., None], 3, axis=2))
        return np.asarray(image.resize((THUMB, THUMB), Image.Resampling.BILINEAR))

    def binary(mask: np.ndarray) -> np.ndarray:
        return tile(mask.astype(np.uint8) * 255)

    rows = []
    for i in range(len(cell.rows)):
        coloured = (magma((maps[i] - lo) / span)[..., :3] * 255).round().astype(np.uint8)
        masks = [binary(maps[i] >= t) if t is not None else np.zeros((THUMB, THUMB, 3), np.uint8) for t in thresholds]
        rows.append(np.concatenate([tile(shown_image(cell, i)), binary(cell.masks[i]), tile(coloured), *masks], axis=1))
    return np.concatenate(rows, axis=0)


def overlay_title(model: str, rule: str) -> str:
    """The title of a model's overlay figure at one rule (the figure and the report share it)."""
    return f"{model}: best and worst test image per defect category ({rule_label(rule)})"


def drift_title(drift: DriftParams) -> str:
    """The title of the drift examples figure (the figure and the report share it)."""
    return f"Test-time drift ({', '.join(drift.transforms)}; seed {drift.seed}): examples, truth outlined"


def write_figures(params: dict[str, Any], split: pd.DataFrame) -> list[Path]:
    """The figures stage: what the maps and evaluations decide but ``threshold.method`` does not — the overlays at
    every figure rule (``reports/overlays/<rule>/<model>.png``), the drift examples and the thumbnail sheets
    (``reports/thumbs/<model>/<product>.png``, a mask per figure rule) — drawn once per evaluation,
    so that a rule switch (metrics and report only) redraws none of them; the report picks the method's overlays.
    """
    data = DataParams.from_params(params)
    models, products = evaluated_models(params), list(data.products)
    for old in OVERLAYS_DIR.rglob("*.png") if OVERLAYS_DIR.is_dir() else []:
        old.unlink()
    written = []
    for rule in figure_rules():
        for model in models:
            panels = overlay_panels(model, products, split, rule)
            if panels:  # models with maps only
                written.append(overlays(panels, overlay_title(model, rule), overlay_path(rule, model)))
    drift = DriftParams.from_params(params)
    if drift.on and (examples := drift_panels(products, models, split)):
        written.append(drift_examples(examples, drift_title(drift), DRIFT_EXAMPLES))
    OVERLAYS_DIR.mkdir(parents=True, exist_ok=True)  # an output even when no model writes maps
    written += write_thumbnails(models, products, split)
    return written


def write_thumbnails(models: list[str], products: list[str], split: pd.DataFrame) -> list[Path]:
    """``reports/thumbs/<model>/<product>.png``: :func:`thumbnail_sheet` of every cell with maps (the report's
    per-image table shows each row's tiles).
    """
    from PIL import Image

    for old in THUMBS_DIR.rglob("*.png") if THUMBS_DIR.is_dir() else []:
        old.unlink()
    THUMBS_DIR.mkdir(parents=True, exist_ok=True)  # an output even when no model writes maps
    written = []
    for model in models:
        for product in products:
            sheet = thumbnail_sheet(model, product, split)
            if sheet is not None:
                out = thumbs_path(model, product)
                out.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(sheet).save(out, optimize=True)
                written.append(out)
    return written
