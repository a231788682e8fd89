"""Pixel-level counts over a stack of anomaly maps: pooled curves, PRO, per-image counts and the oracle threshold.

All functions take ``maps`` (N, H, W) and boolean ``masks`` of the same shape (ground truth already at map size).
Stored maps are float16, so the pooled curves take the streaming histogram path of
:class:`iadbench.metrics.counts.Float16Histogram` chunk by chunk (memory independent of N); any other float dtype
takes the exact sort path.

AUPRO (Bergmann et al., "The MVTec Anomaly Detection Dataset", IJCV 2021, and its evaluation code): with R
ground-truth regions (8-connected components of every mask),

    PRO(t) = (1/R) Σ_k |{p ∈ region_k : s(p) ≥ t}| / |region_k|,     FPR(t) = FP(t) / #(pixels outside every region)

and AUPRO@L = (1/L) ∫_0^L PRO d(FPR) by the trapezoidal rule, the curve interpolated linearly at FPR = L (L = 0.3).
PRO(t) is a weighted true-positive count — each defect pixel weighs 1/(R·|region|) — so it comes from the same
counting kernel as every other curve, in the same pass. The tests check it against MVTec AD's definition evaluated
threshold by threshold.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from iadbench.metrics.counts import (
    Counts,
    Float16Histogram,
    confusion_counts,
    float16_keys,
    float16_of_keys,
    safe_divide,
)

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)  # MVTec AD's regions: 8-connected components of a mask
CHUNK = 32  # images per histogram chunk: bounds the temporary keys to ~CHUNK·H·W·8 bytes


def check_maps(maps: np.ndarray, masks: np.ndarray, where: str = "maps") -> None:
    """Raise ``ValueError`` naming the rule when maps and masks cannot be evaluated together."""
    if np.shape(maps) != np.shape(masks):
        raise ValueError(f"{where}: anomaly maps {np.shape(maps)} and masks {np.shape(masks)} differ in shape")
    if np.ndim(maps) != 3:
        raise ValueError(f"{where}: maps must be (images, height, width), got shape {np.shape(maps)}")
    for start in range(0, len(maps), CHUNK):
        if not np.isfinite(maps[start : start + CHUNK]).all():
            bad = start + int(np.flatnonzero(~np.isfinite(maps[start : start + CHUNK]).all(axis=(1, 2)))[0])
            raise ValueError(f"{where}: anomaly map {bad} contains NaN or inf")


def _chunks(n: int) -> Iterator[slice]:
    for start in range(0, n, CHUNK):
        yield slice(start, min(n, start + CHUNK))


@dataclass(frozen=True)
class PixelCurves:
    """Pooled pixel counts of a stack: ``pixels`` (TP/FP per threshold) and ``pro`` (TP = PRO(t), module docstring)."""

    pixels: Counts
    pro: Counts | None
    regions: int


def pixel_curves(maps: np.ndarray, masks: np.ndarray, with_pro: bool = True) -> PixelCurves:
    """Pooled pixel :class:`Counts` and, with ``with_pro``, the PRO counts, in one streaming pass.

    PRO weights are ``1/|region|`` per defect pixel (8-connected regions of each mask), divided by the region count
    R at the end, so that TP(t) = PRO(t) = (1/R) Σ_k |region_k ∩ {s ≥ t}| / |region_k|.
    """
    check_maps(maps, masks)
    masks = np.asarray(masks, dtype=bool)
    if np.asarray(maps).dtype != np.float16:
        pixels = confusion_counts(maps, masks)
        if not with_pro:
            return PixelCurves(pixels, None, 0)
        weights, regions = _inverse_areas(masks)
        pro = confusion_counts(maps, masks, weights)
        return PixelCurves(pixels, _scaled(pro, regions), regions)
    hist_pixels, hist_pro, regions = Float16Histogram(), Float16Histogram(), 0
    for part in _chunks(len(maps)):
        chunk_maps, chunk_masks = np.asarray(maps[part]), masks[part]
        hist_pixels.add(chunk_maps, chunk_masks)
        if with_pro:
            weights, n = _inverse_areas(chunk_masks)
            hist_pro.add(chunk_maps, chunk_masks, weights)
            regions += n
    pro = hist_pro.counts(1.0 / max(regions, 1)) if with_pro else None
    return PixelCurves(hist_pixels.counts(), pro, regions)


def _inverse_areas(masks: np.ndarray) -> tuple[np.ndarray, int]:
    """Weight ``1/|region|`` on every defect pixel, and the number of regions."""
    out = np.zeros(masks.shape, dtype=np.float64)
    regions = 0
    for i, mask in enumerate(masks):
        if mask.any():
            labelled, n = ndimage.label(mask, structure=EIGHT_CONNECTED)
            area = np.bincount(labelled.ravel()).astype(np.float64)
            out[i] = np.where(labelled > 0, 1.0 / area[labelled], 0.0)
            regions += n
    return out, regions


def _scaled(c: Counts, regions: int) -> Counts:
    scale = 1.0 / regions if regions else 1.0
    return Counts(c.thresholds, c.tp * scale, c.fp, c.n_pos * scale, c.n_neg)


def integrate_to(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """∫_0^limit y dx for a curve sorted by x (starting at x = 0), interpolating y linearly at x = limit."""
    inside = x <= limit
    xs, ys = x[inside], y[inside]
    if xs[-1] < limit and inside.sum() < len(x):
        k = int(np.argmax(~inside))
        x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
        y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0) if x1 > x0 else y1
        xs, ys = np.r_[xs, limit], np.r_[ys, y_lim]
    return float(np.trapezoid(ys, xs))


def aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> float:
    """AUPRO@``fpr_limit`` of a stack of maps (module docstring); NaN without defect regions or good pixels."""
    return aupro_from_counts(pixel_curves(maps, masks).pro, fpr_limit)


def aupro_from_counts(pro: Counts | None, fpr_limit: float = 0.3) -> float:
    """AUPRO@``fpr_limit`` from PRO counts (module docstring); NaN when undefined."""
    if pro is None or pro.n_pos == 0 or pro.n_neg == 0:
        return float("nan")
    fpr = np.r_[0.0, pro.fp / pro.n_neg]
    overlap = np.r_[0.0, pro.tp / pro.n_pos]
    return integrate_to(fpr, overlap, fpr_limit) / fpr_limit


def per_image_confusion(maps: np.ndarray, masks: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """TP, FP, FN, TN per image (rows) and threshold (columns), ``s ≥ t`` anomalous; int64 arrays (N, T)."""
    check_maps(maps, masks)
    masks = np.asarray(masks, dtype=bool)
    thresholds = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    n, t = len(maps), len(thresholds)
    out = {k: np.zeros((n, t), dtype=np.int64) for k in ("tp", "fp", "fn", "tn")}
    positives = masks.sum(axis=(1, 2))
    negatives = masks[0].size - positives if n else positives
    for part in _chunks(n):
        chunk = np.asarray(maps[part], dtype=np.float64)
        for j, threshold in enumerate(thresholds):
            predicted = chunk >= threshold
            out["tp"][part, j] = (predicted & masks[part]).sum(axis=(1, 2))
            out["fp"][part, j] = (predicted & ~masks[part]).sum(axis=(1, 2))
    out["fn"] = positives[:, None] - out["tp"]
    out["tn"] = negatives[:, None] - out["fp"]
    return out


def iou(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """IoU = TP/(TP+FP+FN); NaN where the union is empty (no defect pixel and nothing predicted)."""
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    return safe_divide(tp, tp + fp + fn)


def mean_iou_curve(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(thresholds descending, mean per-image IoU)`` over every distinct score of images with a defect pixel.

    mIoU(t) = (1/N) Σ_i TP_i(t) / (P_i + FP_i(t)) over the N images whose mask is not empty (P_i > 0). Every
    threshold between two consecutive distinct scores gives the same counts, so the distinct scores are all the
    candidates: the maximum over them is the exact test-optimal ("oracle") mean IoU. Empty when N = 0.
    """
    check_maps(maps, masks)
    masks = np.asarray(masks, dtype=bool)
    keep = np.flatnonzero(masks.any(axis=(1, 2)))
    if not len(keep):
        return np.array([]), np.array([])
    if np.asarray(maps).dtype == np.float16:
        return _mean_iou_curve_float16(maps, masks, keep)
    grid = np.unique(np.asarray(maps[keep], dtype=np.float64))[::-1]
    ascending = grid[::-1]
    total = np.zeros(len(grid), dtype=np.float64)
    for i in keep:
        scores, mask = np.asarray(maps[i]), masks[i]
        pos = np.sort(scores[mask].astype(np.float64))
        neg = np.sort(scores[~mask].astype(np.float64))
        # counts of scores >= t for every t of the grid (ascending), then reversed to descending
        tp = (len(pos) - np.searchsorted(pos, ascending, side="left"))[::-1]
        fp = (len(neg) - np.searchsorted(neg, ascending, side="left"))[::-1]
        total += tp / (len(pos) + fp)
    return grid, total / len(keep)


