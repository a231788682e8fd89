"""A test fixture: an alignment probe with a known answer, small bright squares at known positions on a plain
textured plate.

A model fitted on the plates alone must score each square as the anomaly; where its map peaks, compared with the
square's centre, is the map's misalignment. Squares have an odd side, so their centre is a pixel; positions avoid
multiples of any stride, so a grid placed half a cell off cannot hide. Used by ``tests/models/test_fidelity.py``
(every registered model that runs offline) and ``benchmarks/alignment.py`` (the figures in docs/fidelity.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from iadbench.data.split import ASSIGNMENT_COLUMNS

PRODUCT = "plate"


@dataclass(frozen=True)
class Probe:
    """Square centres (row, col) in pixels of an ``image_size`` image, one square per test image."""

    image_size: int
    centres: tuple[tuple[int, int], ...]
    side: int


def default_probe(image_size: int) -> Probe:
    """Five squares of side ≈ size/16 (odd), centres spread over the image and off every power-of-two grid."""
    side = max(5, (image_size // 16) | 1)
    fractions = ((0.30, 0.34), (0.62, 0.28), (0.45, 0.58), (0.27, 0.71), (0.70, 0.66))
    centres = tuple((int(round(fy * image_size)) | 1, int(round(fx * image_size)) | 1) for fy, fx in fractions)
    return Probe(image_size, centres, side)


def plate(image_size: int, seed: int) -> np.ndarray:
    """A mid-grey plate with a faint smooth texture (uint8, H × W × 3): what the model learns as normal."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, (image_size // 8 + 2, image_size // 8 + 2)).astype(np.float32)
    field = np.asarray(Image.fromarray(coarse).resize((image_size, image_size), Image.Resampling.BICUBIC))
    fine = rng.normal(0.0, 1.0, (image_size, image_size)).astype(np.float32)
    grey = 0.45 + 0.03 * field + 0.01 * fine
    rgb = np.clip(np.stack([grey, grey * 0.98, grey * 1.02], axis=-1), 0, 1)
    return (rgb * 255).round().astype(np.uint8)


def with_square(image: np.ndarray, centre: tuple[int, int], side: int) -> np.ndarray:
    """``image`` with a bright square of odd ``side`` centred on pixel ``centre``."""
    out = image.copy()
    half = side // 2
    out[centre[0] - half : centre[0] + half + 1, centre[1] - half : centre[1] + half + 1] = 235
    return out


def write_probe(root: Path, probe: Probe, n_train: int = 8, seed: int = 0) -> pd.DataFrame:
    """Write the plates and squares under ``root/images`` and ``data/assignment.csv`` (the file models read)."""
    rows = []
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)

    def add(name: str, image: np.ndarray, split: str, label: str) -> None:
        path = folder / f"{name}.png"
        Image.fromarray(image).save(path)
        rows.append({
            "image_id": f"probe/{PRODUCT}/{name}", "dataset": "probe", "product": PRODUCT, "split": split,
            "label": label, "defect_type": "square" if label == "anomalous" else "good", "image_path": str(path),
            "mask_path": "", "sha256": "",
        })  # fmt: skip

    for index in range(n_train):
        add(f"train_{index:03d}", plate(probe.image_size, seed + index), "train", "good")
    add("validation_good", plate(probe.image_size, seed + 1000), "validation", "good")
    for index, centre in enumerate(probe.centres):
        add(f"square_{index}", with_square(plate(probe.image_size, seed + 2000 + index), centre, probe.side), "test",
            "anomalous")  # fmt: skip
    table = pd.DataFrame(rows, columns=ASSIGNMENT_COLUMNS)
    (root / "data").mkdir(parents=True, exist_ok=True)
    table.to_csv(root / "data/assignment.csv", index=False)
    return table


def peak_offsets(maps: np.ndarray, image_ids: np.ndarray, probe: Probe) -> np.ndarray:
    """(row, col) of each square's map peak minus the square's centre, one row per square (pixels).

    The peak is located to sub-pixel precision as the centroid of the peak's upper half: inside a window of ±2
    square sides around the square (so a response to the plate's border cannot stand in for it), the weights
    ``max(0, m − (peak − (peak − median)/2))`` with ``median`` the whole map's. A single argmax pixel is at the
    mercy of one noisy value; the half-maximum centroid is the usual estimator of a blob's position.
    """
    offsets = []
    for index, centre in enumerate(probe.centres):
        position = list(image_ids).index(f"probe/{PRODUCT}/square_{index}")
        values = maps[position].astype(np.float64)
        reach = 2 * probe.side
        top, left = max(centre[0] - reach, 0), max(centre[1] - reach, 0)
        window = values[top : centre[0] + reach + 1, left : centre[1] + reach + 1]
        peak = window.max()
        weights = np.clip(window - (peak - (peak - np.median(values)) / 2), 0, None)
        if weights.sum() <= 0:  # a flat map: no peak at all
            offsets.append((np.nan, np.nan))
            continue
        rows, cols = np.mgrid[0 : window.shape[0], 0 : window.shape[1]]
        offsets.append((
            top + (weights * rows).sum() / weights.sum() - centre[0],
            left + (weights * cols).sum() / weights.sum() - centre[1],
        ))  # fmt: skip
    return np.asarray(offsets)


def locate(params: dict, model: str, probe: Probe, corrections: bool = True) -> np.ndarray | None:
    """Fit and predict ``model`` on the probe written in the working directory; its peak offsets (None: no maps)."""
    from iadbench.stages.predict import predict_cell
    from iadbench.stages.train import train_cell

    train_cell(params, model, PRODUCT, progress=False, corrections=corrections)
    predict_cell(params, model, PRODUCT, progress=False, corrections=corrections)
    data = np.load(f"data/maps/{model}/{PRODUCT}.npz")
    return peak_offsets(data["maps"], data["image_id"], probe) if "maps" in data else None
