"""Default category maps of the public datasets, shipped as data files (``category_maps/*.csv``).

An imported MVTec AD or BTAD gets its categories from these at once (recorded as the provisional annotator
``iadbench-import``, never mistaken for a human label), so that Table 1 exists before anyone labels; Label Studio
refines them per image. :func:`count_table` shows how close a per-type map comes to the paper's per-product counts.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from iadbench.errors import InputError
from iadbench.taxonomy import BACKGROUNDS, DEFECT_CATEGORIES

MAPS_DIR = Path(__file__).with_name("category_maps")
MAP_FILES = {"mvtec": "mvtec_ad.csv", "btad": "btad.csv"}  # importer format -> shipped map
DATASET_NAMES = {"mvtec": "mvtec_ad", "btad": "btad"}  # the dataset column of paper_counts.csv
PAPER_COUNTS = MAPS_DIR / "paper_counts.csv"


def _read(path: Path) -> pd.DataFrame:
    text = "".join(line for line in path.read_text().splitlines(keepends=True) if not line.startswith("#"))
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)


@dataclass(frozen=True)
class CategoryMap:
    """(product, defect type) -> category; product -> background; and the release's test counts where known."""

    name: str
    categories: dict[tuple[str, str], str]
    backgrounds: dict[str, str]
    n_test: dict[tuple[str, str], int]

    @property
    def products(self) -> set[str]:
        """Products the map names."""
        return set(self.backgrounds)


def load_map(path: Path) -> CategoryMap:
    """Read and check a map file: known categories and backgrounds, one background per product, no duplicates."""
    table = _read(path)
    for column in ("product", "defect_type", "category", "background", "n_test"):
        if column not in table.columns:
            raise InputError(path, f"a category map needs a {column!r} column")
    bad = table[~table["category"].isin(DEFECT_CATEGORIES) | ~table["background"].isin(BACKGROUNDS)]
    if len(bad):
        row = bad.iloc[0]
        raise InputError(path, "category must be one of the defect categories, background with|without",
                         f"{row['product']}/{row['defect_type']}: {row['category']}, {row['background']}")  # fmt: skip
    if table.duplicated(["product", "defect_type"]).any():
        raise InputError(path, "a (product, defect_type) pair is listed twice")
    if (table.groupby("product")["background"].nunique() > 1).any():
        raise InputError(path, "a product has one background category")
    keys = list(zip(table["product"], table["defect_type"], strict=True))
    return CategoryMap(
        name=path.stem,
        categories=dict(zip(keys, table["category"], strict=True)),
        backgrounds=dict(zip(table["product"], table["background"], strict=True)),
        n_test={k: int(n) for k, n in zip(keys, table["n_test"], strict=True) if n.strip()},
    )


def default_map(fmt: str) -> CategoryMap | None:
    """The shipped map of an importer format (``mvtec``, ``btad``), or None."""
    return load_map(MAPS_DIR / MAP_FILES[fmt]) if fmt in MAP_FILES else None


def count_table(fmt: str) -> pd.DataFrame:
    """Per product: anomalous test images per category under the shipped per-type map (from the release's counts),
    beside the paper's Table 2 counts where the repository has them (else empty cells).
    """
    cmap = default_map(fmt)
    if cmap is None:
        raise ValueError(f"no shipped category map for format {fmt!r}")
    paper = _read(PAPER_COUNTS)
    paper = paper[paper["dataset"] == DATASET_NAMES[fmt]].set_index("product")
    rows = []
    for product in sorted(cmap.products):
        row: dict[str, object] = {"product": product, "background": cmap.backgrounds[product]}
        for category in DEFECT_CATEGORIES:
            counts = [cmap.n_test.get(k) for k, c in cmap.categories.items() if k[0] == product and c == category]
            row[f"map_{category}"] = "" if any(n is None for n in counts) else sum(n for n in counts if n)
            row[f"paper_{category}"] = paper.loc[product, category] if product in paper.index else ""
        rows.append(row)
    return pd.DataFrame(rows)
