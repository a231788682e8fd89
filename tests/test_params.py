"""SegAD's params: the paper's defaults load, and every bad value names its key."""

import copy
from pathlib import Path

import pytest

from iadbench.errors import ParamsError
from iadbench.params import SegadParams, evaluated_models, load_params
from tests.conftest import TINY


def _with(**segad):
    params = copy.deepcopy(TINY)
    params["segad"].update(segad)
    return params


def test_defaults_are_off_and_the_papers_brf():
    # the shipped params.yaml (an explicit check of the file users start from, wherever pytest runs)
    default = SegadParams.from_params(load_params(Path(__file__).resolve().parents[1] / "params.yaml"))
    assert not default.on and default.setups == ()
    assert dict(default.xgboost) == {
        "n_estimators": 10, "num_parallel_tree": 200, "learning_rate": 0.3, "objective": "binary:logitraw",
        "max_depth": 5, "colsample_bytree": 0.6, "colsample_bynode": 0.6, "subsample": 0.6, "reg_alpha": 1.0,
    }  # fmt: skip
    assert (default.brf_fraction, default.shots, default.segments) == (0.5, 0, "grid")
    assert SegadParams.from_params({"models": ["ae"]}) == SegadParams()  # no section: off


def test_setups_join_the_evaluated_models():
    params = _with(detectors=["padim", "ae"], ensembles=["all"])
    assert SegadParams.from_params(params).setups == ("padim+segad", "ae+segad", "all+segad")
    assert evaluated_models(params) == ["padim", "ae", "padim+segad", "ae+segad", "all+segad"]
    assert evaluated_models(TINY) == ["padim", "ae"]


@pytest.mark.parametrize(
    ("segad", "message"),
    [
        ({"detectors": ["cflow"]}, r"segad.detectors: \['cflow'\] not in models"),
        ({"detectors": ["padim", "padim"]}, "lists a detector twice"),
        ({"detectors": [], "ensembles": ["all"]}, "all\\+segad combines K > 1 detectors, but segad.detectors has 0"),
        ({"detectors": ["padim"], "ensembles": ["all"]}, "segad.detectors has 1"),
        ({"detectors": ["padim"], "ensembles": ["best"]}, r"segad.ensembles\[0\] must be one of 'all', got 'best'"),
        ({"brf_fraction": 1.0}, "segad.brf_fraction must be strictly between 0 and 1"),
        ({"shots": -1}, "segad.shots must be >= 0"),
        ({"synthetic_per_image": 0}, "segad.synthetic_per_image must be >= 1"),
        ({"segments": "superpixels"}, "segad.segments must be one of"),
        ({"grid": 0}, r"segad.grid must be in \[1, 16\]"),
        ({"xgboost": {**TINY["segad"]["xgboost"], "subsample": 1.5}}, r"segad.xgboost.subsample must be in \(0, 1\]"),
        ({"xgboost": {**TINY["segad"]["xgboost"], "learning_rate": 0}}, r"segad.xgboost.learning_rate must be in \(0"),
        ({"xgboost": {**TINY["segad"]["xgboost"], "n_estimators": 0}}, r"segad.xgboost.n_estimators must be in \[1"),
        ({"xgboost": {**TINY["segad"]["xgboost"], "reg_alpha": -1}}, r"segad.xgboost.reg_alpha must be in \[0"),
        (
            {"xgboost": {**TINY["segad"]["xgboost"], "max_depth": 2.5}},
            "segad.xgboost.max_depth must be an integer, got 2.5",
        ),
        ({"xgboost": {**TINY["segad"]["xgboost"], "objective": "reg:squarederror"}}, "segad.xgboost.objective"),
        (
            {"xgboost": {**TINY["segad"]["xgboost"], "eta": 0.1}},
            r"segad.xgboost.eta: unknown key; valid: \['colsample_bynode'",
        ),
        ({"xgboost": {"n_estimators": 10}}, "segad.xgboost.num_parallel_tree is missing"),
    ],
)
def test_bad_segad_params_name_the_key(segad, message):
    with pytest.raises(ParamsError, match=message):
        SegadParams.from_params(_with(**segad))


@pytest.mark.parametrize(
    "data, datasets, cells, qualified",
    [
        ({"datasets": ["synthetic"], "products": ["nut"]}, ("synthetic",), ("nut",), False),
        ({"dataset": "synthetic", "products": ["nut"]}, ("synthetic",), ("nut",), False),  # the older single form
        ({"datasets": ["synthetic"], "products": ["synthetic/nut"]}, ("synthetic",), ("synthetic/nut",), True),
        ({"datasets": ["a", "b"], "products": ["a/nut", "b/01"]}, ("a", "b"), ("a/nut", "b/01"), True),
    ],
)
def test_datasets_and_cells(data, datasets, cells, qualified):
    from iadbench.params import DataParams

    d = DataParams.from_params({"data": {**data, "image_size": 64}})
    assert (d.datasets, d.products, d.qualified) == (datasets, cells, qualified)
    assert d.dataset_of(cells[-1]) == datasets[-1]
    assert d.cell(datasets[0], "nut") == ("nut" if not qualified else f"{datasets[0]}/nut")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"datasets": ["a", "b"], "products": ["nut"]}, r"every product is written <dataset>/<product>; got \['nut'\]"),
        ({"datasets": ["a", "b"], "products": ["a/nut", "c/01"]}, r"'c/01' must be <dataset>/<product>"),
        ({"datasets": ["a", "b"], "products": ["a/nut"]}, r"data.datasets: \['b'\] have no product"),
        ({"datasets": ["a"], "dataset": "b", "products": []}, "both set and disagree"),
        ({"datasets": [], "products": []}, "data.datasets must be a non-empty list"),
        ({"datasets": ["a", "a"], "products": []}, "lists a dataset twice"),
        ({"datasets": ["all"], "products": []}, "'all' is reserved"),
        ({"products": ["nut"]}, "data.datasets is missing"),
    ],
)
def test_bad_datasets_name_the_key(data, message):
    from iadbench.params import DataParams

    with pytest.raises(ParamsError, match=message):
        DataParams.from_params({"data": {**data, "image_size": 64}})


