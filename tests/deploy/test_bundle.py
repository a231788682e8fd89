"""Export folders without a trained model: their checks, the preprocessing as data, the decisions, ``infer``'s bad
inputs, and ``export``'s refusals before any work (a tiny hand-made torch program stands in for a detector)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from iadbench.cli import main
from iadbench.data.images import model_input
from iadbench.deploy.bundle import (
    EXPORT_FORMAT,
    MANIFEST,
    BundleError,
    decide,
    package_version,
    prepare,
    preprocess_spec,
    read_bundle,
    sha256,
)
from iadbench.deploy.export import export_cell
from iadbench.errors import IadbenchError
from tests.conftest import TINY

SIZE = 16


class _Brightness(torch.nn.Module):
    """map = mean over channels, score = max of the map: a detector with a known answer."""

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        amap = image.mean(dim=1)
        return amap, amap.amax(dim=(1, 2))


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundle") / "export"
    root.mkdir()
    program = torch.export.export(_Brightness(), (torch.zeros(1, 3, SIZE, SIZE),), strict=False)
    torch.export.save(program, root / "model.pt2")
    (root / "preprocess.json").write_text(json.dumps(preprocess_spec(SIZE, [0.0] * 3, [1.0] * 3, [3])))
    thresholds = {"rule": "iou", "pixel": {"threshold": 0.5}, "image": {"threshold": 0.5}}
    (root / "thresholds.json").write_text(json.dumps(thresholds))
    files = {n: sha256(root / n) for n in ("model.pt2", "preprocess.json", "thresholds.json")}
    manifest = {"export_format": EXPORT_FORMAT, "iadbench_version": package_version(), "format": "torch",
                "model": "brightness", "product": "plate", "rule": "iou", "files": files}  # fmt: skip
    (root / MANIFEST).write_text(json.dumps(manifest))
    return root


def _copy(bundle_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle_dir, tmp_path / "copy"))


def _images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    bright = np.full((20, 30, 3), 230, np.uint8)
    bright[:, :15] = 20  # the left half dark: below 0.5
    Image.fromarray(bright).save(folder / "half.png")
    Image.fromarray(np.full((10, 10, 3), 20, np.uint8)).save(folder / "dark.png")
    return folder


def test_infer_writes_masks_at_the_image_size_scores_and_verdicts(bundle_dir, tmp_path):
    folder = _images(tmp_path)
    assert main(["infer", str(bundle_dir), str(folder), "--out", str(tmp_path / "out"), "--map"]) == 0
    lines = {Path(r["image"]).name: r for r in map(json.loads, (tmp_path / "out/predictions.jsonl").open())}
    assert lines["half.png"]["verdict"] == "anomalous" and lines["dark.png"]["verdict"] == "good"
    assert lines["half.png"]["score"] == pytest.approx(230 / 255, abs=1e-6)
    with Image.open(tmp_path / "out" / lines["half.png"]["mask"]) as mask:
        assert mask.size == (30, 20)
        pixels = np.asarray(mask)
    assert set(np.unique(pixels)) == {0, 255} and (pixels[:, :14] == 0).all() and (pixels[:, 16:] == 255).all()
    assert np.load(tmp_path / "out" / lines["dark.png"]["map"]).dtype == np.float16
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["scored"] == 2 and summary["anomalous"] == 1 and summary["failed"] == []


def test_unreadable_and_wrong_channel_images_are_skipped_listed_and_fail_the_run(bundle_dir, tmp_path, capsys):
    folder = _images(tmp_path)
    (folder / "broken.png").write_bytes(b"not a png")
    Image.fromarray(np.full((10, 10), 200, np.uint8)).save(folder / "grey.png")  # 1 channel; trained on 3
    assert main(["infer", str(bundle_dir), str(folder), "--out", str(tmp_path / "out")]) == 2
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    failed = {Path(f["image"]).name: f["error"] for f in summary["failed"]}
    assert set(failed) == {"broken.png", "grey.png"} and "1 channel(s)" in failed["grey.png"]
    assert summary["scored"] == 2
    err = capsys.readouterr().err
    assert "2 image(s) skipped" in err and "broken.png" in err and "summary.json" in err


def test_a_missing_input_path_is_an_error_not_a_skip(bundle_dir, tmp_path, capsys):
    assert main(["infer", str(bundle_dir), str(tmp_path / "nowhere.png"), "--out", str(tmp_path / "out")]) == 2
    assert "nowhere.png: no such file or folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / MANIFEST).unlink(), f"{MANIFEST}: missing"),
        (lambda d: (d / "model.pt2").unlink(), "model.pt2: missing"),
        (lambda d: (d / "thresholds.json").write_text("{}"), "thresholds.json: its sha256 differs"),
        (lambda d: _edit(d, iadbench_version="0.0.1"), "written by iadbench 0.0.1"),
        (lambda d: _edit(d, export_format=99), "export format 99"),
        (lambda d: _edit(d, format="tflite"), "unknown format 'tflite'"),
        (lambda d: (d / MANIFEST).write_text("{not json"), "not valid JSON"),
    ],
)
def test_a_damaged_or_foreign_export_folder_is_refused_naming_the_file(bundle_dir, tmp_path, damage, message):
    folder = _copy(bundle_dir, tmp_path)
    damage(folder)
    with pytest.raises(BundleError, match=message.replace("(", r"\(")):
        read_bundle(folder)


def _edit(folder: Path, **changes) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**manifest, **changes}))


def test_infer_on_a_folder_that_is_no_export_exits_2(tmp_path, capsys):
    assert main(["infer", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert MANIFEST in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["RGB", "L", "I;16"])
def test_prepare_is_the_benchmarks_model_input(tmp_path, mode):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65535, (37, 53), dtype=np.uint16))
    else:
        shape = (37, 53, 3) if mode == "RGB" else (37, 53)
        image = Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode)
    path = tmp_path / "x.png"
    image.save(path)
    x, size, channels = prepare(path, preprocess_spec(64, [0.0] * 3, [1.0] * 3, [3]))
    assert size == (53, 37) and channels == (3 if mode == "RGB" else 1)
    assert np.array_equal(x[0], model_input(path, 64).numpy())


def test_decide_compares_the_float16_map_and_the_float32_score_with_at_least():
    thresholds = {"pixel": {"threshold": 0.1}, "image": {"threshold": 2.0}}
    amap = np.array([[0.1, 0.09997, 0.2]], np.float32)  # 0.09997 rounds to float16 0.1 (≥ 0.1 in float64? no)
    mask, verdict = decide(amap, 2.0, thresholds)
    expected = np.float16(amap).astype(np.float64) >= 0.1
    assert np.array_equal(mask, expected) and verdict is True
    assert decide(amap, np.nextafter(np.float32(2.0), np.float32(0)), thresholds)[1] is False


def _workspace(tmp_path: Path, *, trained: bool = True, thresholds: dict | None = None) -> dict:
    params = {**TINY, "models": ["padim"]}
    cell = tmp_path / "models/padim/nut"
    if trained:
        cell.mkdir(parents=True)
        (cell / "model.pt").write_bytes(b"state")
        (cell / "meta.json").write_text("{}")
    if thresholds is not None:
        path = tmp_path / "reports/thresholds/padim/nut.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(thresholds))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return params


def _thresholds(rules: list[str]) -> dict:
    fitted = {r: {"rule": r, "threshold": 1.0} for r in rules}
    return {"model": "padim", "product": "nut", "dataset": "synthetic", "split_fingerprint": "x",
            "validation": {"images": 3, "good": 3, "anomalous": 0}, "image": fitted, "pixel": fitted,
            "image_notes": ["iou: not applicable (not fitted): no anomalous validation image"],
            "pixel_notes": ["iou: not applicable (not fitted): no anomalous validation image"]}  # fmt: skip


@pytest.mark.parametrize(
    ("model", "product", "rule", "fmt", "setup", "message"),
    [
        ("padin", "nut", "iou", "torch", {}, "unknown model 'padin'"),
        ("padim", "bolt", "iou", "torch", {}, "product 'bolt' is not a cell of data.products"),
        ("padim", "nut", "iou", "torch", {"trained": False}, "padim/nut is not trained yet"),
        ("padim", "nut", "iou", "tflite", {}, "--format 'tflite': unknown"),
        ("padim", "nut", "median", "torch", {"thresholds": _thresholds(["good_fpr"])}, "not a rule fitted"),
        ("padim", "nut", "iou", "torch", {"thresholds": _thresholds(["good_fpr"])}, "rule 'iou' was not fitted"),
        ("padim", "nut", "iou", "torch", {}, "thresholds of padim/nut were not fitted"),
    ],
)
def test_export_refuses_bad_requests_naming_what_is_wrong(tmp_path, monkeypatch, model, product, rule, fmt, setup,
                                                          message):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    params = _workspace(tmp_path, **setup)
    with pytest.raises(IadbenchError, match=message.replace("(", r"\(")) as caught:
        export_cell(params, model, product, rule, fmt, tmp_path / "out")
    assert not (tmp_path / "out").exists(), caught.value
    if "not fitted at" in message or "was not fitted" in message:
        assert "no anomalous validation image" in str(caught.value)


def test_the_params_schema_and_the_bundle_know_the_same_formats():
    from iadbench.deploy.bundle import FORMATS
    from iadbench.params import EXPORT_FORMATS

    assert EXPORT_FORMATS == FORMATS


def test_params_refuse_an_unknown_export_format_or_key():
    from iadbench.params import ExportParams, ParamsError

    with pytest.raises(ParamsError, match=r"export.cells\[0\].format must be one of"):
        ExportParams.from_params({"export": {"cells": [{"model": "padim", "product": "nut", "rule": "iou",
                                                        "format": "tflite"}]}})  # fmt: skip
    with pytest.raises(ParamsError, match=r"export.cells\[0\].modle: unknown key"):
        ExportParams.from_params({"export": {"cells": [{"modle": "padim", "product": "nut", "rule": "iou"}]}})


def test_a_model_the_exporter_cannot_trace_is_refused_with_the_reason(tmp_path, monkeypatch):
    """What a user sees for a model torch.export refuses (the default models all export: test_parity.py)."""
    from iadbench.deploy import export as export_module

    def refuse(*args, **kwargs):
        raise RuntimeError("Could not guard on data-dependent expression Eq(u0, 1)\nmore detail")

    monkeypatch.setattr("iadbench.deploy.graph.trace", refuse)
    monkeypatch.setattr(export_module, "_fitted", lambda *a: (None, {}))
    monkeypatch.setattr("iadbench.models.run.split_rows", lambda *a: _one_image(tmp_path))
    monkeypatch.setattr(export_module, "_train_channels", lambda product: [3])
    monkeypatch.setattr("iadbench.models.registry.build_model", lambda cfg: (torch.nn.Identity(), None, None, None))
    monkeypatch.setattr("iadbench.models.run.load_state", lambda *a: None)
    monkeypatch.setattr("torch.load", lambda *a, **k: {})
    monkeypatch.chdir(tmp_path)
    params = _workspace(tmp_path)
    (tmp_path / "reports/evaluate/padim").mkdir(parents=True)
    (tmp_path / "reports/evaluate/padim/nut.json").write_text("{}")
    with pytest.raises(IadbenchError, match=r"padim cannot be exported as any format .*: RuntimeError: Could not "
                       r"guard on data-dependent expression Eq\(u0, 1\)$"):  # fmt: skip
        export_cell(params, "padim", "nut", "iou", "onnx", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _one_image(root: Path):
    import pandas as pd

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "one.png")
    return pd.DataFrame({"image_path": [str(root / "one.png")]})
