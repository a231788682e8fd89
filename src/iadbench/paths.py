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
MASKS_TABLE = Path("data/masks.csv")  # every split image's mask and its source: thresholds and evaluation read it
GATES_DIR = Path("reports/gates")
GATE_DOCS = GATES_DIR / "docs"  # Great Expectations Data Docs of the gates (iadbench gate-docs)
MODELS_DIR = Path("models")
MAPS_DIR = Path("data/maps")  # anomaly maps and scores, one .npz per (model, product)
PREDICT_REPORTS = Path("reports/predict")  # what predict did, per cell (deterministic: no timings)
TRAIN_REPORTS = Path("reports/train")  # DVCLive's folder per cell: metrics.json and plots/metrics/*.tsv
RESOURCES_DIR = Path("reports/resources")  # volatile measurements (seconds, memory, host), per stage and cell
COSTS = Path("reports/costs.json")  # the resources summed per model (volatile: git-tracked, never cached)
COSTS_MD = Path("reports/costs.md")
DATA_SUMMARY = Path("reports/data_summary.json")
PARAMS = Path("params.yaml")
SEGAD_DIR = Path("data/segad")  # SegAD features, one .npz per (detector, product)
THRESHOLDS_DIR = Path("reports/thresholds")  # per cell: fitted thresholds (.json) and validation curves (.curves.csv)
EVALUATE_DIR = Path("reports/evaluate")  # per cell: test figures (.json) and one row per test image (.csv)
METRICS = Path("reports/metrics.json")  # every headline figure per model (git-tracked; the report and studies read it)
HEADLINE = Path("reports/headline.json")  # the few numbers per model `dvc exp show` lists (the DVC metric)
TABLES_DIR = Path("reports/tables")  # categories.csv (Table 1, long format) and products.csv
CATEGORY_TABLE = TABLES_DIR / "categories.csv"
PRODUCT_TABLE = TABLES_DIR / "products.csv"
REPORT_HTML = Path("reports/report.html")
REPORT_MD = Path("reports/report.md")
FIGURES = Path("reports/figures")  # the report's figures that depend on threshold.method (DVC image plots)
OVERLAYS_DIR = Path("reports/overlays")  # the figures stage: overlays per headline rule and model, drift examples
DRIFT_EXAMPLES = OVERLAYS_DIR / "drift_examples.png"
THUMBS_DIR = Path("reports/thumbs")  # the figures stage: per cell, a sheet of every test image's thumbnails
STUDIES_DIR = Path("reports/studies")  # iadbench study NAME: NAME.json, NAME.md
LABEL_CONFIG = Path("annotation/label_config.xml")  # the Label Studio labelling interface
ANNOTATION_EXAMPLES = Path("annotation/examples")  # example images per category for annotators


def dataset_root(dataset: str) -> Path:
    """Folder of a dataset in the MVTec AD layout: ``data/raw/<dataset>``."""
    return RAW_ROOT / dataset


def export_path(dataset: str) -> Path:
    """Label Studio JSON export holding the dataset's defect and background categories."""
    return EXPORTS_ROOT / f"{dataset}.json"


def train_report_dir(model: str, product: str) -> Path:
    """DVCLive's directory of one trained cell (uncached; its metrics and plots are declared in dvc.yaml)."""
    return TRAIN_REPORTS / model / product


def resources_path(stage: str, model: str, product: str) -> Path:
    """Seconds and memory one stage took on one cell: ``reports/resources/<stage>/<model>/<product>.json``."""
    return RESOURCES_DIR / stage / model / f"{product}.json"


def segad_features_path(detector: str, product: str) -> Path:
    """SegAD's segment statistics of one detector's maps: ``data/segad/<detector>/<product>.npz``."""
    return SEGAD_DIR / detector / f"{product}.npz"


def gate_result(name: str) -> Path:
    """JSON result of a validation gate stage."""
    return GATES_DIR / f"{name}.json"


def thumbs_path(model: str, product: str) -> Path:
    """The thumbnail sheet of one cell: ``reports/thumbs/<model>/<product>.png`` (a row per test image)."""
    return THUMBS_DIR / model / f"{product}.png"


def overlay_path(rule: str, model: str) -> Path:
    """Best and worst test image per category of ``model`` at ``rule``: ``reports/overlays/<rule>/<model>.png``."""
    return OVERLAYS_DIR / rule / f"{model}.png"
