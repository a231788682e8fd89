"""Synthetic products: each draws a good image with random pose, lighting and texture phase, and applies defects
of the four categories with pixel-exact masks.

Products (a registry: add one entry to add a product):

- ``nut`` — a hexagonal nut on a textured plate (*with* background), RGB PNG.
- ``weave`` — a woven fabric filling the frame (*without* background), RGB PNG.
- ``tiles`` — a grainy tiled floor filling the frame (*without* background), grayscale JPEG, to exercise the
  grayscale and JPEG paths of the loaders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from iadbench.synth.draw import (
    blob_mask,
    dilate,
    disk_mask,
    ellipse_mask,
    grid,
    lighting,
    polygon_mask,
    polyline_mask,
    random_walk,
    smooth_noise,
)


@dataclass
class Scene:
    """A good image being drawn, plus what defect painters need to know about it."""

    size: int
    image: np.ndarray  # float64, H × W × C, values in [0, 255]
    region: np.ndarray  # bool H × W: where defects may be centred (the object, or the whole texture)
    light: np.ndarray  # float64 H × W multiplicative illumination
    info: dict = field(default_factory=dict)


# A defect proposal: given a centre, return the mask it would touch and a painter that applies it.
Proposal = tuple[np.ndarray, Callable[[Scene], None]]
Proposer = Callable[[np.random.Generator, Scene, tuple[float, float]], Proposal]


@dataclass(frozen=True)
class DefectSpec:
    """One defect type (one ``test/<defect_type>`` folder) and the category annotators give it."""

    category: str
    propose: Proposer
    min_area: float  # minimum mask area as a fraction of the image area


class PlacementError(RuntimeError):
    """A defect could not be placed inside the allowed region after many tries (too small an image)."""


def _sample_point(rng: np.random.Generator, region: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(region)
    k = rng.integers(len(ys))
    return float(xs[k]), float(ys[k])


def place(rng: np.random.Generator, scene: Scene, spec: DefectSpec, avoid: np.ndarray, gap: int) -> np.ndarray:
    """Place one defect: propose at random centres until its mask is large enough and clear of ``avoid``
    (dilated by ``gap`` so that combined defects stay separate connected components); paint it; return its mask.
    """
    blocked = dilate(avoid, gap) if avoid.any() else avoid
    min_px = max(3, int(spec.min_area * scene.size * scene.size))
    for _ in range(200):
        mask, paint = spec.propose(rng, scene, _sample_point(rng, scene.region))
        if mask.sum() >= min_px and not (mask & blocked).any():
            paint(scene)
            return mask
    raise PlacementError(f"could not place a {spec.category} defect on a {scene.size}px image")


def _fill(mask: np.ndarray, colour: np.ndarray, blend: float = 1.0) -> Callable[[Scene], None]:
    def paint(scene: Scene) -> None:
        target = np.asarray(colour, dtype=np.float64)[None, :] * scene.light[mask][:, None]
        scene.image[mask] = (1 - blend) * scene.image[mask] + blend * target

    return paint


def _scale(mask: np.ndarray, factor: np.ndarray | float) -> Callable[[Scene], None]:
    def paint(scene: Scene) -> None:
        scene.image[mask] = scene.image[mask] * np.asarray(factor, dtype=np.float64)

    return paint


def _line(rng: np.random.Generator, c: tuple[float, float], length: float, width: int, size: int) -> np.ndarray:
    a = rng.uniform(0, np.pi)
    dx, dy = 0.5 * length * np.cos(a), 0.5 * length * np.sin(a)
    return polyline_mask(size, [(c[0] - dx, c[1] - dy), (c[0] + dx, c[1] + dy)], width)


def _fine_width(size: int) -> int:
    return max(1, round(size / 128))


# --------------------------------------------------------------------------------------------------- nut
def nut_scene(rng: np.random.Generator, size: int) -> Scene:
    """A hexagonal nut (random rotation, position, size, tint) on a mottled plate under a random light."""
    yy, xx = grid(size)
    cx, cy = size / 2 + rng.uniform(-0.06, 0.06, 2) * size
    theta = rng.uniform(0, np.pi / 3)
    r_out = 0.33 * size * rng.uniform(0.96, 1.04)
    r_in = 0.13 * size * rng.uniform(0.94, 1.06)
    corners = [
        (cx + r_out * np.cos(theta + k * np.pi / 3), cy + r_out * np.sin(theta + k * np.pi / 3)) for k in range(6)
    ]
    body = polygon_mask(size, corners) & ~disk_mask(size, cx, cy, r_in)
    light = lighting(rng, size)
    plate = (np.array([70.0, 80.0, 95.0]) + rng.uniform(-10, 10, 3))[None, None, :]
    background = plate * (1 + 0.12 * smooth_noise(rng, size, 6))[..., None] + rng.normal(0, 3, (size, size, 1))
    rr = np.hypot(xx - cx, yy - cy) / r_out
    shade = (
        0.8 + 0.2 * np.cos(2.2 * np.pi * rr + rng.uniform(0, 0.5)) + 0.1 * np.cos(np.arctan2(yy - cy, xx - cx) - theta)
    )
    metal = (np.array([155.0, 142.0, 122.0]) + rng.uniform(-12, 12, 3))[None, None, :]
    obj = metal * shade[..., None] + rng.normal(0, 4, (size, size, 1))
    image = np.where(body[..., None], obj, background) * light[..., None]
    info = {"background": background * light[..., None], "centre": (cx, cy), "r_out": r_out, "r_in": r_in}
    return Scene(size=size, image=image, region=body, light=light, info=info)


def _nut_missing_part(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    cx, cy = s.info["centre"]
    a = np.arctan2(c[1] - cy, c[0] - cx)
    edge = 0.92 * s.info["r_out"]
    mask = disk_mask(s.size, cx + edge * np.cos(a), cy + edge * np.sin(a), rng.uniform(0.11, 0.16) * s.size) & s.region

    def paint(scene: Scene) -> None:
        scene.image[mask] = scene.info["background"][mask]

    return mask, paint


def _nut_crack(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    cx, cy = s.info["centre"]
    a = np.arctan2(c[1] - cy, c[0] - cx)
    r_out, r_in = 1.05 * s.info["r_out"], 0.95 * s.info["r_in"]
    path = random_walk(
        rng,
        (cx + r_out * np.cos(a), cy + r_out * np.sin(a)),
        (cx + r_in * np.cos(a), cy + r_in * np.sin(a)),
        4,
        0.03 * s.size,
    )
    mask = polyline_mask(s.size, path, max(2, round(s.size / 64))) & s.region
    return mask, _fill(mask, np.array([35.0, 30.0, 25.0]))


def _nut_scratch(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    mask = _line(rng, c, rng.uniform(0.08, 0.14) * s.size, _fine_width(s.size), s.size) & s.region
    return mask, _fill(mask, np.array([235.0, 232.0, 222.0]))


def _nut_dent(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    rx = rng.uniform(0.025, 0.045) * s.size
    mask = ellipse_mask(s.size, c[0], c[1], rx, rx * rng.uniform(0.5, 1.0), rng.uniform(0, np.pi)) & s.region
    return mask, _scale(mask, rng.uniform(0.45, 0.65))


def _glue(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    mask = blob_mask(rng, s.size, c[0], c[1], rng.uniform(0.05, 0.08) * s.size)
    colours = [
        np.array([205.0, 185.0, 40.0]),
        np.array([40.0, 150.0, 205.0]),
        np.array([230.0, 230.0, 235.0]),
    ]
    return mask, _fill(mask, colours[rng.integers(len(colours))], blend=0.85)


# ------------------------------------------------------------------------------------------------- weave
def _weave_texture(p: dict) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def texture(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        x, y = xx + p["ox"], yy + p["oy"]
        u = x * np.cos(p["theta"]) + y * np.sin(p["theta"])
        v = -x * np.sin(p["theta"]) + y * np.cos(p["theta"])
        over = (np.floor(u / p["pitch"]) + np.floor(v / p["pitch"])) % 2 == 0
        weft = 0.45 + 0.55 * np.sin(np.pi * np.mod(v / p["pitch"], 1.0))
        warp = 0.45 + 0.55 * np.sin(np.pi * np.mod(u / p["pitch"], 1.0))
        return np.where(over[..., None], p["weft"] * weft[..., None], p["warp"] * warp[..., None])

    return texture


def weave_scene(rng: np.random.Generator, size: int) -> Scene:
    """Plain-weave fabric with random thread pitch, angle, phase and dye, under a random light."""
    base = np.array([120.0, 135.0, 170.0]) + rng.uniform(-20, 20, 3)
    p = {
        "theta": rng.uniform(-0.08, 0.08),
        "pitch": max(4.0, size / 14 * rng.uniform(0.9, 1.1)),
        "ox": rng.uniform(0, 50),
        "oy": rng.uniform(0, 50),
        "weft": base,
        "warp": base * rng.uniform(0.85, 1.0, 3),
    }
    texture = _weave_texture(p)
    light = lighting(rng, size)
    noise = rng.normal(0, 4, (size, size, 1))
    yy, xx = grid(size)
    image = (texture(yy, xx) + noise) * light[..., None]
    info = {"texture": texture, "noise": noise, "pitch": p["pitch"]}
    return Scene(size=size, image=image, region=np.ones((size, size), bool), light=light, info=info)


def _weave_hole(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    rx = rng.uniform(0.06, 0.1) * s.size
    mask = ellipse_mask(s.size, c[0], c[1], rx, rx * rng.uniform(0.6, 1.0), rng.uniform(0, np.pi))
    return mask, _fill(mask, np.array([32.0, 28.0, 28.0]))


def _weave_bend(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    """Threads pushed sideways inside a disk; only pixels displaced by ≥ 1 px are moved, so the mask is exact."""
    yy, xx = grid(s.size)
    radius = rng.uniform(0.12, 0.17) * s.size
    r = np.hypot(xx - c[0], yy - c[1])
    shift = rng.uniform(0.5, 0.8) * s.info["pitch"] * np.clip(1 - r / radius, 0, None) ** 2
    mask = shift >= 1.0
    phi = rng.uniform(0, 2 * np.pi)

    def paint(scene: Scene) -> None:
        moved = scene.info["texture"](yy + shift * np.sin(phi), xx + shift * np.cos(phi))
        scene.image[mask] = ((moved + scene.info["noise"]) * scene.light[..., None])[mask]

    return mask, paint


def _weave_discolour(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    rx = rng.uniform(0.03, 0.05) * s.size
    mask = ellipse_mask(s.size, c[0], c[1], rx, rx * rng.uniform(0.6, 1.0), rng.uniform(0, np.pi))
    tints = [np.array([1.35, 1.05, 0.6]), np.array([0.6, 0.6, 0.55]), np.array([1.3, 0.75, 0.75])]
    return mask, _scale(mask, tints[rng.integers(len(tints))])


def _weave_snag(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    mask = _line(rng, c, rng.uniform(0.06, 0.12) * s.size, _fine_width(s.size), s.size)
    return mask, _fill(mask, np.array([240.0, 240.0, 232.0]))


def _weave_fluff(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    mask = blob_mask(rng, s.size, c[0], c[1], rng.uniform(0.05, 0.08) * s.size)
    colours = [np.array([30.0, 30.0, 36.0]), np.array([225.0, 222.0, 210.0]), np.array([70.0, 150.0, 60.0])]
    return mask, _fill(mask, colours[rng.integers(len(colours))], blend=0.85)


# ------------------------------------------------------------------------------------------------- tiles
def tiles_scene(rng: np.random.Generator, size: int) -> Scene:
    """Grainy square tiles with grout, random pitch, grid phase and per-tile tone, under a random light."""
    yy, xx = grid(size)
    pitch = size / 4 * rng.uniform(0.9, 1.1)
    grout_w = max(2.0, round(pitch / 12))
    ox, oy = rng.uniform(0, pitch, 2)
    u, v = np.mod(xx + ox, pitch), np.mod(yy + oy, pitch)
    ix, iy = np.floor((xx + ox) / pitch).astype(int), np.floor((yy + oy) / pitch).astype(int)
    interior = (u >= grout_w) & (v >= grout_w)
    tones = rng.uniform(135, 175, size=(ix.max() + 1, iy.max() + 1))
    grain = rng.normal(0, 7, (size, size)) + 6 * smooth_noise(rng, size, 12)
    grout = 72.0 + rng.normal(0, 4, (size, size))
    light = lighting(rng, size)
    image = (np.where(interior, tones[ix, iy] + grain, grout) * light)[..., None]
    info = {"interior": interior, "grout": grout, "pitch": pitch, "tile_id": ix * 1000 + iy, "u": u, "v": v}
    return Scene(size=size, image=image, region=interior, light=light, info=info)


def _same_tile(s: Scene, c: tuple[float, float]) -> np.ndarray:
    tile = s.info["tile_id"][int(c[1]), int(c[0])]
    return (s.info["tile_id"] == tile) & s.info["interior"]


def _tiles_crack(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    a = rng.uniform(0, np.pi)
    half = 0.6 * s.info["pitch"]
    start = (c[0] - half * np.cos(a), c[1] - half * np.sin(a))
    end = (c[0] + half * np.cos(a), c[1] + half * np.sin(a))
    path = random_walk(rng, start, end, 5, 0.05 * s.info["pitch"])
    mask = polyline_mask(s.size, path, max(1, round(s.size / 64))) & _same_tile(s, c)
    return mask, _fill(mask, np.array([38.0]))


def _tiles_chip(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    """A corner broken off the tile under ``c``: the grout bed shows through."""
    tile = _same_tile(s, c)
    ys, xs = np.nonzero(tile)
    corner_x = xs.min() if rng.random() < 0.5 else xs.max()
    corner_y = ys.min() if rng.random() < 0.5 else ys.max()
    leg = rng.uniform(0.3, 0.45) * s.info["pitch"]
    sx = 1 if corner_x == xs.min() else -1
    sy = 1 if corner_y == ys.min() else -1
    tri = [
        (corner_x - sx, corner_y - sy),
        (corner_x + sx * leg, corner_y - sy),
        (corner_x - sx, corner_y + sy * leg),
    ]
    mask = polygon_mask(s.size, tri) & tile

    def paint(scene: Scene) -> None:
        scene.image[mask] = (scene.info["grout"] * scene.light)[mask][:, None]

    return mask, paint


def _tiles_stain(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    rx = rng.uniform(0.03, 0.05) * s.size
    mask = ellipse_mask(s.size, c[0], c[1], rx, rx * rng.uniform(0.6, 1.0), rng.uniform(0, np.pi)) & _same_tile(s, c)
    offset = rng.choice([-1.0, 1.0]) * rng.uniform(40, 55)

    def paint(scene: Scene) -> None:
        scene.image[mask] = scene.image[mask] + offset

    return mask, paint


def _tiles_scratch(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    mask = _line(rng, c, rng.uniform(0.07, 0.12) * s.size, _fine_width(s.size), s.size) & _same_tile(s, c)
    return mask, _fill(mask, np.array([228.0]))


def _tiles_dirt(rng: np.random.Generator, s: Scene, c: tuple[float, float]) -> Proposal:
    mask = blob_mask(rng, s.size, c[0], c[1], rng.uniform(0.05, 0.08) * s.size)
    return mask, _fill(mask, np.array([rng.uniform(40, 70)]), blend=0.85)


# ---------------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class ProductSpec:
    """A synthetic product: how to draw it and which defect types it has."""

    name: str
    background: str  # "with" or "without"
    mode: str  # PIL mode of the written images: "RGB" or "L"
    extension: str  # ".png" or ".jpg"
    scene: Callable[[np.random.Generator, int], Scene]
    defects: dict[str, DefectSpec]

    @property
    def defect_types(self) -> list[str]:
        """Folder names under ``test/``, the combined type last."""
        return [*self.defects, "combined"]

    def category_of(self, defect_type: str) -> str:
        """Defect category an annotator gives this defect type."""
        return "combined" if defect_type == "combined" else self.defects[defect_type].category


def _spec(category: str, propose: Proposer, min_area: float) -> DefectSpec:
    return DefectSpec(category=category, propose=propose, min_area=min_area)


PRODUCTS: dict[str, ProductSpec] = {
    "nut": ProductSpec(
        "nut",
        "with",
        "RGB",
        ".png",
        nut_scene,
        {
            "missing_part": _spec("structural", _nut_missing_part, 0.01),
            "crack": _spec("structural", _nut_crack, 0.003),
            "scratch": _spec("surface", _nut_scratch, 0.0003),
            "dent": _spec("surface", _nut_dent, 0.001),
            "glue": _spec("contamination", _glue, 0.004),
        },
    ),
    "weave": ProductSpec(
        "weave",
        "without",
        "RGB",
        ".png",
        weave_scene,
        {
            "hole": _spec("structural", _weave_hole, 0.01),
            "bend": _spec("structural", _weave_bend, 0.01),
            "discolour": _spec("surface", _weave_discolour, 0.002),
            "snag": _spec("surface", _weave_snag, 0.0003),
            "fluff": _spec("contamination", _weave_fluff, 0.004),
        },
    ),
    "tiles": ProductSpec(
        "tiles",
        "without",
        "L",
        ".jpg",
        tiles_scene,
        {
            "crack": _spec("structural", _tiles_crack, 0.002),
            "chip": _spec("structural", _tiles_chip, 0.004),
            "stain": _spec("surface", _tiles_stain, 0.002),
            "scratch": _spec("surface", _tiles_scratch, 0.0003),
            "dirt": _spec("contamination", _tiles_dirt, 0.004),
        },
    ),
}


def render(
    product: ProductSpec, rng: np.random.Generator, size: int, defect_type: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image of ``product``: good if ``defect_type`` is None.

    Returns ``(image, mask)``: uint8-ready float image (H × W × C) and boolean mask of the changed pixels. A
    ``combined`` image holds two or three defects of different categories, kept ``gap`` pixels apart so that
    each is its own connected component.
    """
    scene = product.scene(rng, size)
    mask = np.zeros((size, size), dtype=bool)
    gap = max(3, size // 32)
    if defect_type == "combined":
        by_category: dict[str, list[DefectSpec]] = {}
        for spec in product.defects.values():
            by_category.setdefault(spec.category, []).append(spec)
        categories = sorted(by_category)
        chosen = rng.choice(categories, size=3 if rng.random() < 0.3 else 2, replace=False)
        for category in chosen:
            options = by_category[str(category)]
            mask |= place(rng, scene, options[rng.integers(len(options))], mask, gap)
    elif defect_type is not None:
        mask |= place(rng, scene, product.defects[defect_type], mask, gap)
    return scene.image, mask
