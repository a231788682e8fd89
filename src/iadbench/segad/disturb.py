"""One-class SegAD: synthetic disturbances of good images, each inside one segment (Baitieva et al., CVPR 2024, §5.1).

Without real anomalous images the BRF learns "anomalous" from good BRF images with a local disturbance, drawn from
a generator seeded by ``(segad.seed, image id, copy)``:

1. a segment ``j`` uniformly among the product's L segments, then a centre pixel uniformly among ``j``'s pixels;
2. a kind, with equal probability:
   - ``blur``: Gaussian blur (σ uniform in [1, 3], kernel 2·⌈3σ⌉+1) of a random patch whose sides are uniform in
     [S/8, S/4] (S = ``data.image_size``);
   - ``line``: a thin rectangle of a random grey g ∈ [0, 1]: thickness uniform in [1, max(1, S/32)] px, length
     uniform in [S/8, S/2], horizontal or vertical with equal probability;
3. the patch or rectangle, centred on the chosen pixel and clipped to the image, changes only the pixels that also
   lie in segment ``j`` (so a disturbance never leaves its segment, and never is empty: the centre is in it).

The disturbance is applied to the model's input (after the resize), like test-time drift.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from iadbench.seeding import stream

KINDS = ("blur", "line")


def plan(seed: int, image_id: str, copy: int, labels: np.ndarray) -> dict[str, Any]:
    """The disturbance of copy ``copy`` of ``image_id`` on a product with segments ``labels`` (S×S)."""
    rng = stream(seed, image_id, copy)
    size = labels.shape[0]
    segment = int(rng.integers(0, int(labels.max()) + 1))
    ys, xs = np.nonzero(labels == segment)
    k = int(rng.integers(0, len(ys)))
    cy, cx = int(ys[k]), int(xs[k])
    kind = KINDS[int(rng.integers(0, len(KINDS)))]
    if kind == "blur":
        lo, hi = max(size // 8, 3), max(size // 4, 3)
        h, w = (int(rng.integers(lo, hi + 1)) for _ in range(2))
        extra = {"sigma": round(float(rng.uniform(1.0, 3.0)), 4)}
    else:
        thickness = int(rng.integers(1, max(1, size // 32) + 1))
        length = int(rng.integers(max(size // 8, 2), max(size // 2, 2) + 1))
        h, w = (thickness, length) if rng.random() < 0.5 else (length, thickness)
        extra = {"grey": round(float(rng.uniform(0.0, 1.0)), 4)}
    y0, x0 = max(cy - h // 2, 0), max(cx - w // 2, 0)
    box = [y0, min(y0 + h, size), x0, min(x0 + w, size)]
    return {"kind": kind, "segment": segment, "box": box, **extra}


def region(p: dict[str, Any], labels: np.ndarray) -> np.ndarray:
    """Pixels a disturbance changes: its box ∩ its segment (bool S×S)."""
    y0, y1, x0, x1 = p["box"]
    inside = np.zeros(labels.shape, dtype=bool)
    inside[y0:y1, x0:x1] = True
    return inside & (labels == p["segment"])


def apply(image: torch.Tensor, p: dict[str, Any], labels: np.ndarray) -> torch.Tensor:
    """``image`` (C×S×S, [0, 1]) with the disturbance ``p`` applied inside :func:`region`."""
    from torchvision.transforms.v2.functional import gaussian_blur

    where = torch.from_numpy(region(p, labels))
    if p["kind"] == "blur":
        sigma = float(p["sigma"])
        kernel = 2 * math.ceil(3 * sigma) + 1
        changed = gaussian_blur(image, kernel_size=[kernel, kernel], sigma=[sigma, sigma])
    elif p["kind"] == "line":
        changed = torch.full_like(image, float(p["grey"]))
    else:
        raise ValueError(f"unknown disturbance kind {p['kind']!r}; valid: {list(KINDS)}")
    return torch.where(where[None], changed, image)


SYNTHETIC = "#synthetic"  # image id of a disturbed copy: <image id>#synthetic<k>


def synthetic_copies(
    part: pd.DataFrame, seed: int, per_image: int, labels: np.ndarray
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The BRF part with ``per_image`` disturbed copies of each good image appended (ids ``<id>#synthetic<k>``,
    label anomalous: the one-class mode) and the plan of each copy (:func:`plan`).
    """
    synthetic: dict[str, dict[str, Any]] = {}
    for image_id in part.loc[part["label"] == "good", "image_id"]:
        for k in range(per_image):
            synthetic[f"{image_id}{SYNTHETIC}{k}"] = plan(seed, str(image_id), k, labels)
    copies = []
    for copy_id in synthetic:
        original = part[part["image_id"] == copy_id.split(SYNTHETIC)[0]].iloc[0].copy()
        original["image_id"], original["label"] = copy_id, "anomalous"
        copies.append(original)
    rows = pd.concat([part, pd.DataFrame(copies)], ignore_index=True) if copies else part.reset_index(drop=True)
    return rows, synthetic
