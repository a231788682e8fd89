"""The L mutually exclusive segments of a product, as one label image at ``data.image_size`` (labels 0..L-1).

Sources (``segad.segments``): ``whole`` (L = 1), ``grid`` (``segad.grid`` = K: K×K equal cells, label = row·K +
column) or ``image``: the dataset's ``<product>/segments.png`` (checked by the manifest gate: one label per pixel,
labels 0..L-1 all present, the size of the product's images), resized with nearest-neighbour so that labels are
never blended; a label that the resize loses is an error naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from iadbench.errors import InputError
from iadbench.hashing import sha256_of
from iadbench.params import SegadParams
from iadbench.paths import MANIFEST_SEGMENTS


def grid_labels(size: int, k: int) -> np.ndarray:
    """K×K cells of a ``size``×``size`` image: label of pixel (y, x) = ⌊y·K/size⌋·K + ⌊x·K/size⌋."""
    cell = np.arange(size) * k // size
    return (cell[:, None] * k + cell[None, :]).astype(np.int64)


def image_labels(path: Path, size: int, sha256: str = "") -> np.ndarray:
    """``segments.png`` resized (nearest) to ``size``; every label of the file must survive the resize."""
    from iadbench.data.manifest import segment_labels

    if not path.is_file():
        raise InputError(path, "segad.segments: image needs the product's segmentation image", "file not found")
    if sha256 and sha256_of(path) != sha256:
        raise InputError(path, "segments.png changed since the manifest was written", "run dvc repro (manifest)")
    with Image.open(path) as im:
        try:
            full = segment_labels(im)
        except ValueError as exc:
            raise InputError(path, "segments.png must hold one label per pixel", str(exc)) from exc
    labels = np.unique(full)
    if labels.min() != 0 or not np.array_equal(labels, np.arange(len(labels))):
        raise InputError(path, "segments.png labels must be 0..L-1 with every label present", f"found {labels[:20]}")
    resized = np.asarray(Image.fromarray(full.astype(np.int32)).resize((size, size), Image.Resampling.NEAREST))
    lost = sorted(set(labels.tolist()) - set(np.unique(resized).tolist()))
    if lost:
        raise InputError(
            path, "every segment must keep pixels at data.image_size",
            f"label(s) {lost} vanish when resized to {size}x{size} (segment too thin: raise data.image_size)",
        )  # fmt: skip
    return resized.astype(np.int64)


def product_segments(segad: SegadParams, product: str, size: int, table: pd.DataFrame | None = None) -> np.ndarray:
    """The label image of ``product`` at ``size`` from ``segad.segments`` (``table``: ``data/manifest_segments.csv``,
    read when the source is ``image``; its recorded hash must match the file).
    """
    if segad.segments == "whole":
        return np.zeros((size, size), dtype=np.int64)
    if segad.segments == "grid":
        return grid_labels(size, segad.grid)
    if table is None:
        from iadbench.data.manifest import read_table

        table = read_table(MANIFEST_SEGMENTS)
    row = table[table["product"] == product]
    if row.empty or not bool(row["exists"].iloc[0]):
        where = row["segments_path"].iloc[0] if not row.empty else f"<dataset>/{product}/segments.png"
        raise InputError(where, "segad.segments: image needs a segmentation image per product", "file not found")
    return image_labels(Path(row["segments_path"].iloc[0]), size, str(row["sha256"].iloc[0]))


def n_segments(labels: np.ndarray) -> int:
    """L: the number of segments of a label image."""
    return int(labels.max()) + 1
