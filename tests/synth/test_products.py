import numpy as np
import pytest
from scipy import ndimage

from iadbench.synth.products import PRODUCTS, render

CASES = [(p, d) for p in PRODUCTS for d in PRODUCTS[p].defect_types]


@pytest.mark.parametrize("product", sorted(PRODUCTS))
def test_good_image_has_empty_mask_and_varies(product):
    spec = PRODUCTS[product]
    a, mask = render(spec, np.random.default_rng(1), 64, None)
    b, _ = render(spec, np.random.default_rng(2), 64, None)
    assert not mask.any()
    assert a.shape == (64, 64, 1 if spec.mode == "L" else 3)
    assert np.abs(a - b).mean() > 2.0, "good images must vary (pose, lighting, texture phase)"


@pytest.mark.parametrize(("product", "defect"), CASES)
def test_defect_changes_exactly_the_masked_pixels(product, defect):
    spec = PRODUCTS[product]
    for seed in range(3):
        good, _ = render(spec, np.random.default_rng(seed), 64, None)
        bad, mask = render(spec, np.random.default_rng(seed), 64, defect)
        changed = np.abs(bad - good).max(axis=2) > 1e-9
        assert mask.any()
        assert not (changed & ~mask).any(), "a defect may only change pixels inside its mask"
        assert changed[mask].mean() > 0.5, "most masked pixels must actually change"


@pytest.mark.parametrize("product", sorted(PRODUCTS))
def test_combined_has_several_components_and_surface_is_small(product):
    spec = PRODUCTS[product]
    for seed in range(4):
        _, mask = render(spec, np.random.default_rng(seed), 96, "combined")
        _, n = ndimage.label(mask, structure=np.ones((3, 3)))
        assert n >= 2
    for name, d in spec.defects.items():
        if d.category == "surface":
            _, mask = render(spec, np.random.default_rng(0), 96, name)
            assert mask.mean() < 0.02, f"surface defect {name} must cover a small area"


def test_products_cover_both_backgrounds_and_all_categories():
    assert {p.background for p in PRODUCTS.values()} == {"with", "without"}
    for spec in PRODUCTS.values():
        assert {spec.category_of(d) for d in spec.defect_types} == {
            "structural",
            "surface",
            "contamination",
            "combined",
        }


def test_the_params_schema_knows_the_synthetic_products():
    """params.SYNTHETIC_PRODUCTS (a leaf module's constraint) names exactly the generator's products."""
    from iadbench.params import SYNTHETIC_PRODUCTS
    from iadbench.synth.products import PRODUCTS

    assert tuple(PRODUCTS) == SYNTHETIC_PRODUCTS
