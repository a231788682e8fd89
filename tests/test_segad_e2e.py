"""SegAD through the whole DAG with DVC on the tiny synthetic configuration: ``padim+segad`` and ``ae+segad``
(one-class, grid segments) and ``all+segad`` from the split to the report; then a BRF param that must rerun the
SegAD stages only, and a bad shots value that must stop the split with the product named.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import TINY, make_repo, tree_digest
from tests.conftest import run_in as _run
from tests.test_pipeline_e2e import _stages_run

pytestmark = pytest.mark.slow(seconds=97)
SETUPS = ("padim+segad", "ae+segad", "all+segad")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    params = copy.deepcopy(TINY)
    params["synthesize"]["n_train"] = 16  # 8 BRF images (+ 8 disturbed copies) and 8 for the detectors
    params["segad"].update(detectors=["padim", "ae"], ensembles=["all"])
    return make_repo(tmp_path_factory.mktemp("segad") / "iadbench", params)


@pytest.fixture(scope="module")
def first_build(repo):
    """The first `dvc repro`: every test depends on it, so each passes when run alone."""
    root, env = repo
    return _run(["dvc", "repro"], root, env)


def test_repro_runs_segad_through_the_report(repo, first_build):
    root, env = repo
    out = first_build
    ran = _stages_run(out.stdout)
    expected = {"segad_features@padim-nut", "segad_features@ae-nut", "segad@padim-nut", "segad@ae-nut",
                "segad_all@all-nut", "thresholds_segad@padim-nut", "evaluate_segad_all@all-nut", "report"}  # fmt: skip
    assert expected <= ran
    split = pd.read_csv(root / "data/split.csv")
    split = split[split["product"] == "nut"]
    brf_ids = set(split.loc[split["split"] == "brf", "image_id"])
    assert len(brf_ids) == 8 and (split["split"] == "train").sum() == 8
    assert json.loads((root / "models/padim/nut/meta.json").read_text())["n_train"] == 8  # the reduced train set
    for setup in SETUPS:
        maps = np.load(root / f"data/maps/{setup}/nut.npz")
        assert "maps" not in maps.files  # image scores only
        held_out = set(split.loc[split["split"].isin(["validation", "test"]), "image_id"])
        assert set(maps["image_id"]) == held_out and not held_out & brf_ids
        assert (root / f"models/{setup}/nut/brf.json").is_file()
        predict = json.loads((root / f"reports/predict/{setup}/nut.json").read_text())
        assert predict["mode"] == "one-class" and predict["n_synthetic"] == 8 and predict["n_brf_good"] == 8
    features = np.load(root / "data/segad/padim/nut.npz")
    assert features["features"].shape[1] == 4 * 4  # L = 4 grid cells x 4 statistics
    assert json.loads((root / "models/all+segad/nut/meta.json").read_text())["n_features"] == 2 * 16
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert set(SETUPS) <= set(metrics) and metrics["padim+segad"]["pixel_aupro"] is None
    # the stored SegAD scores are a BRF refit on the stored features: XGBoost directly, with the recorded settings
    from xgboost import XGBClassifier

    meta = json.loads((root / "models/padim+segad/nut/meta.json").read_text())
    brf_part = features["split"] == "brf"
    refit = XGBClassifier(
        **meta["xgboost"],
        random_state=meta["seed"],
        scale_pos_weight=meta["scale_pos_weight"],
        tree_method="hist",
        n_jobs=1,
    ).fit(features["features"][brf_part], features["label"][brf_part])
    stored = np.load(root / "data/maps/padim+segad/nut.npz")
    assert np.array_equal(stored["image_id"], features["image_id"][~brf_part])
    margins = refit.predict(features["features"][~brf_part], output_margin=True)
    np.testing.assert_allclose(stored["scores"], margins.astype(np.float32), rtol=1e-6, atol=1e-6)
    assert metrics["padim+segad"]["image_auroc"] == pytest.approx(
        json.loads((root / "reports/evaluate/padim+segad/nut.json").read_text())["image"]["auroc"]
    )
    report = (root / "reports/report.md").read_text()
    assert "## SegAD — detector vs detector + SegAD" in report and "| all+segad | padim, ae (best single:" in report
    setup = json.loads((root / "reports/evaluate/padim+segad/nut.json").read_text())
    assert setup["training"] == {}  # its predict record counts XGBoost rounds as epochs: not a training length
    training = report.split("## Training length (epochs per model)")[1].split("\n## ")[0]  # SegAD setups: no epochs
    assert "| padim | 1 | one pass | 1 |" in training and "| ae | 1 | train.epochs | 200 |" in training
    assert "+segad" not in training and "Under-trained: ae (1 of 200)" in training
    assert json.loads((root / "reports/gates/maps.json").read_text())["success"]
    costs = json.loads((root / "reports/costs.json").read_text())  # what SegAD adds, kept out of the report
    assert costs["padim+segad"]["feature_seconds"] > 0 and costs["all+segad"]["fit_seconds"] > 0
    assert "| padim+segad |" in (root / "reports/costs.md").read_text()


def test_a_brf_param_reruns_segad_only(repo, first_build):
    root, env = repo
    _run(["git", "checkout", "--", "params.yaml"], root, env)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["segad"]["xgboost"]["max_depth"] = 3
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = _stages_run(_run(["dvc", "repro"], root, env).stdout)
    assert {"segad@padim-nut", "segad@ae-nut", "segad_all@all-nut"} <= ran
    assert not {s for s in ran if s.startswith(("train@", "predict@", "segad_features@", "split"))}, ran


def test_too_many_shots_stop_the_split_naming_the_product(repo, first_build):
    root, env = repo
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["segad"]["shots"] = 5  # nut has 6 anomalous images; 2 must stay for validation and test
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = tree_digest(root / "data/raw")
    proc = _run(["dvc", "repro"], root, env, check=False)
    assert proc.returncode != 0
    assert "segad.shots takes anomalous test images out of validation and test" in proc.stderr + proc.stdout
    assert "product nut: 5 shot(s) asked" in proc.stderr + proc.stdout
    assert tree_digest(root / "data/raw") == before
