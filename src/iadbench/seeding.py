"""One seeded random stream per purpose: ``numpy.random.default_rng([seed, *keys])``.

A stream is a function of a params seed and names (an image id, a product, a study key): strings enter as their
CRC-32, integers as themselves. Each draw site gets its own stream, so adding an image, a product or a draw elsewhere
never shifts what another site draws, and a rerun with the same params draws the same numbers.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, *keys: str | int) -> np.random.Generator:
    """The generator keyed by ``seed`` and ``keys`` (strings by CRC-32 of their UTF-8 bytes)."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) if isinstance(k, str) else k for k in keys)])
