"""The one place image files are opened and made into a model's input: camera orientation applied, 16-bit scaled by
its depth, bombs refused; then RGB, resized, in [0, 1] (:func:`model_input`).

- **EXIF orientation** (phone and camera JPEGs store the pixels sideways plus a tag): applied with
  :func:`PIL.ImageOps.exif_transpose`, so the image is the one an annotator saw in a browser (which honours the tag)
  and lines up with the mask drawn on it.
- **16-bit greyscale** (``I;16`` PNG/TIFF from industrial cameras): ``.convert("RGB")`` clips every value above 255 to
  white (99.7 % of a typical frame); here values are scaled by the bit depth, ``round(v · 255 / 65535)``.
- **Decompression bombs**: PIL warns above :data:`PIL.Image.MAX_IMAGE_PIXELS` (89.5 M pixels) and raises above twice
  that; both are errors here (``DecompressionBombError``), which the manifest records and its gate names.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:
    import torch

SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # "I": 32-bit ints, as PIL opens some 16-bit PNGs


def open_image(path: str | Path) -> Image.Image:
    """The decoded image of ``path``, upright, in an 8-bit mode (``L``, ``RGB``, ``RGBA``, ``P``...); every byte read
    (a truncated file fails here). Raises what PIL raises, and ``DecompressionBombError`` above PIL's pixel limit.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                im.load()
                image = ImageOps.exif_transpose(im) or im.copy()
        except Image.DecompressionBombWarning as exc:
            raise Image.DecompressionBombError(str(exc)) from None
    if image.mode in SIXTEEN_BIT:
        values = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.rint(values * 255.0 / 65535.0), 0, 255).astype(np.uint8), mode="L")
    return image


def resized_rgb(path: str | Path, size: int) -> np.ndarray:
    """The image file as RGB (grey repeated), bilinear-resized to ``size`` × ``size`` (no crop): H × W × 3 uint8."""
    image = open_image(path)
    return np.array(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))  # writable: torch takes it


def model_input(path: str | Path, size: int) -> torch.Tensor:
    """The image a model sees: :func:`resized_rgb` as a float 3 × ``size`` × ``size`` tensor in [0, 1] (a test-time
    drift plan is applied to it by :func:`iadbench.data.drift.apply_image`).
    """
    import torch
    from torchvision.transforms.v2.functional import to_dtype, to_image

    return to_dtype(to_image(resized_rgb(path, size)), torch.float32, scale=True)
