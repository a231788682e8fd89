import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from iadbench.cli import main
from iadbench.errors import IadbenchError
from iadbench.gates.maps import maps_gate
from iadbench.stages.predict import predict_cell
from iadbench.stages.train import train_cell
from tests.conftest import TINY, registry_params

FAMILIES = ["ae", "stfpm", "padim", "cflow", "patchcore"]


@pytest.fixture
def params(tiny_repo, monkeypatch) -> dict:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    params = registry_params()
    params["data"] = {**TINY["data"], "products": ["nut"], "image_size": 64}
    params["models"] = FAMILIES
    # CFLOW samples fiber_batch_size feature positions per step: 3 images x 4 x 4 positions at 64 px is 48
    params["model_options"]["cflow"] = {**params["model_options"]["cflow"], "fiber_batch_size": 16}
    params["train"] = {"seed": 0, "epochs": 1, "batch_size": 4, "num_workers": 0}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    for verb in (["--quiet", "manifest"], ["categories"], ["split"]):
        assert main(verb) == 0
    return params


def _split() -> pd.DataFrame:
    return pd.read_csv("data/assignment.csv", keep_default_na=False)


@pytest.mark.slow(seconds=19)
def test_every_default_family_trains_and_predicts_offline(params):
    split = _split()
    expected = sorted(split.loc[(split["product"] == "nut") & (split["split"] != "train"), "image_id"])
    params["model_options"]["ae"] = {**params["model_options"]["ae"], "epochs": 2}  # its own count beats train.epochs
    rules = {"ae": (2, "model_options.ae.epochs"), "stfpm": (1, "train.epochs"), "padim": (1, "one pass"),
             "cflow": (1, "train.epochs"), "patchcore": (1, "one pass")}  # fmt: skip
    for model in FAMILIES:
        meta = train_cell(params, model, "nut", progress=False)
        assert meta["n_train"] == 3 and (meta["epochs"], meta["epochs_rule"]) == rules[model], model
        report = predict_cell(params, model, "nut", progress=False)
        assert (report["epochs"], report["epochs_rule"]) == rules[model], model
        data = np.load(f"data/maps/{model}/nut.npz")
        assert list(data["image_id"]) == expected, model
        assert data["maps"].dtype == np.float16 and data["maps"].shape == (len(expected), 64, 64)
        assert np.isfinite(data["scores"]).all() and np.isfinite(data["maps"]).all()
        assert report["images_per_second"] > 0 and report["peak_rss_mb"] > 0
        assert "seconds" not in json.dumps(json.loads(Path(f"models/{model}/nut/meta.json").read_text()))
        curve = Path(f"reports/train/{model}/nut/plots/metrics/train_loss.tsv").read_text().splitlines()
        summary = json.loads(Path(f"reports/train/{model}/nut/metrics.json").read_text())
        assert curve[0] == "step\ttrain_loss" and summary["epochs"] == meta["epochs"], model
        if model in ("padim", "patchcore"):  # memory banks have no loss: the header only, no train_loss metric
            assert len(curve) == 1 and "train_loss" not in summary, model
        else:  # one point per epoch, the last one is the summary's
            assert len(curve) == 1 + meta["epochs"] and float(curve[-1].split("\t")[1]) == summary["train_loss"]
    stfpm = json.loads(Path("models/stfpm/nut/meta.json").read_text())
    assert stfpm["weights_source"] == "package" and len(stfpm["weights_sha256"]) == 64
    assert json.loads(Path("models/ae/nut/meta.json").read_text())["weights_source"] == "none"
    assert not Path("models/ae/nut/dvclive").exists()  # the curves live outside the cached model folder
    assert maps_gate(params, split).success


