"""Every registered model that no other test trains: a tiny fit and predict through ``train_cell``/``predict_cell``
(the probe of :mod:`tests.models.probe`, 64 px, one epoch, random weights where the model would download
ImageNet weights), or, where it cannot run here, the message that says why.

The other ten models are trained by ``test_fidelity.py`` (alignment) and ``test_parity.py`` (anomalib parity).
"""

from __future__ import annotations

import numpy as np
import pytest

from iadbench.models.registry import MODELS, ModelConfig, ModelConfigError, build_model
from iadbench.models.weights import WeightsError
from iadbench.stages.predict import predict_cell
from iadbench.stages.train import train_cell
from tests.conftest import registry_params
from tests.models.probe import default_probe, write_probe

pytestmark = pytest.mark.slow(seconds=42)
SIZE = 64
# model -> option overrides for a tiny offline fit
RUNS = {
    "dfkde": {"n_pca_components": 4},
    "draem": {"anomaly_source_dir": "images"},
    "supersimplenet": {"weights": "none"},
}
SIZES = {"supersimplenet": 72}  # its smallest size (anomalib's Perlin noise fails on feature grids of <= 16 rows)
NOT_HERE = {  # model -> (options, what it says where it cannot run offline)
    "dsr": ({}, "dsr needs anomalib's pretrained VQ model"),
    "efficient_ad": ({}, "efficient_ad needs downloads that are not here"),
    "cfa": ({"weights": "none"}, "cfa builds a torchvision resnet18 that always loads ImageNet weights"),
    "csflow": ({"weights": "none"}, "csflow builds a torchvision efficientnet_b5 that always loads ImageNet weights"),
}
CONSTRUCTED_ONLY = {"uflow": {"weights": "none"}}  # runs offline, but at 448 px on two CaiT backbones: minutes on CPU


def _params(model: str, overrides: dict) -> dict:
    params = registry_params()
    params["data"] = {"dataset": "probe", "products": ["plate"], "image_size": SIZES.get(model, SIZE)}
    params["train"] = {"seed": 0, "epochs": 1, "batch_size": 4, "num_workers": 0}
    params["model_options"][model] = {**params["model_options"][model], **overrides}
    return params


def _cfg(model: str, size: int, options: dict | None = None) -> ModelConfig:
    return ModelConfig(model=model, image_size=size, backbone="tf_efficientnet_lite0",
                       layers=("blocks.1", "blocks.2", "blocks.4"), weights="none", options=options or {})  # fmt: skip


def test_every_model_is_run_somewhere():
    trained_elsewhere = {"ae", "stfpm", "padim", "cflow", "patchcore", "reverse_distillation", "fastflow", "dfm",
                         "fre", "ganomaly"}  # fmt: skip
    assert trained_elsewhere | set(RUNS) | set(NOT_HERE) | set(CONSTRUCTED_ONLY) == set(MODELS)


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    root = tmp_path_factory.mktemp("every_model")
    write_probe(root, default_probe(SIZE), n_train=8)  # 64 px files: each model resizes them to its input size
    return root


@pytest.mark.parametrize("model", list(RUNS))
def test_tiny_fit_and_predict(probe, model, monkeypatch):
    monkeypatch.chdir(probe)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params = _params(model, RUNS[model])
    meta = train_cell(params, model, "plate", progress=False)
    assert meta["model"] == model and (probe / f"models/{model}/plate/model.pt").is_file()
    predict_cell(params, model, "plate", progress=False)
    out = np.load(probe / f"data/maps/{model}/plate.npz")
    assert len(out["scores"]) == len(out["image_id"]) > 0 and np.isfinite(out["scores"]).all()
    assert np.ptp(out["scores"]) > 0, f"{model}: every image scored the same"
    if MODELS[model].pixel_maps:
        size = SIZES.get(model, SIZE)
        assert out["maps"].shape[1:] == (size, size) and np.isfinite(out["maps"].astype(np.float32)).all()


@pytest.mark.parametrize("model", list(NOT_HERE))
def test_a_model_that_cannot_run_here_says_why(model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    options, message = NOT_HERE[model]
    with pytest.raises((ModelConfigError, WeightsError), match=message):
        build_model(_cfg(model, SIZE if model != "efficient_ad" else 256, options))


def test_supersimplenet_refuses_a_size_its_noise_cannot_handle():
    with pytest.raises(ModelConfigError, match="supersimplenet does not accept data.image_size=64: .* at least 72 px"):
        build_model(_cfg("supersimplenet", 64, {"weights": "none"}))


@pytest.mark.parametrize("model", list(CONSTRUCTED_ONLY))
def test_constructed_offline(model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert build_model(_cfg(model, SIZE, CONSTRUCTED_ONLY[model])) is not None
