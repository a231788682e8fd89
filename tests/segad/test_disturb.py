"""One-class SegAD's synthetic disturbances: inside their segment, never empty, seeded."""

import numpy as np
import pytest
import torch

from iadbench.segad import disturb
from iadbench.segad.segments import grid_labels


@pytest.mark.parametrize("copy", range(40))
def test_disturbance_changes_only_pixels_of_its_segment(copy):
    labels = grid_labels(64, 3)
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(copy))
    p = disturb.plan(0, f"nut/train/good/{copy:03d}.png", copy % 2, labels)
    out = disturb.apply(image, p, labels)
    changed = (out != image).any(dim=0).numpy()
    assert changed.any()  # never empty: its centre lies in the segment
    assert (labels[changed] == p["segment"]).all()
    assert not (changed & ~disturb.region(p, labels)).any()
    assert p["kind"] in disturb.KINDS


def test_plans_are_seeded_and_cover_both_kinds():
    labels = grid_labels(64, 2)
    plans = [disturb.plan(0, f"img{i}", 0, labels) for i in range(30)]
    assert plans == [disturb.plan(0, f"img{i}", 0, labels) for i in range(30)]
    assert plans != [disturb.plan(1, f"img{i}", 0, labels) for i in range(30)]
    assert {p["kind"] for p in plans} == {"blur", "line"}
    assert {p["segment"] for p in plans} == {0, 1, 2, 3}
    line = next(p for p in plans if p["kind"] == "line")
    y0, y1, x0, x1 = line["box"]
    assert min(y1 - y0, x1 - x0) <= 2  # thin: at most S/32 px across


def test_irregular_segment_is_respected():
    labels = np.zeros((32, 32), dtype=np.int64)
    labels[8:24, 8:24] = 1  # a square in the middle
    image = torch.zeros(3, 32, 32)
    image[:, ::2] = 1.0  # stripes, so that a blur changes pixels
    for i in range(20):
        p = disturb.plan(3, f"x{i}", 0, labels)
        out = disturb.apply(image, p, labels)
        changed = (out != image).any(dim=0).numpy()
        assert (labels[changed] == p["segment"]).all()
