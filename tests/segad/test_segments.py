"""SegAD's segments: grid, whole image, and a dataset's segments.png (with its bad inputs)."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from iadbench.errors import InputError
from iadbench.hashing import sha256_of
from iadbench.params import SegadParams
from iadbench.segad.segments import grid_labels, image_labels, n_segments, product_segments
from tests.conftest import TINY


def test_grid_cells_are_equal_and_numbered_row_major():
    labels = grid_labels(6, 3)
    assert labels.tolist()[0] == [0, 0, 1, 1, 2, 2] and labels.tolist()[5] == [6, 6, 7, 7, 8, 8]
    assert np.bincount(labels.ravel()).tolist() == [4] * 9
    assert n_segments(grid_labels(64, 2)) == 4


def _params(**segad):
    return SegadParams.from_params({**TINY, "segad": {**TINY["segad"], **segad}})


def test_sources(tmp_path):
    assert (product_segments(_params(segments="whole"), "nut", 8) == 0).all()
    assert np.array_equal(product_segments(_params(segments="grid", grid=4), "nut", 16), grid_labels(16, 4))
    path = tmp_path / "segments.png"
    labels = np.zeros((100, 100), dtype=np.uint8)
    labels[30:70, 30:70] = 1
    Image.fromarray(labels).save(path)
    table = pd.DataFrame([{"product": "nut", "exists": True, "segments_path": str(path), "sha256": sha256_of(path)}])
    out = product_segments(_params(segments="image"), "nut", 50, table)
    assert out.shape == (50, 50) and set(np.unique(out)) == {0, 1}
    assert out[25, 25] == 1 and out[0, 0] == 0  # nearest: labels never blend


def test_bad_segmentation_images(tmp_path):
    path = tmp_path / "segments.png"
    with pytest.raises(InputError, match="segments.png: segad.segments: image needs .*: file not found"):
        image_labels(path, 32)
    labels = np.zeros((100, 100), dtype=np.uint8)
    labels[50, 50] = 1  # a one-pixel segment
    Image.fromarray(labels).save(path)
    with pytest.raises(
        InputError, match=r"every segment must keep pixels.*label\(s\) \[1\] vanish when resized to 8x8"
    ):
        image_labels(path, 8)
    with pytest.raises(InputError, match="segments.png changed since the manifest was written"):
        image_labels(path, 100, sha256="0" * 64)
    labels[50, 50] = 2
    Image.fromarray(labels).save(path)
    with pytest.raises(InputError, match="labels must be 0..L-1"):
        image_labels(path, 100)
    table = pd.DataFrame([{"product": "nut", "exists": False, "segments_path": "data/raw/x/nut/segments.png",
                           "sha256": ""}])  # fmt: skip
    with pytest.raises(InputError, match="data/raw/x/nut/segments.png: segad.segments: image needs"):
        product_segments(_params(segments="image"), "nut", 32, table)
