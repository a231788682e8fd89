"""The persisted, seeded, stratified split — the single source of truth for training, thresholds and evaluation.

Per product:

- ``train`` = every image under ``train/good``;
- ``validation`` = a fraction ``f`` of the product's test images, stratified twice: first good vs anomalous
  (``round(f·n)`` of each, at least one of each when the product has at least two), then, within the anomalous
  images, by defect type (the ``test/<defect_type>/`` folder) with the largest-remainder method so that the strata
  add up exactly;
- ``test`` = the remaining test images.

Within a stratum the chosen images come from a generator seeded by ``(seed, product, stratum)`` over the images
sorted by id, so the split does not depend on file-system order, and the same params write the same file.

Why defect type and not the annotated defect category: the assignment must not move when annotators relabel an
image, or every re-annotation would retrain every model. Defect types are what categories are assigned from, so the
categories stay balanced across validation and test; ``data/assignment.csv`` (no category column) is what training,
prediction, thresholds and evaluation read, and it is byte-identical after a relabelling. ``data/split.csv`` adds the
categories for the gates, the summary and the tables.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from iadbench.params import SplitParams

SPLIT_COLUMNS = [
    "image_id", "dataset", "product", "split", "label", "defect_type", "defect_categories", "background",
    "image_path", "mask_path", "sha256",
]  # fmt: skip
ASSIGNMENT_COLUMNS = [c for c in SPLIT_COLUMNS if c not in ("defect_categories", "background")]


def _quota(n: int, fraction: float) -> int:
    """Validation count for a group of ``n``: ``round(f·n)``, kept within [1, n-1] when ``n ≥ 2``."""
    k = int(np.floor(fraction * n + 0.5))
    return min(max(k, 1), n - 1) if n >= 2 else k


def largest_remainder(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Apportion ``total`` over strata in proportion to ``sizes`` (Hamilton's method).

    Each stratum first gets ``floor(total·size/N)``; the rest go one each to the largest remainders, ties broken by
    stratum name, so the result is deterministic and sums to ``total``.
    """
    n = sum(sizes.values())
    if n == 0 or total == 0:
        return dict.fromkeys(sizes, 0)
    exact = {k: total * v / n for k, v in sizes.items()}
    alloc = {k: int(np.floor(x)) for k, x in exact.items()}
    left = total - sum(alloc.values())
    for k in sorted(sizes, key=lambda k: (-(exact[k] - alloc[k]), k))[:left]:
        alloc[k] += 1
    return alloc


def _pick(ids: list[str], k: int, seed: int, *key: str) -> set[str]:
    rng = np.random.default_rng([seed, *(zlib.crc32(x.encode()) for x in key)])
    order = rng.permutation(len(ids))
    return {sorted(ids)[i] for i in order[:k]}


def make_split(manifest: pd.DataFrame, categories: pd.DataFrame, params: SplitParams) -> pd.DataFrame:
    """Assign every manifest image to train, validation or test (see module docstring)."""
    table = manifest.merge(categories[["image_id", "defect_categories", "background"]], on="image_id", how="left")
    table["defect_categories"] = table["defect_categories"].fillna("")
    table["background"] = table["background"].fillna("")
    table["split"] = np.where(table["split_folder"] == "train", "train", "test")
    validation: set[str] = set()
    for product, group in table[table["split_folder"] == "test"].groupby("product", sort=True):
        good = group.loc[group["label"] == "good", "image_id"].tolist()
        validation |= _pick(good, _quota(len(good), params.val_fraction), params.seed, str(product), "good")
        anomalous = group[group["label"] == "anomalous"]
        strata = {str(k): g["image_id"].tolist() for k, g in anomalous.groupby("defect_type", sort=True)}
        alloc = largest_remainder({k: len(v) for k, v in strata.items()}, _quota(len(anomalous), params.val_fraction))
        for stratum, ids in strata.items():
            validation |= _pick(ids, alloc[stratum], params.seed, str(product), "anomalous", stratum)
    table.loc[table["image_id"].isin(validation), "split"] = "validation"
    out = table[SPLIT_COLUMNS].sort_values("image_id", kind="stable").reset_index(drop=True)
    return out