def test_padim_is_deterministic_and_the_gate_catches_bad_maps(params):
    from iadbench.models import registry, weights

    # cold caches, as in a fresh stage process: a first build must not shift the seeded stream of the second
    registry.feature_stages.cache_clear()
    weights._reference_shapes.cache_clear()
    params = {**params, "models": ["padim"]}
    train_cell(params, "padim", "nut", progress=False)
    predict_cell(params, "padim", "nut", progress=False)
    first = dict(np.load("data/maps/padim/nut.npz"))
    train_cell(params, "padim", "nut", progress=False)
    predict_cell(params, "padim", "nut", progress=False)
    second = dict(np.load("data/maps/padim/nut.npz"))
    assert np.array_equal(first["scores"], second["scores"]) and np.array_equal(first["maps"], second["maps"])
    assert maps_gate(params, _split()).success

    broken = dict(second)
    broken["maps"] = second["maps"].copy()
    broken["maps"][0, 3, 3] = np.nan
    keep = np.arange(len(broken["scores"])) != 1
    broken = {k: (v[keep] if k != "maps" else v[keep]) for k, v in broken.items()}
    np.savez("data/maps/padim/nut.npz", **broken)
    result = maps_gate(params, _split())
    rules = {v.rule for v in result.errors}
    assert "anomaly map is finite (no NaN/inf; NaN counts as +inf)" in rules
    assert "one prediction per validation/test image of the split" in rules
    assert all(v.file.startswith("data/maps/padim/nut.npz#nut/") for v in result.errors)


def test_product_with_empty_train_split(params):
    split = _split()
    split[~((split["product"] == "nut") & (split["split"] == "train"))].to_csv("data/assignment.csv", index=False)
    with pytest.raises(IadbenchError, match="product 'nut' has no train images"):
        train_cell(params, "padim", "nut", progress=False)
    with pytest.raises(IadbenchError, match=r"product 'bolt' not found; products: \['nut'"):
        train_cell(params, "padim", "bolt", progress=False)


def test_predict_without_a_trained_model(params):
    with pytest.raises(IadbenchError, match="models/padim/nut/model.pt: trained model not found"):
        predict_cell(params, "padim", "nut", progress=False)


def test_git_repository_without_commit_is_a_clear_error(tmp_path, monkeypatch):
    import subprocess

    from iadbench.models.live import loss_curve

    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q"], check=True)
    with pytest.raises(IadbenchError, match="no commit yet; DVCLive needs one"):
        loss_curve(tmp_path / "dvclive", has_loss=True)


def test_dfkde_with_too_few_train_images_is_a_clear_error(params):
    # its KDE stays unfitted below n_pca_components train images and only crashed later, at predict
    with pytest.raises(IadbenchError, match="dfkde needs at least 16 train images of nut, found 3"):
        train_cell(params, "dfkde", "nut", progress=False)


def test_misleading_anomalib_notice_is_filtered():
    import logging

    from iadbench.models.quiet import quiet_libraries

    quiet_libraries()
    quiet_libraries()  # idempotent: one filter, not one per call
    engine_logger = logging.getLogger("anomalib.engine.engine")
    assert len(engine_logger.filters) == 1
    notice = logging.LogRecord("anomalib.engine.engine", logging.WARNING, "", 0,
                               "ckpt_path is not provided. Model weights will not be loaded.", None, None)  # fmt: skip
    other = logging.LogRecord("anomalib.engine.engine", logging.WARNING, "", 0, "something else", None, None)
    assert not engine_logger.filter(notice) and engine_logger.filter(other)


def test_maps_beyond_float16_are_refused_not_stored_as_inf(params, monkeypatch):
    import iadbench.models.run as run

    train_cell(params, "padim", "nut", progress=False)
    monkeypatch.setattr(run, "FLOAT16_MAX", 1.0)  # PaDiM's Mahalanobis maps are far above 1
    with pytest.raises(IadbenchError, match=r"padim/nut: raw anomaly maps span \[.*\], beyond float16's"):
        predict_cell(params, "padim", "nut", progress=False)
    assert not Path("data/maps/padim/nut.npz").exists()


def test_predict_report_records_the_raw_range_and_the_placement(params):
    train_cell(params, "padim", "nut", progress=False)
    report = predict_cell(params, "padim", "nut", progress=False)
    low, high = report["raw_map_range"]
    assert 0 <= low < high < 65504
    assert report["grid_placement"]["placed"] > 0 and report["options"]["n_features"] == 100


def test_warnings_are_recorded_not_hidden_and_known_noise_is_dropped():
    import warnings

    from iadbench.models.registry import ModelConfig
    from iadbench.models.run import fidelity

    cfg = ModelConfig("ae", 64, "", (), "none")
    with fidelity(cfg) as record:
        for _ in range(3):
            warnings.warn("upsample_bilinear2d_backward does not have a deterministic implementation", stacklevel=1)
        warnings.warn("The dataloader does not have many workers which may be a bottleneck.", stacklevel=1)
    assert record["warnings"] == [{
        "category": "UserWarning",
        "message": "upsample_bilinear2d_backward does not have a deterministic implementation",
        "count": 3,
    }]  # fmt: skip
    assert record["grid_placement"] == {"placed": 0, "left_as_written": {}}


