import pytest
import timm
import torch
import torch.nn.functional as F  # noqa: N812

from iadbench.models.geometry import PIXELS, Grid, GridPlacement, parse_shifts, place


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "efficientnet_lite0", "resnet18"])
@pytest.mark.parametrize("size", [256, 242])  # 242: odd intermediate sizes, where SAME padding changes side
def test_traced_grid_is_the_receptive_field_centre(name, size):
    """Independent reference: the midpoint of the input pixels a central cell depends on (gradient support)."""
    torch.manual_seed(0)
    net = timm.create_model(name, features_only=True, pretrained=False, out_indices=(1, 2)).double().eval()
    x = torch.rand(1, 3, size, size, dtype=torch.double, requires_grad=True)
    with GridPlacement((size, size)) as placement:
        features = net(x)
    for feature in features:
        n = feature.shape[-1]
        j = n // 2
        (gradient,) = torch.autograd.grad(feature[0, :, j, j].sum(), x, retain_graph=True)
        support = gradient[0].abs().sum(0) > 0
        rows = torch.nonzero(support.any(1)).flatten()
        cols = torch.nonzero(support.any(0)).flatten()
        assert rows.min() > 0 and rows.max() < size - 1, "receptive field cut by the border: pick a larger size"
        grid = placement.grid_of((n, n))
        assert grid is not None
        assert grid.offset[0] + grid.stride[0] * j == pytest.approx((rows.min() + rows.max()).item() / 2)
        assert grid.offset[1] + grid.stride[1] * j == pytest.approx((cols.min() + cols.max()).item() / 2)


def test_same_padding_puts_cells_stride_minus_one_further():
    net = timm.create_model("tf_efficientnet_lite0", features_only=True, pretrained=False).eval()
    with torch.no_grad(), GridPlacement((128, 128)) as placement:
        features = net(torch.zeros(1, 3, 128, 128))
    for feature, stride in zip(features, (2, 4, 8, 16, 32), strict=True):
        assert placement.grid_of(tuple(feature.shape[-2:])) == Grid((stride, stride), (stride - 1, stride - 1))


def test_place_reads_values_at_the_true_centres():
    # a coarse grid whose cells hold their own centre's coordinate: placing it must return each pixel's coordinate
    source = Grid((8.0, 8.0), (7.0, 3.0))
    rows = source.offset[0] + source.stride[0] * torch.arange(8, dtype=torch.float64)
    cols = source.offset[1] + source.stride[1] * torch.arange(8, dtype=torch.float64)
    values = torch.stack([rows[:, None].expand(8, 8), cols[None, :].expand(8, 8)])[None]
    out = place(values, source, PIXELS, (64, 64))
    inside = torch.arange(64, dtype=torch.float64)
    expected_rows = inside.clamp(rows[0], rows[-1])
    expected_cols = inside.clamp(cols[0], cols[-1])
    assert torch.allclose(out[0, 0, :, 5], expected_rows)
    assert torch.allclose(out[0, 1, 5, :], expected_cols)


def test_library_interpolation_is_replaced_only_between_known_grids():
    with GridPlacement((64, 64)) as placement:
        coarse = F.conv2d(torch.ones(1, 1, 64, 64), torch.ones(1, 1, 3, 3), stride=2, padding=1)  # 32: centres 2j
        up = F.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False)
        unknown = F.interpolate(torch.ones(1, 1, 5, 5), size=(64, 64), mode="bilinear")
    assert placement.grid_of((32, 32)) == Grid((2.0, 2.0), (0.0, 0.0))
    assert placement.placed == 1 and up.shape == (1, 1, 64, 64)
    assert unknown.shape == (1, 1, 64, 64) and sum(placement.fallbacks.values()) == 1


def test_two_geometries_for_one_size_are_never_guessed_between():
    with GridPlacement((64, 64)) as placement:
        F.conv2d(torch.ones(1, 1, 64, 64), torch.ones(1, 1, 3, 3), stride=2, padding=1)  # 32 px, centres 2j
        F.conv2d(F.pad(torch.ones(1, 1, 64, 64), (0, 1, 0, 1)), torch.ones(1, 1, 3, 3), stride=2)  # 32 px, 2j + 1
        F.interpolate(torch.ones(1, 1, 32, 32), size=(64, 64), mode="bilinear")
    assert placement.grid_of((32, 32)) is None and placement.placed == 0 and placement.fallbacks


def test_measured_shift_moves_the_source_grid():
    with GridPlacement((64, 64), parse_shifts({"32x32": [-3.0, 1.0]})) as placement:
        coarse = F.conv2d(torch.ones(1, 1, 64, 64), torch.ones(1, 1, 3, 3), stride=2, padding=1)
        F.avg_pool2d(input=coarse, kernel_size=2)  # keyword call (DFM's), and a head's pooling inherits the shift
    assert placement.effective_grid((32, 32)) == Grid((2.0, 2.0), (-3.0, 1.0))
    assert placement.effective_grid((16, 16)) == Grid((4.0, 4.0), (-2.0, 2.0))


def test_receptive_field_shifts_are_measured_once_per_extractor_weights_and_size(tmp_path, monkeypatch):
    """The cache returns the measured numbers; another size or another weight is measured again; ``off`` keeps none."""
    from anomalib.models import Padim

    from iadbench.models import geometry

    monkeypatch.setenv("IADBENCH_SHIFT_CACHE", str(tmp_path / "cache"))
    model = Padim(backbone="resnet18", layers=["layer1", "layer2"], pre_trained=False, n_features=10,
                  post_processor=False, evaluator=False, visualizer=False)  # fmt: skip
    measured = []
    real = geometry._measure_shifts

    def counting(*args):
        measured.append(args[1:])
        return real(*args)

    monkeypatch.setattr(geometry, "_measure_shifts", counting)
    first = geometry.receptive_field_shifts(model, 64, canvas=128)
    assert geometry.receptive_field_shifts(model, 64, canvas=128) == first and len(measured) == 1
    assert set(first) == {"16x16", "8x8"}
    geometry.receptive_field_shifts(model, 96, canvas=128)
    assert len(measured) == 2  # another size: measured
    with torch.no_grad():
        next(model.model.feature_extractor.parameters()).add_(0.5)
    geometry.receptive_field_shifts(model, 64, canvas=128)
    assert len(measured) == 3  # other weights: measured
    monkeypatch.setenv("IADBENCH_SHIFT_CACHE", "off")
    cached = len(list((tmp_path / "cache").glob("*.json")))
    assert geometry.receptive_field_shifts(model, 64, canvas=128) == geometry._measure_shifts(
        model.model.feature_extractor.feature_extractor, 64, 128, 0)  # fmt: skip
    assert len(list((tmp_path / "cache").glob("*.json"))) == cached == 3
