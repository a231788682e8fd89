"""What one (model, product) cell's evaluation reads: its rows of the split, its scores and maps, the masks.

Everything comes from files on disk (``data/assignment.csv`` joined with ``data/masks.csv``,
``data/maps/<model>/<product>.npz``, the ground-truth PNGs); nothing is recomputed by a model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from iadbench.errors import InputError
from iadbench.paths import ASSIGNMENT as SPLIT
from iadbench.paths import MAPS_DIR, MASKS_TABLE, THRESHOLDS_DIR

PREFILL_ACCEPTED = "prefill_accepted"  # a mask submitted unchanged from a detector's regions (data/drawn.py)


def read_split_with_masks(assignment: Path = SPLIT, masks: Path = MASKS_TABLE) -> pd.DataFrame:
    """``data/assignment.csv`` with each image's ``mask_path`` and ``mask_source`` from ``data/masks.csv``.

    The two files are apart so that masks drawn later change what thresholds and evaluation read, never what the
    models read (a new mask retrains nothing). A masks table that misses an image of the assignment is refused.
    """
    for path in (assignment, masks):
        if not path.is_file():
            raise InputError(path, "table not found", "run the split stage (dvc repro)")
    rows = pd.read_csv(assignment, keep_default_na=False, na_values=[])
    table = pd.read_csv(masks, keep_default_na=False, na_values=[])
    missing = sorted(set(rows["image_id"]) - set(table["image_id"]))
    if missing:
        raise InputError(masks, f"{len(missing)} image(s) of {assignment} have no row", f"e.g. {missing[:3]}; rerun "
                         "the split stage (dvc repro)")  # fmt: skip
    return rows.merge(table[["image_id", "mask_path", "mask_source"]], on="image_id", how="left", validate="1:1")


def without_masks_of(rows: pd.DataFrame, sources: tuple[str, ...]) -> pd.DataFrame:
    """``rows`` with the masks of the given sources removed: those images count at image level only (the rule of
    ``evaluate.exclude_prefill_accepted``); an empty ``sources`` changes nothing.
    """
    if not sources or "mask_source" not in rows:
        return rows
    rows = rows.copy()
    rows.loc[rows["mask_source"].isin(sources), "mask_path"] = ""
    return rows


def maps_path(model: str, product: str) -> Path:
    """``data/maps/<model>/<product>.npz`` (written by the predict stage)."""
    return MAPS_DIR / model / f"{product}.npz"


def thresholds_path(model: str, product: str) -> Path:
    """``reports/thresholds/<model>/<product>.json``."""
    return THRESHOLDS_DIR / model / f"{product}.json"


def split_fingerprint(split: pd.DataFrame, product: str) -> str:
    """SHA-256 of the product's split assignment (image id, split, label, image hash), order-independent.

    A thresholds file stores it; evaluation refuses thresholds whose fingerprint differs from the current split.
    """
    rows = split[split["product"] == product].sort_values("image_id")
    text = "\n".join(
        f"{r.image_id},{r.split},{r.label},{r.sha256}"
        for r in rows[["image_id", "split", "label", "sha256"]].itertuples()
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Cell:
    """One cell's images of one split, in the maps file's order."""

    model: str
    product: str
    split_name: str
    rows: pd.DataFrame  # split rows (image_id, label, defect_categories, background, mask_path, ...)
    scores: np.ndarray  # float32 (N,)
    maps: np.ndarray | None  # float16 (N, S, S), None for image-level-only models
    masks: np.ndarray | None  # bool (N, S, S), at map size
    plans: np.ndarray | None = None  # drift plan per image (JSON, '' = none) when the test images drifted

    @property
    def labels(self) -> np.ndarray:
        """True for anomalous images."""
        return (self.rows["label"] == "anomalous").to_numpy()

    @property
    def has_mask(self) -> np.ndarray:
        """True where the ground truth has at least one defect pixel."""
        if self.masks is None:
            return np.zeros(len(self.rows), dtype=bool)
        return self.masks.any(axis=(1, 2))

    @property
    def pixel_rows(self) -> np.ndarray:
        """Images that take part in pixel-level metrics: every good image and every anomalous one with a mask.

        An anomalous image whose mask is empty (the manifest gate warns about it) has an unmarked defect: its
        pixels would count as false positives, so it is left out of pixel metrics and kept in image metrics.
        """
        return ~self.labels | self.has_mask


def load_mask(path: object, size: int) -> np.ndarray:
    """Ground truth at the map size: nearest-neighbour resize (no new labels), > 0 is defect; zeros if no path."""
    if not isinstance(path, str) or not path:
        return np.zeros((size, size), dtype=bool)
    with Image.open(path) as im:
        mask = im.convert("L").resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(mask) > 0


def load_cell(model: str, product: str, split: pd.DataFrame, split_name: str, with_masks: bool = True) -> Cell:
    """Read one cell's ``split_name`` images; the maps file must hold exactly the split's images."""
    path = maps_path(model, product)
    if not path.is_file():
        raise InputError(path, "anomaly maps not found", "run the predict stage first (dvc repro)")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    for key in ("image_id", "split", "scores"):
        if key not in arrays:
            raise InputError(path, f"maps file lacks the array '{key}'", f"holds {sorted(arrays)}")
    wanted = split[(split["product"] == product) & (split["split"] == split_name)].set_index("image_id")
    ids = arrays["image_id"].astype(str)
    picked = np.flatnonzero(arrays["split"].astype(str) == split_name)
    picked_ids = ids[picked]
    missing = sorted(set(wanted.index) - set(picked_ids))
    extra = sorted(set(picked_ids) - set(wanted.index))
    if missing or extra:
        raise InputError(
            path,
            f"maps do not match the {split_name} images of {SPLIT}",
            f"{len(missing)} missing (e.g. {missing[:3]}), {len(extra)} not in the split (e.g. {extra[:3]}); "
            "the maps were predicted for another split: rerun predict (dvc repro)",
        )
    rows = wanted.loc[picked_ids].reset_index()
    scores = arrays["scores"][picked].astype(np.float32)
    if not np.isfinite(scores).all():
        bad = picked_ids[~np.isfinite(scores)][0]
        raise InputError(path, "image scores must be finite", f"image {bad} has {scores[~np.isfinite(scores)][0]}")
    maps = arrays["maps"][picked] if "maps" in arrays else None
    masks = None
    if maps is not None:
        if maps.ndim != 3 or maps.shape[1] != maps.shape[2]:
            raise InputError(path, "maps must be square (images, size, size)", f"got shape {maps.shape}")
        finite = np.isfinite(maps).all(axis=(1, 2))
        if not finite.all():
            raise InputError(path, "anomaly maps must be finite", f"image {picked_ids[~finite][0]} has NaN or inf")
        if with_masks:
            if "mask_path" not in rows:
                raise InputError(SPLIT, "the rows hold no mask_path: models' assignment holds no mask",
                                 "join data/masks.csv first (read_split_with_masks)")  # fmt: skip
            size = maps.shape[1]
            masks = (
                np.stack([load_mask(p, size) for p in rows["mask_path"]]) if len(rows) else np.zeros(maps.shape, bool)
            )
            if "drift" in arrays:  # test images that drifted: their masks move with the plan stored for them
                from iadbench.data.drift import apply_mask, decode

                for i, text in enumerate(arrays["drift"][picked].astype(str)):  # same order as rows
                    masks[i] = apply_mask(masks[i], decode(text))
    plans = arrays["drift"][picked].astype(str) if "drift" in arrays else None
    return Cell(model, product, split_name, rows, scores, maps, masks, plans)


def write_cell_files(path: Path, doc: dict[str, Any], table: pd.DataFrame, table_suffix: str) -> dict[str, Any]:
    """Write a cell's JSON document at ``path`` and its table beside it (``path`` with ``table_suffix``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    table.to_csv(path.with_suffix(table_suffix), index=False, float_format="%.9g")
    return doc


def json_ready(value: Any) -> Any:
    """NaN/inf → null, numpy scalars → Python (JSON has no NaN; an undefined value is null, never 0)."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