def test_early_stopping_keeps_the_best_validation_epoch(params):
    params["train"] = {**params["train"], "epochs": 4, "validation": "early_stopping", "patience": 1}
    meta = train_cell(params, "ae", "nut", progress=False)
    history = meta["val_image_auroc_history"]
    assert meta["validation"] == "early_stopping" and meta["patience"] == 1
    assert 1 <= meta["epochs_run"] == len(history) == meta["epochs"] <= 4
    best = max(history)
    assert meta["best_epoch"] == history.index(best) + 1 and meta["val_image_auroc_best"] == best
    if meta["epochs_run"] < 4:  # stopped: the epoch after the best did not improve
        assert meta["epochs_run"] == meta["best_epoch"] + 1
    # the kept weights are the best epoch's: scoring the validation images again gives the recorded AUROC
    from iadbench.metrics.counts import confusion_counts
    from iadbench.metrics.curves import auroc

    report = predict_cell(params, "ae", "nut", progress=False)
    data = np.load("data/maps/ae/nut.npz")
    split = _split().set_index("image_id")
    val = data["split"] == "validation"
    labels = (split.loc[data["image_id"][val], "label"] == "anomalous").to_numpy()
    assert auroc(confusion_counts(data["scores"][val], labels)) == pytest.approx(best, abs=1e-6)
    assert report["best_epoch"] == meta["best_epoch"]


def test_early_stopping_leaves_one_pass_models_alone(params):
    params["train"] = {**params["train"], "epochs": 3, "validation": "early_stopping", "patience": 1}
    meta = train_cell(params, "padim", "nut", progress=False)
    assert meta["early_stopping"] == "not applicable (one pass)" and meta["epochs"] == 1


def test_unified_trains_on_every_product(params):
    params["train"] = {**params["train"], "unified": True}
    meta = train_cell(params, "ae", "nut", progress=False)
    split = _split()
    assert meta["regime"] == "unified" and meta["train_products"] == ["nut", "tiles", "weave"]
    assert meta["n_train"] == int((split["split"] == "train").sum()) == 9


def test_drift_moves_test_images_and_their_masks_only(params):
    from iadbench.evaluation.cells import load_cell

    train_cell(params, "ae", "nut", progress=False)
    predict_cell(params, "ae", "nut", progress=False)
    clean = dict(np.load("data/maps/ae/nut.npz"))
    assert "drift" not in clean  # off by default: the file of before
    params["drift"] = {"transforms": ["rotate", "blur"], "max_per_image": 2, "seed": 0, "rotate_degrees": 20.0}
    report = predict_cell(params, "ae", "nut", progress=False)
    drifted = dict(np.load("data/maps/ae/nut.npz"))
    val, test = drifted["split"] == "validation", drifted["split"] == "test"
    assert (drifted["drift"][val] == "").all() and (drifted["drift"][test] != "").all()
    assert np.array_equal(drifted["maps"][val], clean["maps"][val])  # thresholds stay fitted on clean images
    assert not np.array_equal(drifted["maps"][test], clean["maps"][test])
    assert report["drift"]["drifted_images"] == int(test.sum())
    from iadbench.evaluation.cells import read_split_with_masks

    cell = load_cell("ae", "nut", read_split_with_masks(), "test")
    rotated = [i for i, p in enumerate(cell.plans) if '"rotate"' in p]
    assert rotated and any(cell.masks[i].any() for i in rotated)
    from iadbench.evaluation.cells import load_mask

    moved = [i for i in rotated if not np.array_equal(cell.masks[i], load_mask(cell.rows["mask_path"].iloc[i], 64))]
    assert moved, "a rotated anomalous image's mask must move with it"
    again = predict_cell(params, "ae", "nut", progress=False)
    assert again["drift"] == report["drift"]
    assert np.array_equal(np.load("data/maps/ae/nut.npz")["maps"], drifted["maps"])  # byte-identical rerun
