"""Where each stage reads and writes, relative to the repository root (the stages' working directory)."""

from __future__ import annotations

from pathlib import Path

RAW_ROOT = Path("data/raw")
EXPORTS_ROOT = Path("annotation/exports")
MANIFEST = Path("data/manifest.csv")
MANIFEST_MASKS = Path("data/manifest_masks.csv")
MANIFEST_SEGMENTS = Path("data/manifest_segments.csv")  # one row per product: its segments.png, if any (SegAD)
CATEGORIES = Path("data/categories.csv")
SPLIT = Path("data/split.csv")
ASSIGNMENT = Path("data/assignment.csv")  # the split without annotations: what models and evaluation read
GATES_DIR = Path("reports/gates")
MODELS_DIR = Path("models")
MAPS_DIR = Path("data/maps")  # anomaly maps and scores, one .npz per (model, product)
PREDICT_REPORTS = Path("reports/predict")
DATA_SUMMARY = Path("reports/data_summary.json")
PARAMS = Path("params.yaml")
SEGAD_DIR = Path("data/segad")  # SegAD features, one .npz per (detector, product)


def dataset_root(dataset: str) -> Path:
    """Folder of a dataset in the MVTec AD layout: ``data/raw/<dataset>``."""
    return RAW_ROOT / dataset


def export_path(dataset: str) -> Path:
    """Label Studio JSON export holding the dataset's defect and background categories."""
    return EXPORTS_ROOT / f"{dataset}.json"


def gate_result(name: str) -> Path:
    """JSON result of a validation gate stage."""
    return GATES_DIR / f"{name}.json"