def _mean_iou_curve_float16(maps: np.ndarray, masks: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same curve from per-image histograms over the 65,536 float16 keys (no sort): O(N·(HW + 65,536))."""
    total = np.zeros(65536, dtype=np.float64)
    seen = np.zeros(65536, dtype=bool)
    for i in keep:
        scores = np.asarray(maps[i])
        scores = np.where(scores == 0, np.float16(0), scores)
        keys = float16_keys(scores).ravel()
        mask = masks[i].ravel()
        pos = np.bincount(keys[mask], minlength=65536)
        neg = np.bincount(keys[~mask], minlength=65536)
        seen |= (pos + neg) > 0
        tp = np.cumsum(pos[::-1])  # descending keys: counts of scores >= each key
        fp = np.cumsum(neg[::-1])
        total += (tp / (pos.sum() + fp))[::-1]
    present = np.flatnonzero(seen)[::-1]
    return float16_of_keys(present), total[present] / len(keep)


def oracle_threshold(maps: np.ndarray, masks: np.ndarray) -> tuple[float, float]:
    """``(threshold, mean IoU)`` maximising the mean per-image IoU (ties: highest threshold); NaNs if undefined.

    An upper bound only: it is fitted on the images it is evaluated on.
    """
    grid, curve = mean_iou_curve(maps, masks)
    if not len(grid):
        return float("nan"), float("nan")
    k = int(np.argmax(curve))
    return float(grid[k]), float(curve[k])
