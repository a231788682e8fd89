"""The persisted, seeded, stratified split — the single source of truth for training, thresholds and evaluation.

Per product:

- ``train`` = every image under ``train/good``;
- ``validation`` = a fraction ``f`` of the product's test images, stratified twice: first good vs anomalous
  (``round(f·n)`` of each, at least one of each when the product has at least two), then, within the anomalous
  images, by defect type (the ``test/<defect_type>/`` folder) with the largest-remainder method so that the strata
  add up exactly;
- ``test`` = the remaining test images.

Noisy training labels (``split.train_noise`` = ``f`` > 0, the noise study after Baitieva et al. 2025): per product,
``n = round(f·n_train)`` train images are replaced by ``n`` anomalous test images (stratified by defect type, as
above), which then leave validation and test; the ``n`` good train images they replace are marked ``excluded``
(kept in the file, in no split, so that coverage still holds). The validation/test split is then drawn from the
remaining test images. With ``f = 0`` (the default) the file is the one written before this option existed.

SegAD (``segad.detectors`` non-empty; Baitieva et al., CVPR 2024): per product, ``round(b·n)`` of the ``n`` good
train images (``b`` = ``segad.brf_fraction``, at least 2) move to split ``brf``: their maps train the boosted random
forest and the detectors no longer see them, so that a detector and the same detector + SegAD learn from the same
images. With ``segad.shots`` = N > 0, N anomalous test images per product (stratified by defect type) join ``brf``
too and leave validation and test. With SegAD off the file is the one written before SegAD existed.

A dataset that ships its own validation images (MVTec AD 2: ``<product>/validation/good``, good images only) keeps
them out of every split by default (``excluded``: ``split.validation: from_test`` draws validation from the test
images, as for every other dataset); with ``split.validation: shipped`` they *are* the validation split, as shipped,
and every test image stays in test — a product may then have no anomalous validation image, and only the
normal-only threshold rules are fitted for it. ``shipped`` on a product that ships no validation folder is an error
naming it.

Within a stratum the chosen images come from a generator seeded by ``(seed, product, stratum)`` over the images
sorted by id, so the split does not depend on file-system order, and the same params write the same file.

Why defect type and not the annotated defect category: the assignment must not move when annotators relabel an
image, or every re-annotation would retrain every model. Defect types are what categories are assigned from, so the
categories stay balanced across validation and test; ``data/assignment.csv`` (no category column) is what training,
prediction, thresholds and evaluation read, and it is byte-identical after a relabelling. ``data/split.csv`` adds the
categories for the gates, the summary and the tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from iadbench.errors import InputError
from iadbench.params import SegadParams, SplitParams
from iadbench.seeding import stream

SPLIT_COLUMNS = [
    "image_id", "dataset", "product", "split", "label", "defect_type", "defect_categories", "background",
    "image_path", "mask_path", "sha256", "mask_source",
]  # fmt: skip
# what models read: no annotation (categories, masks), so that new labels or masks retrain nothing
ASSIGNMENT_COLUMNS = [c for c in SPLIT_COLUMNS if c not in ("defect_categories", "background", "mask_path",
                                                            "mask_source")]  # fmt: skip
MASK_TABLE_COLUMNS = ["image_id", "mask_path", "mask_source"]  # data/masks.csv: what thresholds and evaluation read


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
    rng = stream(seed, *key)
    order = rng.permutation(len(ids))
    return {sorted(ids)[i] for i in order[:k]}


def _by_type(anomalous: pd.DataFrame) -> dict[str, list[str]]:
    return {str(k): g["image_id"].tolist() for k, g in anomalous.groupby("defect_type", sort=True)}


def noisy_train(table: pd.DataFrame, params: SplitParams, source: str = "data/manifest.csv") -> tuple[set, set]:
    """Anomalous test images that join train, and the good train images they replace (see module docstring).

    Raises :class:`InputError` naming the product and the counts when a product has too few anomalous images: at
    least one must stay for validation and one for test.
    """
    noisy: set[str] = set()
    replaced: set[str] = set()
    if params.train_noise <= 0:
        return noisy, replaced
    for product, group in table.groupby("product", sort=True):
        train = group.loc[group["split_folder"] == "train", "image_id"].tolist()
        anomalous = group[(group["split_folder"] == "test") & (group["label"] == "anomalous")]
        n = int(np.floor(params.train_noise * len(train) + 0.5))
        if n > len(anomalous) - 2:
            raise InputError(
                source,
                "split.train_noise needs anomalous images to replace train images",
                f"product {product}: {params.train_noise:.0%} of {len(train)} train images is {n} anomalous "
                f"image(s), but it has {len(anomalous)} anomalous test image(s) and at least 2 must stay for "
                f"validation and test (largest fraction possible: {max(len(anomalous) - 2, 0) / len(train):.3f})",
            )
        strata = _by_type(anomalous)
        alloc = largest_remainder({k: len(v) for k, v in strata.items()}, n)
        for stratum, ids in strata.items():
            noisy |= _pick(ids, alloc[stratum], params.seed, str(product), "noise", stratum)
        replaced |= _pick(train, n, params.seed, str(product), "replaced")
    return noisy, replaced


def segad_part(
    table: pd.DataFrame, train: set[str], noisy: set[str], segad: SegadParams, source: str = "data/manifest.csv"
) -> set[str]:
    """Images of the SegAD BRF part (good train images, then ``segad.shots`` anomalous test images), see above.

    Raises :class:`InputError` naming the product when its BRF part would hold fewer than 2 good images, when no
    train image would be left for the detectors, or when it has too few anomalous images for the shots (at least
    one must stay for validation and one for test).
    """
    chosen: set[str] = set()
    if not segad.on:
        return chosen
    for product, group in table.groupby("product", sort=True):
        good = group.loc[group["image_id"].isin(train) & (group["label"] == "good"), "image_id"].tolist()
        n = int(np.floor(segad.brf_fraction * len(good) + 0.5))
        if n < 2 or n >= len(good):
            raise InputError(
                source,
                "segad.brf_fraction must leave at least 2 good train images for the BRF and 1 for the detectors",
                f"product {product}: {segad.brf_fraction:g} of {len(good)} good train images is {n}",
            )
        chosen |= _pick(good, n, segad.seed, str(product), "segad-brf")
        if segad.shots:
            anomalous = group[(group["split_folder"] == "test") & (group["label"] == "anomalous")]
            anomalous = anomalous[~anomalous["image_id"].isin(noisy)]
            if segad.shots > len(anomalous) - 2:
                raise InputError(
                    source,
                    "segad.shots takes anomalous test images out of validation and test",
                    f"product {product}: {segad.shots} shot(s) asked, but it has {len(anomalous)} anomalous test "
                    f"image(s) and at least 2 must stay for validation and test (most possible: "
                    f"{max(len(anomalous) - 2, 0)})",
                )
            strata = _by_type(anomalous)
            alloc = largest_remainder({k: len(v) for k, v in strata.items()}, segad.shots)
            for stratum, ids in strata.items():
                chosen |= _pick(ids, alloc[stratum], segad.seed, str(product), "segad-shots", stratum)
    return chosen


def make_split(
    manifest: pd.DataFrame, categories: pd.DataFrame, params: SplitParams, segad: SegadParams | None = None
) -> pd.DataFrame:
    """Assign every manifest image to train, validation, test, excluded or brf (see module docstring)."""
    table = manifest.merge(categories[["image_id", "defect_categories", "background"]], on="image_id", how="left")
    table["defect_categories"] = table["defect_categories"].fillna("")
    table["background"] = table["background"].fillna("")
    table["split"] = np.where(table["split_folder"] == "train", "train", "test")
    shipped = table["split_folder"] == "validation"
    table.loc[shipped, "split"] = "validation" if params.validation == "shipped" else "excluded"
    if params.validation == "shipped":
        without = sorted(set(table["product"]) - set(table.loc[shipped, "product"]))
        if without:
            raise InputError(
                "params.yaml",
                "split.validation: shipped needs validation images the dataset ships (<product>/validation/)",
                f"product(s) {without} ship none (MVTec AD 2 does; for the others use split.validation: from_test)",
            )
    noisy, replaced = noisy_train(table, params)
    table.loc[table["image_id"].isin(noisy), "split"] = "train"
    table.loc[table["image_id"].isin(replaced), "split"] = "excluded"
    brf = segad_part(table, set(table.loc[table["split"] == "train", "image_id"]), noisy, segad or SegadParams())
    table.loc[table["image_id"].isin(brf), "split"] = "brf"
    validation: set[str] = set()
    remaining = table[(table["split_folder"] == "test") & ~table["image_id"].isin(noisy | brf)]
    for product, group in remaining.groupby("product", sort=True) if params.validation == "from_test" else ():
        good = group.loc[group["label"] == "good", "image_id"].tolist()
        validation |= _pick(good, _quota(len(good), params.val_fraction), params.seed, str(product), "good")
        anomalous = group[group["label"] == "anomalous"]
        strata = _by_type(anomalous)
        alloc = largest_remainder({k: len(v) for k, v in strata.items()}, _quota(len(anomalous), params.val_fraction))
        for stratum, ids in strata.items():
            validation |= _pick(ids, alloc[stratum], params.seed, str(product), "anomalous", stratum)
    if params.validation == "from_test":
        table.loc[table["image_id"].isin(validation), "split"] = "validation"
    out = table[SPLIT_COLUMNS].sort_values("image_id", kind="stable").reset_index(drop=True)
    return out
