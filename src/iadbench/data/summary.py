"""``reports/data_summary.json``: counts per dataset, product, split and category, declared as DVC metrics."""

from __future__ import annotations

import pandas as pd

from iadbench.data.agreement import binary_counts, fleiss_kappa
from iadbench.data.categories import LABEL_SOURCES
from iadbench.taxonomy import BACKGROUNDS, DEFECT_CATEGORIES, SPLITS, split_categories


def category_kappas(categories: pd.DataFrame) -> dict[str, float | None]:
    """Fleiss' kappa per defect category (chosen or not) and for the background, over anomalous annotated images."""
    rated = categories[(categories["label"] == "anomalous") & (categories["n_annotators"] >= 2)]
    if not {f"votes_{c}" for c in DEFECT_CATEGORIES} <= set(rated.columns):
        return {}
    raters = rated["n_annotators"].to_numpy()
    out = {c: fleiss_kappa(binary_counts(rated[f"votes_{c}"].to_numpy(), raters)) for c in DEFECT_CATEGORIES}
    out["background"] = fleiss_kappa(rated[[f"votes_background_{b}" for b in BACKGROUNDS]].to_numpy())
    return {k: None if v is None else round(v, 4) for k, v in out.items()}


def data_summary(split: pd.DataFrame, manifest: pd.DataFrame, categories: pd.DataFrame) -> dict:
    """Nested counts with stable keys (``dvc metrics show`` flattens them to ``images.train`` etc.).

    An image with several defect categories counts once in each of them.
    """
    datasets = sorted(split["dataset"].unique())
    out: dict = {"dataset": ",".join(datasets), "images": {"total": int(len(split))}}
    for s in SPLITS:
        out["images"][s] = int((split["split"] == s).sum())
    excluded = split["split"] == "excluded"
    if excluded.any():  # split.train_noise > 0: good train images replaced by anomalous ones
        out["images"]["excluded"] = int(excluded.sum())
        out["images"]["train_anomalous"] = int(((split["split"] == "train") & (split["label"] == "anomalous")).sum())
    brf = split["split"] == "brf"
    if brf.any():  # SegAD on: the boosted random forest's own images (good, and segad.shots anomalous)
        out["images"]["brf"] = int(brf.sum())
        out["images"]["brf_anomalous"] = int((brf & (split["label"] == "anomalous")).sum())
    out["anomalous"] = {s: int(((split["split"] == s) & (split["label"] == "anomalous")).sum()) for s in SPLITS[1:]}
    out["products"] = {}
    for product, group in split.groupby("product", sort=True):
        entry = {"train": int((group["split"] == "train").sum())}
        for s in SPLITS[1:]:
            for label in ("good", "anomalous"):
                entry[f"{s}_{label}"] = int(((group["split"] == s) & (group["label"] == label)).sum())
        out["products"][str(product)] = entry
    cats = split["defect_categories"].map(split_categories)
    out["defect_categories"] = {
        c: {s: int(((split["split"] == s) & cats.map(lambda cs, c=c: c in cs)).sum()) for s in SPLITS[1:]}
        for c in DEFECT_CATEGORIES
    }
    out["backgrounds"] = {
        b: {s: int(((split["split"] == s) & (split["background"] == b)).sum()) for s in SPLITS} for b in BACKGROUNDS
    }
    annotated = categories[categories["n_annotators"] > 0]
    anomalous_sources = categories.loc[categories["label"] == "anomalous", "label_source"].value_counts()
    out["annotation"] = {
        "annotated_images": int(len(annotated)),
        "mean_annotators": round(float(annotated["n_annotators"].mean()), 4) if len(annotated) else 0.0,
        "mean_defect_agreement": round(float(annotated["defect_agreement"].mean()), 4) if len(annotated) else 0.0,
        "defect_ties": int(categories["defect_tie"].astype(bool).sum()),
        "background_ties": int(categories["background_tie"].astype(bool).sum()),
        "fleiss_kappa": category_kappas(categories),
        # who the anomalous images' categories come from: confirmed by a person, a suggestion accepted unchanged,
        # the provisional import map, simulated annotators (synthetic), nobody yet
        "label_source": {s: int(n) for s, n in anomalous_sources.reindex(list(LABEL_SOURCES), fill_value=0).items()},
    }
    anomalous = manifest[manifest["label"] == "anomalous"]
    out["masks"] = {
        "anomalous_images": int(len(anomalous)),
        "empty": int(anomalous["mask_empty"].astype(bool).sum()),
        "mean_defect_area_fraction": round(float(anomalous["mask_fraction"].mean()), 6) if len(anomalous) else 0.0,
        # shipped, drawn in Label Studio, pre-drawn by a detector (edited or accepted), pending (iadbench.data.drawn)
        "sources": {str(s): int(n) for s, n in sorted(anomalous["mask_source"].astype(str).value_counts().items())}
        if "mask_source" in anomalous
        else {},
    }
    return out
