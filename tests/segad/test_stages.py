"""The SegAD BRF stage on hand-made features: what it writes, and the mistakes it refuses."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from iadbench.errors import IadbenchError
from iadbench.params import SegadParams
from iadbench.paths import segad_features_path as features_path
from iadbench.stages.segad import fit_cell
from tests.conftest import TINY


def _params(**segad):
    params = copy.deepcopy(TINY)
    params["segad"].update(detectors=["padim", "ae"], ensembles=["all"], **segad)
    return params


def _features(detector, ids, splits, labels, shift, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(len(ids), 16))
    features[:, 0] += shift * np.asarray(labels)
    path = features_path(detector, "nut")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, image_id=np.array(ids), split=np.array(splits), label=np.array(labels),
             kind=np.array(["x"] * len(ids)), features=features, scores=features[:, 0] + 0.5,
             names=np.array([f"{detector}/s{j // 4}/{j % 4}" for j in range(16)]))  # fmt: skip
    summary = {"n_segments": 4}
    path.with_suffix(".json").write_text(json.dumps(summary))


def _data(n=30):
    ids = [f"brf{i}" for i in range(2 * n)] + [f"val{i}" for i in range(10)] + [f"test{i}" for i in range(20)]
    splits = ["brf"] * (2 * n) + ["validation"] * 10 + ["test"] * 20
    labels = [0] * n + [1] * n + [0, 1] * 5 + [0, 1] * 10
    return ids, splits, labels


def test_setups_name_their_detectors():
    segad = SegadParams.from_params(_params())
    assert segad.detectors_of("padim+segad") == ["padim"]
    assert segad.detectors_of("all+segad") == ["padim", "ae"]
    with pytest.raises(IadbenchError, match=r"unknown SegAD setup 'cflow\+segad'; this run's setups"):
        segad.detectors_of("cflow+segad")


def test_fit_cell_writes_scores_only_for_validation_and_test(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ids, splits, labels = _data()
    _features("padim", ids, splits, labels, shift=4.0)
    _features("ae", ids, splits, labels, shift=0.0, seed=1)
    report = fit_cell(_params(), "all+segad", "nut")
    maps = np.load("data/maps/all+segad/nut.npz")
    assert sorted(maps.files) == ["image_id", "scores", "split"]
    assert maps["image_id"].tolist() == ids[60:] and set(maps["split"]) == {"validation", "test"}
    meta = json.loads(Path("models/all+segad/nut/meta.json").read_text())
    assert meta["n_features"] == 32 and meta["detectors"] == ["padim", "ae"] and not meta["constant_scores"]
    assert meta["brf_train_auroc"] > 0.95 and report["brf_train_auroc"] == meta["brf_train_auroc"]
    assert meta["top_features_by_gain"][0][0] == "padim/s0/0"  # the informative feature carries the most gain
    assert report["pixel_maps"] is False and report["image_score"] == "model"
    assert "seconds" not in Path("models/all+segad/nut/meta.json").read_text()  # timings: reports/resources only
    assert report["fit_seconds"] >= 0 and Path("reports/resources/segad/all+segad/nut.json").is_file()
    scores, y = maps["scores"], np.array(labels[60:]).astype(bool)
    assert scores[y].mean() > scores[~y].mean()


def test_fit_cell_refuses_leaks_and_mismatched_detectors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ids, splits, labels = _data()
    leaked = ids[:-1] + ["brf0"]  # a BRF image also in test
    _features("padim", leaked, splits, labels, shift=4.0)
    with pytest.raises(IadbenchError, match=r"padim\+segad/nut: image\(s\) both in the BRF training set and valid"):
        fit_cell(_params(), "padim+segad", "nut")
    _features("padim", ids, splits, labels, shift=4.0)
    _features("ae", ids[::-1], splits, labels, shift=0.0)
    with pytest.raises(IadbenchError, match="data/segad/ae/nut.npz: images differ from data/segad/padim/nut.npz"):
        fit_cell(_params(), "all+segad", "nut")
    features_path("ae", "nut").unlink()
    with pytest.raises(IadbenchError, match="data/segad/ae/nut.npz: SegAD features not found"):
        fit_cell(_params(), "ae+segad", "nut")


def test_detector_score_adds_one_column_per_detector(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ids, splits, labels = _data()
    _features("padim", ids, splits, labels, shift=4.0)
    _features("ae", ids, splits, labels, shift=0.0, seed=1)
    fit_cell(_params(detector_score=True), "all+segad", "nut")
    meta = json.loads(Path("models/all+segad/nut/meta.json").read_text())
    assert meta["n_features"] == 34 and meta["detector_score"] is True
