import pytest
import timm
import torch

from iadbench.models.weights import WeightsError, inject, package_weights_file, resolve_weights


@pytest.fixture(scope="module")
def package():
    return resolve_weights("tf_efficientnet_lite0", "package")


def test_package_weights_load_tensor_for_tensor(package):
    raw = torch.load(package_weights_file(), map_location="cpu", weights_only=True)
    assert package.source == "package" and len(package.sha256) == 64
    assert len(package.state_dict) == len(raw) == 296
    for (key, ours), theirs in zip(package.state_dict.items(), raw.values(), strict=True):
        assert torch.equal(ours, theirs), key
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(package.state_dict)  # strict: every key and shape of timm's model


def test_inject_routes_pretrained_requests_to_the_package(package, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with inject(package, "padim", "backbone.weights") as requested:
        features = timm.create_model("tf_efficientnet_lite0", pretrained=True, features_only=True)
        plain = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    assert requested == ["tf_efficientnet_lite0"]
    assert torch.equal(features.state_dict()["conv_stem.weight"], package.state_dict["conv_stem.weight"])
    assert not torch.equal(plain.state_dict()["conv_stem.weight"], package.state_dict["conv_stem.weight"])
    assert timm.create_model.__module__.startswith("timm"), "the patch must be undone"


def test_other_architecture_offline_says_what_to_download(package):
    expected = r"resnet18, which are not available offline.*set model_options.x.weights"
    with pytest.raises(WeightsError, match=expected), inject(package, "x", "model_options.x.weights"):
        timm.create_model("resnet18", pretrained=True)


def test_file_weights_with_timm_keys_and_in_order(package, tmp_path):
    by_key = tmp_path / "timm_keys.pth"
    torch.save(package.state_dict, by_key)
    loaded = resolve_weights("tf_efficientnet_lite0", str(by_key))
    assert loaded.source == "file" and loaded.path == str(by_key)
    assert all(torch.equal(loaded.state_dict[k], v) for k, v in package.state_dict.items())
    from safetensors.torch import save_file

    st = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in package.state_dict.items()}, str(st))
    assert resolve_weights("tf_efficientnet_lite0", str(st)).source == "file"


def test_none_and_hub(monkeypatch):
    assert resolve_weights("resnet18", "none").state_dict is None
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="HF_HUB_OFFLINE=1"):
        resolve_weights("resnet18", "hub")


def test_bad_weight_files(tmp_path, package):
    with pytest.raises(WeightsError, match="weights file not found"):
        resolve_weights("tf_efficientnet_lite0", str(tmp_path / "missing.pth"))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00\x01 not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable weights file"):
        resolve_weights("tf_efficientnet_lite0", str(corrupt))
    other = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), other)
    with pytest.raises(WeightsError, match="weights for another architecture"):
        resolve_weights("tf_efficientnet_lite0", str(other))
    with pytest.raises(WeightsError, match="ships weights for tf_efficientnet_lite0 only"):
        resolve_weights("resnet18", "package")


def test_package_weights_in_the_symmetric_padding_twin_are_refused():
    # same 296 tensors fit timm's efficientnet_lite0, but they were trained for TF "SAME" padding: every feature grid
    # would move (up to stride - 1 px) and separate defects worse, with no error anywhere
    with pytest.raises(WeightsError, match=r"belong in timm's tf_efficientnet_lite0, not efficientnet_lite0"):
        resolve_weights("efficientnet_lite0", "package")


def test_the_package_file_is_tensorflow_ported():
    # the lead of the fidelity issue, checked: TF-port key names, and a stride-2 kernel whose weight sits off-centre
    raw = torch.load(package_weights_file(), map_location="cpu", weights_only=True)
    assert next(iter(raw)).startswith("_conv_stem")
    assert any(key.startswith("_blocks.") for key in raw)


def test_pickled_objects_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, path)
    with pytest.raises(WeightsError, match="not a readable weights file"):
        resolve_weights("tf_efficientnet_lite0", str(path))


def test_torchvision_builders_are_routed_too(package, tmp_path):
    import torchvision

    resnet = timm.create_model("resnet18", pretrained=False).state_dict()  # timm and torchvision share its keys
    path = tmp_path / "resnet18.pth"
    torch.save(resnet, path)
    weights = resolve_weights("resnet18", str(path))
    with inject(weights, "cfa", "model_options.cfa.weights") as requested:
        model = torchvision.models.resnet18(weights=torchvision.models.ResNet18_Weights.DEFAULT)
    assert requested == ["torchvision:resnet18"]
    assert torch.equal(model.state_dict()["conv1.weight"], resnet["conv1.weight"])
    none = resolve_weights("resnet18", "none")
    expected = "builds a torchvision efficientnet_b5 that always loads ImageNet weights"
    with pytest.raises(WeightsError, match=expected), inject(none, "csflow", "model_options.csflow.weights"):
        torchvision.models.efficientnet_b5(weights=torchvision.models.EfficientNet_B5_Weights.IMAGENET1K_V1)
