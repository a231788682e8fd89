"""Exported detectors reproduce the benchmark: every default model, exported in every format that installs here,
run by ``iadbench infer`` on the product's test images, against the pipeline's own maps, verdicts and masks.

The tiny synthetic configuration (48 px images, 64 px maps), every default model trained through the real verbs.
What "reproduce" means, measured (iadbench.deploy.graph): the torch program returns exactly what the eager module
returns at batch 1 (checked at export on a validation image: difference 0). The predict stage ran batches, and CPU
kernels round differently per batch size; ONNX Runtime and OpenVINO run other kernels again (fused, reordered). So a
map may differ from the stored one by one float16 step plus ``CONVERSION_TOLERANCE`` of the cell's map range
(measured: ~2.5e-4 of the range for the autoencoder, whose map is a difference of near-equal values, and for CFLOW,
whose map exponentiates log-likelihoods of magnitude ~1e3; ≤ 1e-6 for the others), and a verdict or a mask pixel
may differ only where the stored value lies within that band of the threshold. Everything else must be equal.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from iadbench.cli import main
from iadbench.deploy.bundle import FORMATS, sha256
from iadbench.deploy.export import CONVERSION_TOLERANCE
from tests.conftest import TINY, registry_params, run_in

pytestmark = pytest.mark.slow(seconds=129)
MODELS = ("ae", "stfpm", "padim", "cflow", "patchcore")  # params.yaml's default models
RULE = "iou"


@pytest.fixture(scope="module")
def built(tiny_dataset_template, tmp_path_factory) -> Path:
    """Every default model trained, predicted, thresholded and evaluated on the tiny nut."""
    root = tmp_path_factory.mktemp("deploy") / "repo"
    shutil.copytree(tiny_dataset_template, root)
    options = registry_params()["model_options"]
    cflow = {**options["cflow"], "fiber_batch_size": 16}
    params = {**TINY, "models": list(MODELS), "model_options": {**options, **TINY["model_options"], "cflow": cflow}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("HF_HUB_OFFLINE", "1")
        for verb in (["--quiet", "manifest"], ["categories"], ["split"]):
            assert main(verb) == 0, verb
        for model in MODELS:
            for verb in ("train", "predict", "thresholds", "evaluate"):
                assert main([verb, "--model", model, "--product", "nut"]) == 0, (verb, model)
    return root


def _formats() -> list[str]:
    """torch always; onnx and openvino where their packages import (each is in requirements.lock)."""
    out = ["torch"]
    for fmt, module in (("onnx", "onnxruntime"), ("openvino", "openvino")):
        try:
            __import__(module)
            out.append(fmt)
        except ImportError:
            pass
    return out


def _step(values: np.ndarray) -> np.ndarray:
    """One float16 step at each value (the spacing of float16 at its magnitude)."""
    return np.spacing(np.abs(values).astype(np.float16)).astype(np.float64)


@pytest.mark.parametrize("model", MODELS)
def test_export_and_infer_reproduce_the_pipeline(built, model, monkeypatch, tmp_path):
    monkeypatch.chdir(built)
    assert set(_formats()) >= {"torch", "onnx"}
    stored = np.load(f"data/maps/{model}/nut.npz")
    rows = pd.read_csv(f"reports/evaluate/{model}/nut.csv")
    fitted = json.loads(Path(f"reports/thresholds/{model}/nut.json").read_text())
    t_pix, t_img = fitted["pixel"][RULE]["threshold"], fitted["image"][RULE]["threshold"]
    index = {image_id: k for k, image_id in enumerate(stored["image_id"])}
    split = pd.read_csv("data/split.csv", keep_default_na=False).set_index("image_id")
    span = float(stored["maps"].max()) - float(stored["maps"].min())
    for fmt in _formats():
        extra = CONVERSION_TOLERANCE * span
        out, result = tmp_path / f"export-{fmt}", tmp_path / f"infer-{fmt}"
        assert main(["export", "--model", model, "--product", "nut", "--rule", RULE, "--format", fmt,
                     "--out", str(out), "--no-git"]) == 0  # fmt: skip
        paths = [str(split.loc[i, "image_path"]) for i in rows["image_id"]]
        assert main(["infer", str(out), *paths, "--out", str(result), "--map"]) == 0
        lines = [json.loads(line) for line in (result / "predictions.jsonl").read_text().splitlines()]
        assert [line["image"] for line in lines] == paths
        for image_id, line, expected in zip(rows["image_id"], lines, rows[f"img_{RULE}_pred"], strict=True):
            k = index[image_id]
            ours = np.load(result / line["map"])
            theirs = stored["maps"][k]
            gap = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
            band = _step(np.maximum(np.abs(theirs), np.abs(ours))) + extra + 1e-12
            assert (gap <= band).all(), f"{fmt} {image_id}: {gap.max()} beyond one float16 step + {extra}"
            score = float(stored["scores"][k])
            assert abs(line["score"] - score) <= 1e-3 * max(1.0, abs(score)) + extra, (fmt, image_id)
            if abs(score - t_img) > 1e-3 * max(1.0, abs(score)) + extra:
                assert (line["verdict"] == "anomalous") == bool(expected), (fmt, image_id)
            ours_mask = ours.astype(np.float64) >= t_pix
            theirs_mask = theirs.astype(np.float64) >= t_pix
            near = np.abs(theirs.astype(np.float64) - t_pix) <= band
            assert (ours_mask == theirs_mask)[~near].all(), (fmt, image_id)
            with Image.open(result / line["mask"]) as png:
                assert png.size == (line["width"], line["height"]) and png.mode == "L"
                expected_png = Image.fromarray(ours_mask.astype(np.uint8) * 255).resize(
                    png.size, Image.Resampling.NEAREST
                )
                assert np.array_equal(np.asarray(png), np.asarray(expected_png))
        card = json.loads((out / "card.json").read_text())
        assert card["model"] == model and card["rule"] == RULE and card["data_version"]["git_rev"] is None
        assert card["test"]["image"]["at_rule"]["threshold"] == pytest.approx(t_img)
        if fmt == "torch":  # the same kernels as the eager module at batch 1
            assert card["export_check"]["max_abs_map_difference"] == 0.0
    assert set(FORMATS) >= set(_formats())
    if model == "padim":  # the same export from a fresh process: byte-identical files (no process history inside)
        again = tmp_path / "again"
        cmd = [sys.executable, "-m", "iadbench", "export", "--model", model, "--product", "nut", "--rule", RULE,
               "--format", "torch", "--out", str(again), "--no-git"]  # fmt: skip
        run_in(cmd, built, {**os.environ, "IADBENCH_WARM": "0", "HF_HUB_OFFLINE": "1"})  # fmt: skip
        first = tmp_path / "export-torch"
        assert {f.name: sha256(f) for f in again.iterdir()} == {f.name: sha256(f) for f in first.iterdir()}
    assert os.path.isfile(f"models/{model}/nut/model.pt")  # nothing of the workspace was moved or removed
