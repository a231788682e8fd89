"""Pixel-exact drawing primitives for the synthetic generator.

Every primitive returns a boolean mask drawn without anti-aliasing, so the defect masks written to
``ground_truth/`` are exactly the pixels whose value the defect changed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

Point = tuple[float, float]


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(yy, xx)`` of a ``size × size`` image, as float64 arrays."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return yy, xx


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a ``cells × cells`` random grid upsampled bicubically to ``size``."""
    coarse = rng.uniform(-1.0, 1.0, size=(cells, cells)).astype(np.float32)
    up = np.asarray(Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BICUBIC))
    return np.clip(up.astype(np.float64), -1.0, 1.0)


def lighting(rng: np.random.Generator, size: int, strength: float = 0.12) -> np.ndarray:
    """Multiplicative illumination: a random global gain times a linear gradient in a random direction."""
    yy, xx = grid(size)
    theta = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - size / 2) * np.cos(theta) + (yy - size / 2) * np.sin(theta)) / size
    return rng.uniform(0.9, 1.1) * (1.0 + rng.uniform(0, strength) * 2 * ramp)


def polygon_mask(size: int, points: list[Point]) -> np.ndarray:
    """Filled polygon, no anti-aliasing."""
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in points], fill=1)
    return np.asarray(canvas, dtype=bool)


def polyline_mask(size: int, points: list[Point], width: int) -> np.ndarray:
    """Polyline of the given pixel width, no anti-aliasing."""
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).line([(float(x), float(y)) for x, y in points], fill=1, width=max(1, width))
    return np.asarray(canvas, dtype=bool)


def ellipse_mask(size: int, cx: float, cy: float, rx: float, ry: float, angle: float) -> np.ndarray:
    """Rotated filled ellipse: ``(u/rx)² + (v/ry)² ≤ 1`` in the frame rotated by ``angle``."""
    yy, xx = grid(size)
    dx, dy = xx - cx, yy - cy
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def disk_mask(size: int, cx: float, cy: float, r: float) -> np.ndarray:
    """Filled disk of radius ``r``."""
    return ellipse_mask(size, cx, cy, r, r, 0.0)


def blob_mask(rng: np.random.Generator, size: int, cx: float, cy: float, r: float) -> np.ndarray:
    """Irregular blob: a star-shaped polygon whose radius wobbles by up to ±35 % around ``r``."""
    n = 18
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 2 * np.pi / n)
    wobble = 1.0 + 0.35 * np.convolve(rng.uniform(-1, 1, n + 2), np.ones(3) / 3, mode="valid")
    pts = [(cx + r * w * np.cos(a), cy + r * w * np.sin(a)) for a, w in zip(angles, wobble, strict=True)]
    return polygon_mask(size, pts)


def random_walk(rng: np.random.Generator, start: Point, end: Point, segments: int, jitter: float) -> list[Point]:
    """A jagged path from ``start`` to ``end`` (crack-like): straight interpolation plus perpendicular jitter."""
    (x0, y0), (x1, y1) = start, end
    length = max(np.hypot(x1 - x0, y1 - y0), 1e-9)
    nx, ny = -(y1 - y0) / length, (x1 - x0) / length
    pts = [start]
    for k in range(1, segments):
        t = k / segments
        off = rng.uniform(-jitter, jitter)
        pts.append((x0 + t * (x1 - x0) + off * nx, y0 + t * (y1 - y0) + off * ny))
    pts.append(end)
    return pts


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a square of side ``2·radius + 1`` (used to keep combined defects apart)."""
    out = mask.copy()
    for _ in range(radius):
        grown = out.copy()
        grown[1:, :] |= out[:-1, :]
        grown[:-1, :] |= out[1:, :]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Clip a float image in [0, 255] and round to uint8."""
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
