"""Parity with anomalib: iadbench's maps are anomalib's own, except for the corrections iadbench makes on purpose.

For each default anomalib model, a cell trained by iadbench is loaded into the anomalib class built directly (not
through iadbench's registry) and scored by anomalib's own ``Engine.predict`` on anomalib's own ``PredictDataset``
reading the same image files. With the corrections off, iadbench's stored maps equal anomalib's to float16
rounding; with them on they differ, by exactly the corrections named in :data:`CORRECTIONS`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from iadbench.models.run import load_state
from iadbench.stages.predict import predict_cell
from iadbench.stages.train import train_cell
from tests.conftest import registry_params
from tests.models.probe import default_probe, write_probe

pytestmark = pytest.mark.slow(seconds=5)
PROJECT = Path(__file__).resolve().parents[2]
SIZE = 64
CORRECTIONS = {
    "stfpm": ["grid placement (bilinear, align_corners=False, per layer)"],
    "padim": ["grid placement (nearest layer concatenation; bilinear map upsampling)"],
    "cflow": ["grid placement (bilinear, align_corners=True)", "training-maxima normalisation (batch maxima)"],
    "patchcore": ["grid placement (bilinear layer concatenation; nearest map upsampling)"],
}


def _params(model: str) -> dict:
    params = registry_params()
    params["data"] = {"dataset": "probe", "products": ["plate"], "image_size": SIZE}
    params["train"] = {"seed": 0, "epochs": 1, "batch_size": 4, "num_workers": 0}
    params["model_options"]["cflow"]["fiber_batch_size"] = 16
    return params


def _anomalib_module(model: str, params: dict):
    """The anomalib class, built directly with iadbench's arguments (raw outputs, resize-only pre-processing)."""
    from anomalib import models

    backbone = params["backbone"]["name"]
    options = params["model_options"][model]
    cls = {"stfpm": models.Stfpm, "padim": models.Padim, "cflow": models.Cflow, "patchcore": models.Patchcore}[model]
    pre = {"center_crop_size": None} if model == "patchcore" else {}
    raw = {
        "pre_processor": cls.configure_pre_processor(image_size=(SIZE, SIZE), **pre),
        "post_processor": False, "evaluator": False, "visualizer": False,
    }  # fmt: skip
    layers = options.get("layers") or params["backbone"]["layers"]
    if model == "stfpm":  # its teacher hard-codes pretrained weights: build offline with random ones, then load
        import timm

        original = timm.create_model
        timm.create_model = lambda name, pretrained=False, **kw: original(name, pretrained=False, **kw)
        try:
            return cls(backbone=backbone, layers=layers, **raw)
        finally:
            timm.create_model = original
    extra = {k: v for k, v in options.items() if k not in ("layers", "epochs")}  # epochs: the Engine's, not the model's
    return cls(backbone=backbone, layers=layers, pre_trained=False, **extra, **raw)


def _anomalib_maps(model: str, params: dict, state_path: Path, images: Path) -> dict[str, np.ndarray]:
    from anomalib.data import ImageBatch, PredictDataset
    from anomalib.engine import Engine
    from torch.utils.data import DataLoader

    module = _anomalib_module(model, params)
    load_state(module, torch.load(state_path, map_location="cpu", weights_only=True))
    dataset = PredictDataset(path=images)
    loader = DataLoader(dataset, batch_size=params["train"]["batch_size"], collate_fn=ImageBatch.collate)
    with tempfile.TemporaryDirectory() as root:
        engine = Engine(accelerator="cpu", devices=1, logger=False, default_root_dir=root, enable_progress_bar=False)
        batches = engine.predict(module, dataloaders=loader)
    maps = {}
    for batch in batches:
        for path, anomaly_map in zip(batch.image_path, batch.anomaly_map, strict=True):
            maps[Path(path).stem] = anomaly_map.reshape(SIZE, SIZE).float().numpy()
    return maps


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("parity")
    write_probe(root, default_probe(SIZE), n_train=4)
    scored = root / "scored"  # anomalib's PredictDataset reads a folder: the validation and test images only
    scored.mkdir()
    for path in sorted((root / "images").glob("*.png")):
        if not path.name.startswith("train_"):
            shutil.copy2(path, scored / path.name)
    return root


@pytest.mark.parametrize("model", list(CORRECTIONS))
def test_iadbench_maps_are_anomalibs_own_except_for_the_named_corrections(probe, model, monkeypatch):
    monkeypatch.chdir(probe)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params = _params(model)

    train_cell(params, model, "plate", progress=False, corrections=False)
    predict_cell(params, model, "plate", progress=False, corrections=False)
    ours = np.load(f"data/maps/{model}/plate.npz")
    theirs = _anomalib_maps(model, params, Path(f"models/{model}/plate/model.pt"), probe / "scored")
    for image_id, stored in zip(ours["image_id"], ours["maps"], strict=True):
        reference = theirs[image_id.rsplit("/", 1)[1]]
        np.testing.assert_allclose(stored.astype(np.float32), reference, rtol=2e-3, atol=1e-5, err_msg=image_id)

    train_cell(params, model, "plate", progress=False)
    predict_cell(params, model, "plate", progress=False)
    corrected = np.load(f"data/maps/{model}/plate.npz")["maps"].astype(np.float32)
    reference = np.stack([theirs[i.rsplit("/", 1)[1]] for i in ours["image_id"]])
    assert not np.allclose(corrected, reference, rtol=1e-2), f"{model}: {CORRECTIONS[model]} changed nothing"
    # exactly the corrections: anomalib's own Engine.predict with iadbench's grid placement applied around it (the
    # receptive-field shifts the corrected cell measured) gives iadbench's corrected maps. CFLOW's second correction,
    # the training-maxima normalisation, is state anomalib's class has no place for: the corrected state holds
    # exactly that one tensor more.
    from iadbench.models.geometry import GridPlacement, parse_shifts

    state_path = Path(f"models/{model}/plate/model.pt")
    if len(CORRECTIONS[model]) > 1:
        extra = set(torch.load(state_path, map_location="cpu", weights_only=True))
        extra -= set(_anomalib_module(model, params).state_dict())
        assert extra == {"model.anomaly_map_generator.reference"}, extra
        return
    meta = json.loads(Path(f"models/{model}/plate/meta.json").read_text())
    with GridPlacement((SIZE, SIZE), parse_shifts(meta["receptive_field_shifts"])) as placement:
        placed = _anomalib_maps(model, params, state_path, probe / "scored")
    assert placement.placed > 0 and not placement.fallbacks
    placed = np.stack([placed[i.rsplit("/", 1)[1]] for i in ours["image_id"]])
    np.testing.assert_allclose(
        corrected, placed, rtol=2e-3, atol=1e-5, err_msg=f"{model}: not only {CORRECTIONS[model]}"
    )
