"""SegAD's boosted random forest: the paper's settings reach XGBoost, and it learns a separable problem."""

import numpy as np
import pytest

from iadbench.errors import IadbenchError
from iadbench.params import SegadParams
from iadbench.segad import brf
from tests.conftest import TINY


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n // 2)
    features = rng.normal(size=(n, 8))
    features[:, 3] += 3.0 * labels  # one informative feature
    return features, labels


def test_settings_reach_the_booster():
    xgb = dict(SegadParams.from_params(TINY).xgboost)
    features, labels = _data()
    model = brf.fit(features, labels, xgb, seed=0, where="t")
    config = brf.booster_config(model)
    learner = config["learner"]
    train = learner["gradient_booster"]["gbtree_train_param"]
    tree = learner["gradient_booster"]["tree_train_param"]
    assert learner["objective"]["name"] == "binary:logitraw"
    assert int(learner["gradient_booster"]["gbtree_model_param"]["num_parallel_tree"]) == 200
    assert float(tree["eta"]) == pytest.approx(0.3) and int(tree["max_depth"]) == 5
    assert float(tree["colsample_bytree"]) == pytest.approx(0.6) and float(tree["colsample_bynode"]) == pytest.approx(
        0.6
    )
    assert float(tree["subsample"]) == pytest.approx(0.6) and float(tree["alpha"]) == pytest.approx(1.0)
    assert float(learner["objective"]["reg_loss_param"]["scale_pos_weight"]) == pytest.approx(1.0)
    assert train["tree_method"] == "hist"
    assert model.get_booster().num_boosted_rounds() == 10
    assert len(model.get_booster().get_dump()) == 10 * 200  # 10 rounds of 200 parallel trees


def test_learns_and_is_seeded(tmp_path):
    xgb = dict(SegadParams.from_params(TINY).xgboost)
    features, labels = _data()
    test_features, test_labels = _data(seed=1)
    model = brf.fit(features, labels, xgb, seed=0, where="t")
    scores = brf.score(model, test_features)
    from iadbench.metrics.counts import confusion_counts
    from iadbench.metrics.curves import auroc

    assert auroc(confusion_counts(scores, test_labels.astype(bool))) > 0.95
    again = brf.score(brf.fit(features, labels, xgb, seed=0, where="t"), test_features)
    assert np.array_equal(scores, again)
    brf.save(model, tmp_path / "brf.json")
    import xgboost

    loaded = brf.load(tmp_path / "brf.json")
    margin = loaded.predict(xgboost.DMatrix(test_features), output_margin=True)
    assert np.allclose(margin, scores, atol=1e-5)
    imbalanced = brf.fit(features[:25], labels[:25], xgb, seed=0, where="t")  # 20 good, 5 anomalous
    spw = brf.booster_config(imbalanced)["learner"]["objective"]["reg_loss_param"]["scale_pos_weight"]
    assert float(spw) == pytest.approx(4.0)


def test_one_class_only_is_refused():
    features, labels = _data()
    with pytest.raises(IadbenchError, match="padim\\+segad/nut: the BRF needs good and anomalous .* 20 good and 0"):
        brf.fit(features[:20], labels[:20], dict(SegadParams.from_params(TINY).xgboost), 0, "padim+segad/nut")
