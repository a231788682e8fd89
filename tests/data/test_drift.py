"""Test-time drift: seeded plans, byte-identical images, masks that follow the geometry, clear param errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iadbench.data import drift
from iadbench.errors import ParamsError

ALL = [name for names in drift.CATEGORIES.values() for name in names]
SIZE = 64


def _params(**section) -> drift.DriftParams:
    return drift.DriftParams.from_params({"drift": {"transforms": ALL, **section}})


def _square(top: int = 18, left: int = 22, side: int = 24) -> tuple[torch.Tensor, np.ndarray]:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[top : top + side, left : left + side] = True
    image = torch.full((3, SIZE, SIZE), 0.2)
    image[:, torch.from_numpy(mask)] = 0.9
    return image, mask


def test_off_by_default_and_plans_are_empty():
    params = drift.DriftParams.from_params({})
    assert not params.on and drift.plan(params, "synthetic/nut/test/crack/000", SIZE) == []
    assert drift.encode([]) == "" and drift.decode("") == []


def test_plan_is_a_function_of_seed_and_image_id():
    params = _params()
    ids = [f"synthetic/nut/test/crack/{i:03d}" for i in range(200)]
    plans = [drift.plan(params, i, SIZE) for i in ids]
    assert plans == [drift.plan(params, i, SIZE) for i in ids]  # rerun: identical
    assert (
        drift.plan(_params(seed=1), ids[0], SIZE) != plans[0] or drift.plan(_params(seed=1), ids[1], SIZE) != plans[1]
    )
    counts = {len(p) for p in plans}
    assert counts == {1, 2}  # 1 or 2 transforms per image
    for steps in plans:
        categories = [drift.CATEGORY_OF[s["name"]] for s in steps]
        assert len(set(categories)) == len(categories)  # one transform per category
        order = list(drift.CATEGORIES)
        assert categories == sorted(categories, key=order.index)  # position, then lighting, then camera
    used = {s["name"] for steps in plans for s in steps}
    assert used == set(ALL)


def test_parameters_are_drawn_within_the_paper_ranges():
    params = _params()
    for i in range(300):
        for step in drift.plan(params, f"x/{i}", SIZE):
            name = step["name"]
            if name == "blur":
                assert 0.1 <= step["sigma"] <= 1.5
            elif name == "noise":
                assert 0.01 <= step["scale"] <= 0.05
            elif name == "jitter":
                assert all(0.5 <= step[k] <= 1.5 for k in ("brightness", "contrast", "saturation"))
            elif name == "shadow":
                assert len(step["layers"]) == 3
            elif name == "rotate":
                assert -5 <= step["angle"] <= 5
            elif name == "crop":
                assert 0.8 * SIZE**2 - 2 * SIZE <= step["side"] ** 2 <= SIZE**2
            else:
                moved = np.abs(np.array(step["end"]) - np.array(step["start"]))
                assert moved.max() <= 0.2 * SIZE / 2


def test_pool_limits_the_transforms_and_max_per_image():
    params = drift.DriftParams.from_params({"drift": {"transforms": ["blur", "rotate"], "max_per_image": 1}})
    plans = [drift.plan(params, f"x/{i}", SIZE) for i in range(50)]
    assert all(len(p) == 1 and p[0]["name"] in {"blur", "rotate"} for p in plans)


def test_drifted_image_is_byte_identical_on_rerun():
    image, _ = _square()
    params = _params()
    for i in range(30):
        steps = drift.plan(params, f"x/{i}", SIZE)
        a = drift.apply_image(image.clone(), drift.decode(drift.encode(steps)))
        b = drift.apply_image(image.clone(), steps)
        assert a.shape == image.shape and torch.equal(a, b)
        assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


@pytest.mark.parametrize("name", ["rotate", "crop", "perspective"])
def test_mask_follows_the_geometry(name):
    image, mask = _square()
    params = drift.DriftParams.from_params({"drift": {"transforms": [name], "rotate_degrees": 30.0, "perspective": 0.6,
                                                      "crop_scale": [0.3, 0.5]}})  # fmt: skip
    for i in range(10):
        steps = drift.plan(params, f"x/{i}", SIZE)
        moved_image = drift.apply_image(image, steps)[0].numpy() > 0.55  # the bright square where it went
        moved_mask = drift.apply_mask(mask, steps)
        assert not np.array_equal(moved_mask, mask) or name == "crop"
        inter, union = (moved_image & moved_mask).sum(), (moved_image | moved_mask).sum()
        assert union > 0 and inter / union > 0.85, (steps, inter, union)
        centre = [np.argwhere(m).mean(axis=0) for m in (moved_image, moved_mask)]
        assert np.abs(centre[0] - centre[1]).max() < 0.75, (steps, centre)  # same place within a pixel


def test_photometric_transforms_leave_the_mask():
    image, mask = _square()
    params = drift.DriftParams.from_params({"drift": {"transforms": ["blur", "noise", "jitter", "shadow"]}})
    for i in range(10):
        steps = drift.plan(params, f"x/{i}", SIZE)
        assert np.array_equal(drift.apply_mask(mask, steps), mask)
        assert not torch.equal(drift.apply_image(image, steps), image)


def test_unknown_transform_names_the_valid_ones():
    with pytest.raises(
        ParamsError, match=r"drift.transforms: unknown transform\(s\) \['fog'\]; valid: rotate \(position\), crop"
    ):
        drift.DriftParams.from_params({"drift": {"transforms": ["blur", "fog"]}})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("blur_sigma", [0.1, 20], r"drift.blur_sigma must satisfy 0.01 <= low <= high <= 10.0"),
        ("blur_sigma", [1.5, 0.1], r"drift.blur_sigma must satisfy"),
        ("noise_scale", 0.05, r"drift.noise_scale must be a list, got 0.05"),
        ("jitter", [0.0, 1.5], r"drift.jitter must satisfy"),
        ("crop_scale", [0.8, 1.2], r"drift.crop_scale must satisfy"),
        ("rotate_degrees", 90, r"drift.rotate_degrees must be in \[0, 45\], got 90"),
        ("perspective", 1.0, r"drift.perspective must be in"),
        ("max_per_image", 4, r"drift.max_per_image must be in \[1, 3\]"),
        ("shadow_layers", 2.5, r"drift.shadow_layers must be an integer, got 2.5"),
    ],
)
def test_out_of_range_drift_params(key, value, message):
    with pytest.raises(ParamsError, match=message):
        drift.DriftParams.from_params({"drift": {"transforms": ["blur"], key: value}})