# ---------------------------------------------------------------------------------------- the whole file's schema
SHIPPED = Path(__file__).resolve().parents[1] / "params.yaml"


def _file(tmp_path, **changes) -> Path:
    import yaml

    params = yaml.safe_load(SHIPPED.read_text())
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = params
        for parent in parents:
            node = node[parent]
        node[key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_the_shipped_file_passes_every_check():
    from iadbench.checks import problems

    assert problems(load_params(SHIPPED)) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"train__epoch": 5},
            r"params.yaml: train.epoch: unknown key; valid: \['batch_size', 'deterministic', 'epochs'",
        ),
        ({"tresholds": {"method": "pr"}}, r"params.yaml: tresholds: unknown section; valid: \['backbone', 'data'"),
        ({"models": "padim"}, r"params.yaml: models must be a list, got 'padim'"),
        ({"drift__max_per_imag": 1}, r"drift.max_per_imag: unknown key; valid: \['blur_sigma'"),
        ({"train__epochs": True}, r"train.epochs must be an integer, got True"),
        ({"evaluate__confidence": "0.95"}, r"evaluate.confidence must be a number, got '0.95'"),
        ({"data__image_size": 8}, r"data.image_size must be in \[32, 1024\], got 8"),
    ],
)
def test_a_bad_file_names_the_file_and_the_key(tmp_path, changes, message):
    with pytest.raises(ParamsError, match=message):
        load_params(_file(tmp_path, **changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model_options__padim": {"layers": None, "n_features": 100000}},
         r"model_options.padim.n_features must be <= 176 \(the channels of layers \['blocks.1', 'blocks.2', "
         r"'blocks.4'\]"),
        ({"model_options__patchcore": {"coreset_sampling_ratio": 0.0}},
         r"model_options.patchcore.coreset_sampling_ratio must be in \(0, 1\], got 0.0"),
        ({"model_options__padim": {"n_featurs": 10}}, r"model_options.padim has unknown option\(s\) \['n_featurs'\]"),
        ({"model_options__padimm": {}}, r"model_options: \['padimm'\] are not registered models"),
        ({"models": ["padim", "padimm"]}, r"models: \['padimm'\] are not registered"),
        ({"threshold__method": "best"},
         r"threshold.method must be one of \['roc', 'iou', 'pr', 'good_fpr', 'good_ksigma', 'good_max', "
         r"'good_quantile'\], got 'best'"),
        ({"threshold__good_fpr": 1.5}, r"threshold.good_fpr must be strictly between 0 and 1, got 1.5"),
        ({"threshold__good_k": 0.0}, r"threshold.good_k must be > 0, got 0.0"),
        ({"threshold__good_k": -3}, r"threshold.good_k must be > 0, got -3"),
        ({"threshold__good_quantile": 1.0}, r"threshold.good_quantile must be strictly between 0 and 1, got 1.0"),
        ({"threshold__good_factor": {"pixel": 0.0, "image": 1.0}}, r"threshold.good_factor.pixel must be > 0"),
        ({"threshold__anomalous_images": -1}, r"threshold.anomalous_images must be >= 0, got -1"),
        ({"threshold__anomalous_images": "few"}, r"threshold.anomalous_images must be one of 'all', got 'few'"),
    ],
)  # fmt: skip
def test_iadbench_check_names_what_a_model_would_refuse_late(tmp_path, changes, capsys, message):
    """What only the code behind a name knows is checked by `iadbench check` (the first stage), not by anomalib's
    traceback ten minutes into a fit.
    """
    import re

    from iadbench.cli import main

    path = _file(tmp_path, **changes)
    assert main(["--params", str(path), "check"]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert str(path) in err


def test_a_missing_good_only_budget_is_named(tmp_path, capsys):
    """threshold.good_fpr is required: the thresholds stages declare it, and DVC refuses a stage param missing from
    params.yaml, so `iadbench check` names it first."""
    from iadbench.cli import main

    path = _file(tmp_path, threshold={"method": "iou"})
    assert main(["--params", str(path), "check"]) == 2
    err = capsys.readouterr().err
    assert "threshold.good_fpr" in err and str(path) in err, err
