"""Fidelity of every registered model that runs offline: maps aligned with the image, independent of the batch.

One tiny fit per (model, size) on the probe of :mod:`tests.models.probe` (plain plates; test images with one
bright square each at a known position), through the real ``train_cell`` / ``predict_cell``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from iadbench.models.weights import package_weights_file
from iadbench.stages.predict import predict_cell
from iadbench.stages.train import train_cell
from tests.conftest import registry_params
from tests.models.probe import default_probe, locate, write_probe

pytestmark = pytest.mark.slow(seconds=100)
PROJECT = Path(__file__).resolve().parents[2]
# model -> (epochs, option overrides). Maps whose cells are too coarse for a 1/16-size square (DFM: 2x2 cells at
# 128 px, FRE: 4x4) are checked for batch independence here and for placement in test_geometry.py.
ALIGNED = {
    "ae": (1, {}),
    "stfpm": (20, {}),  # its student must learn the plate before its map means anything
    "padim": (1, {}),
    "cflow": (2, {"fiber_batch_size": 16}),
    "patchcore": (1, {}),
    "reverse_distillation": (2, {"weights": "none"}),
    "fastflow": (1, {"weights": "none"}),
}
SCORED_ONLY = {"dfm": (1, {}), "fre": (1, {}), "ganomaly": (1, {})}
TOLERANCE_PX = 2.0  # mean offset over the five squares, per axis (measured figures: docs/fidelity.md)


def _params(size: int, model: str, epochs: int, overrides: dict, batch_size: int = 4) -> dict:
    project = registry_params()
    options = {**project["model_options"][model], **overrides}
    return {
        **project,
        "data": {"dataset": "probe", "products": ["plate"], "image_size": size},
        "train": {"seed": 0, "epochs": epochs, "batch_size": batch_size, "num_workers": 0},
        "model_options": {**project["model_options"], model: options},
    }


def _cells(root: Path, size: int, models: dict) -> dict[str, np.ndarray]:
    previous = os.getcwd()
    os.chdir(root)
    try:
        probe = default_probe(size)
        write_probe(root, probe)
        offsets = {model: locate(_params(size, model, *setting), model, probe) for model, setting in models.items()}
        return {model: found for model, found in offsets.items() if found is not None}
    finally:
        os.chdir(previous)


@pytest.fixture(scope="module")
def probe_128(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("probe128")
    with pytest.MonkeyPatch.context() as patch:  # offline for the fits, and nothing left in os.environ afterwards
        patch.setenv("HF_HUB_OFFLINE", "1")
        return root, _cells(root, 128, {**ALIGNED, **SCORED_ONLY})


@pytest.mark.parametrize("model", list(ALIGNED))
def test_map_peaks_on_the_square_at_128(probe_128, model):
    offsets = probe_128[1][model]
    assert np.isfinite(offsets).all(), f"{model}: flat map around a square"
    mean = offsets.mean(axis=0)
    assert np.abs(mean).max() <= TOLERANCE_PX, f"{model} at 128 px: mean peak offset (row, col) {mean.round(2)}"


def test_map_peaks_on_the_square_at_256(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    chosen = {m: ALIGNED[m] for m in ("ae", "padim", "cflow", "patchcore", "fastflow")}
    for model, offsets in _cells(tmp_path, 256, chosen).items():
        mean = offsets.mean(axis=0)
        assert np.abs(mean).max() <= TOLERANCE_PX, f"{model} at 256 px: mean peak offset (row, col) {mean.round(2)}"


def test_cells_record_options_shifts_and_warnings(probe_128):
    root = probe_128[0]
    padim = json.loads((root / "models/padim/plate/meta.json").read_text())
    assert padim["options"] == {"layers": None, "n_features": 100}  # effective: declared defaults filled in
    assert padim["corrections"] is True and isinstance(padim["warnings"], list)
    assert padim["grid_placement"]["placed"] > 0 and not padim["grid_placement"]["left_as_written"]
    assert set(padim["receptive_field_shifts"]) == {"32x32", "16x16", "8x8"}
    cflow = json.loads((root / "models/cflow/plate/meta.json").read_text())
    assert len(cflow["cflow_reference_loglik"]) == 2 and all(np.isfinite(cflow["cflow_reference_loglik"]))
    assert json.loads((root / "models/ae/plate/meta.json").read_text())["receptive_field_shifts"] == {}


@pytest.mark.parametrize("model", [*ALIGNED, *SCORED_ONLY])
def test_maps_and_scores_do_not_depend_on_the_batch(probe_128, model):
    root = probe_128[0]
    epochs, overrides = {**ALIGNED, **SCORED_ONLY}[model]
    previous = os.getcwd()
    os.chdir(root)
    try:
        outputs = []
        for batch_size in (1, 5):
            predict_cell(_params(128, model, epochs, overrides, batch_size), model, "plate", progress=False)
            outputs.append(dict(np.load(f"data/maps/{model}/plate.npz")))
    finally:
        os.chdir(previous)
    one, many = outputs
    np.testing.assert_allclose(one["scores"], many["scores"], rtol=2e-3, atol=1e-5, err_msg=model)
    if "maps" in one:  # float16 storage: equal within its rounding (relative 2^-10)
        np.testing.assert_allclose(
            one["maps"].astype(np.float32), many["maps"].astype(np.float32), rtol=2e-3, atol=1e-4, err_msg=model
        )


def test_anomalib_cflow_and_todays_alignment_fail_the_same_probes(tmp_path, monkeypatch):
    """The two defects, reproduced with the corrections off (anomalib's own outputs): the probes can fail."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    probe = default_probe(128)
    write_probe(tmp_path, probe)
    params = _params(128, "padim", 1, {})
    params["backbone"] = {**params["backbone"], "name": "efficientnet_lite0", "weights": str(package_weights_file())}
    assert locate(params, "padim", probe, corrections=False).mean(axis=0).min() > 5  # +10 px down-right

    scores = []
    for batch_size in (1, 5):
        cflow = _params(128, "cflow", 1, {"fiber_batch_size": 16}, batch_size)
        if batch_size == 1:
            train_cell(cflow, "cflow", "plate", progress=False, corrections=False)
        predict_cell(cflow, "cflow", "plate", progress=False, corrections=False)
        scores.append(np.load("data/maps/cflow/plate.npz")["scores"])
    assert not np.allclose(scores[0], scores[1], rtol=1e-2)  # anomalib normalises by the batch maximum
