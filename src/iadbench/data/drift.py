"""Test-time data drift: seeded camera, lighting and position transforms of test images, masks moved with them.

After "Beyond Academic Benchmarks: Critical Analysis and Best Practices for Visual Industrial Anomaly Detection"
(Baitieva et al., 2025), Table 10. Each *test* image (thresholds stay fitted on the clean validation split, as in
production) gets ``k`` transforms, ``k`` uniform in ``1..min(max_per_image, categories in the pool)``, from ``k``
different categories, one transform per category, parameters drawn uniformly:

============  ===========  =====================================================================================
category      transform    parameters (params.yaml ``drift``; paper defaults)
============  ===========  =====================================================================================
camera        blur         Gaussian blur, kernel 7, σ ∈ ``blur_sigma`` = [0.1, 1.5]
camera        noise        ``scale · N(0.5, 1.0)`` added per pixel and channel, scale ∈ ``noise_scale`` =
                           [0.01, 0.05]
lighting      jitter       brightness, contrast, saturation factors each ∈ ``jitter`` = [0.5, 1.5]
lighting      shadow       ``shadow_layers`` = 3 random quadrilaterals blended towards brightness 0 (black), each
                           with opacity ∈ ``shadow_opacity``
position      rotate       angle ∈ [−``rotate_degrees``, ``rotate_degrees``] = [−5°, 5°] about the centre
position      crop         a square crop of area ``s`` ∈ ``crop_scale`` = [0.8, 1.0] of the image, resized back
position      perspective  each corner moved inwards by up to ``perspective`` = 0.2 of half the side
============  ===========  =====================================================================================

The paper names "random shadow, 3 layers, brightness 0" without a library; the reading here (layers that darken
towards black with a drawn opacity) is ours, and its opacity range is a param. Transforms act on the model's input
(the image already resized to ``data.image_size``, values in [0, 1]); geometric ones move the ground-truth mask with
the image (nearest neighbour, no new labels; pixels moved in from outside the frame are black and good).

Determinism: the plan of one image (which transforms, which parameters, the noise pattern's seed) is a function of
``(drift.seed, image id)`` only — not of batch, order or other images — so a rerun is byte-identical. The plan is
stored beside the maps (``drift`` array of the predict stage's ``.npz``), and evaluation moves each mask with the
plan stored for its image: the image and its mask are moved by one function, from one record.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from iadbench.params import DRIFT_CATEGORIES, DRIFT_CATEGORY_OF, DriftParams
from iadbench.seeding import stream

__all__ = ["CATEGORIES", "CATEGORY_OF", "DriftParams", "plan"]

if TYPE_CHECKING:  # torch is imported where images are transformed, so that reading params stays light
    import torch

CATEGORIES, CATEGORY_OF = DRIFT_CATEGORIES, DRIFT_CATEGORY_OF  # the schema is params.DriftParams
GEOMETRIC = frozenset(CATEGORIES["position"])
BLUR_KERNEL = 7
NOISE_MEAN, NOISE_STD = 0.5, 1.0


def _rng(seed: int, image_id: str) -> np.random.Generator:
    return stream(seed, image_id)


def plan(params: DriftParams, image_id: str, size: int) -> list[dict[str, Any]]:
    """The transforms of one image with their drawn parameters, in the order they apply.

    A function of ``(params, image id, size)`` only: the same image drifts the same way in every run and batch.
    """
    if not params.on:
        return []
    rng = _rng(params.seed, image_id)
    k = int(rng.integers(1, min(params.max_per_image, len(params.categories)) + 1))
    chosen = sorted(rng.choice(len(params.categories), size=k, replace=False).tolist())
    steps = []
    for category in (params.categories[i] for i in chosen):
        pool = [t for t in params.transforms if CATEGORY_OF[t] == category]
        name = pool[int(rng.integers(len(pool)))]
        steps.append({"name": name, **_draw(name, params, rng, size)})
    return steps


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return round(float(rng.uniform(*bounds)), 6)


def _draw(name: str, p: DriftParams, rng: np.random.Generator, size: int) -> dict[str, Any]:
    if name == "blur":
        return {"sigma": _uniform(rng, p.blur_sigma)}
    if name == "noise":
        return {"scale": _uniform(rng, p.noise_scale), "noise_seed": int(rng.integers(2**31))}
    if name == "jitter":
        return {k: _uniform(rng, p.jitter) for k in ("brightness", "contrast", "saturation")}
    if name == "shadow":
        layers = []
        for _ in range(p.shadow_layers):
            corners = rng.uniform(0, size, size=(4, 2))
            centre = corners.mean(axis=0)  # vertices in angle order: a simple quadrilateral, never a bow tie
            corners = corners[np.argsort(np.arctan2(*(corners - centre).T[::-1]))]
            layers.append({"polygon": corners.round(2).tolist(), "opacity": _uniform(rng, p.shadow_opacity)})
        return {"layers": layers}
    if name == "rotate":
        return {"angle": _uniform(rng, (-p.rotate_degrees, p.rotate_degrees))}
    if name == "crop":
        side = max(1, min(size, int(round(size * float(np.sqrt(rng.uniform(*p.crop_scale)))))))
        top, left = (int(v) for v in rng.integers(0, size - side + 1, size=2))
        return {"top": top, "left": left, "side": side}
    # perspective: torchvision's RandomPerspective corner draw, from this image's own generator
    half = size // 2
    reach = int(p.perspective * half)
    a, b = (int(v) for v in rng.integers(0, reach + 1, size=2))
    c, d = (int(v) for v in rng.integers(0, reach + 1, size=2))
    e, f = (int(v) for v in rng.integers(0, reach + 1, size=2))
    g, h = (int(v) for v in rng.integers(0, reach + 1, size=2))
    end = [[a, b], [size - 1 - c, d], [size - 1 - e, size - 1 - f], [g, size - 1 - h]]
    return {"start": [[0, 0], [size - 1, 0], [size - 1, size - 1], [0, size - 1]], "end": end}


def _geometry(x: torch.Tensor, step: dict[str, Any], nearest: bool) -> torch.Tensor:
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F  # noqa: N812

    mode = InterpolationMode.NEAREST if nearest else InterpolationMode.BILINEAR
    size = x.shape[-1]
    if step["name"] == "crop" and nearest:
        # torch's "nearest" resize samples at floor(i·scale), half a source pixel away from the pixel centres that
        # the image's bilinear resize uses (a 1 px shift at this scale); "nearest-exact" samples the centres
        mode = InterpolationMode.NEAREST_EXACT
    if step["name"] == "rotate":
        return F.rotate(x, step["angle"], interpolation=mode, fill=0.0)
    if step["name"] == "crop":
        antialias = not nearest
        return F.resized_crop(
            x, step["top"], step["left"], step["side"], step["side"], [size, size], interpolation=mode,
            antialias=antialias,
        )  # fmt: skip
    return F.perspective(x, step["start"], step["end"], interpolation=mode, fill=0.0)


def _shadow(image: torch.Tensor, layers: list[dict[str, Any]]) -> torch.Tensor:
    import torch
    from PIL import Image, ImageDraw

    size = image.shape[-1]
    factor = torch.ones(size, size, dtype=image.dtype)
    for layer in layers:
        canvas = Image.new("L", (size, size), 0)
        ImageDraw.Draw(canvas).polygon([tuple(p) for p in layer["polygon"]], fill=255)
        inside = torch.from_numpy(np.asarray(canvas) > 0)
        factor[inside] *= 1.0 - layer["opacity"]
    return image * factor


def apply_image(image: torch.Tensor, steps: list[dict[str, Any]]) -> torch.Tensor:
    """Apply a plan to a float image (C, S, S) in [0, 1]; the result is clipped to [0, 1]."""
    import torch
    from torchvision.transforms.v2 import functional as F  # noqa: N812

    out = image
    for step in steps:
        name = step["name"]
        if name in GEOMETRIC:
            out = _geometry(out, step, nearest=False)
        elif name == "blur":
            out = F.gaussian_blur(out, [BLUR_KERNEL, BLUR_KERNEL], [step["sigma"], step["sigma"]])
        elif name == "noise":
            gen = np.random.default_rng(step["noise_seed"])
            noise = gen.normal(NOISE_MEAN, NOISE_STD, size=tuple(out.shape)).astype(np.float32)
            out = out + step["scale"] * torch.from_numpy(noise)
        elif name == "jitter":
            out = F.adjust_brightness(out, step["brightness"])
            out = F.adjust_contrast(out, step["contrast"])
            out = F.adjust_saturation(out, step["saturation"])
        else:
            out = _shadow(out, step["layers"])
        out = out.clamp(0.0, 1.0)
    return out.contiguous()


def apply_mask(mask: np.ndarray, steps: list[dict[str, Any]]) -> np.ndarray:
    """Move a boolean mask (S, S) with the plan's geometric steps (nearest neighbour); photometric steps leave it."""
    geometric = [s for s in steps if s["name"] in GEOMETRIC]
    if not geometric:
        return mask
    import torch

    out = torch.from_numpy(mask.astype(np.uint8))[None]
    for step in geometric:
        out = _geometry(out, step, nearest=True)
    return out[0].numpy() > 0


def encode(steps: list[dict[str, Any]]) -> str:
    """A plan as the compact JSON string stored per image ('' for an image that does not drift)."""
    return json.dumps(steps, separators=(",", ":")) if steps else ""


def decode(text: str) -> list[dict[str, Any]]:
    """The plan stored for one image."""
    return json.loads(text) if text else []


def describe(steps: list[dict[str, Any]]) -> str:
    """Short human label of a plan, e.g. ``rotate(angle=3.1) + blur(sigma=0.8)``."""
    parts = []
    for step in steps:
        shown = {k: v for k, v in step.items() if isinstance(v, int | float) and k not in ("noise_seed", "top", "left")}
        if step["name"] == "shadow":
            shown = {"layers": len(step["layers"])}
        elif step["name"] == "perspective":
            shown = {"max_shift_px": max(abs(a - b) for s, e in zip(step["start"], step["end"], strict=True)
                                         for a, b in zip(s, e, strict=True))}  # fmt: skip
        args = ", ".join(f"{k}={v:.3g}" for k, v in shown.items())
        parts.append(f"{step['name']}({args})")
    return " + ".join(parts) or "none"
