"""SegAD's classifier: an XGBoost boosted random forest (BRF) on the segment features (Baitieva et al., CVPR 2024).

The paper's settings (``segad.xgboost`` in params.yaml, all required): 10 boosting rounds (``n_estimators``) of a
random forest of 200 trees each (``num_parallel_tree``), learning rate 0.3, objective ``binary:logitraw``, depth
5, ``colsample_bytree`` = ``colsample_bynode`` = ``subsample`` = 0.6, L1 regularisation (``reg_alpha``) 1.
``scale_pos_weight`` = n_good / n_anomalous of the BRF training set (the authors' code passes a class weight computed
from the data; this is the usual balancing choice). The image score is the raw margin (``output_margin``), which
for ``binary:logitraw`` is the model's own output; a threshold is fitted on it like on any other score.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from iadbench.errors import IadbenchError


def classifier(xgboost: dict[str, Any], seed: int, scale_pos_weight: float) -> Any:
    """An unfitted ``XGBClassifier`` with the BRF settings (single-threaded ``hist``: deterministic on CPU)."""
    from xgboost import XGBClassifier

    return XGBClassifier(
        **xgboost, random_state=seed, scale_pos_weight=scale_pos_weight, tree_method="hist", n_jobs=1,
        verbosity=0,
    )  # fmt: skip


def fit(features: np.ndarray, labels: np.ndarray, xgboost: dict[str, Any], seed: int, where: str) -> Any:
    """Fit the BRF on ``features`` (N×F) with ``labels`` (1 = anomalous); both classes are needed."""
    labels = np.asarray(labels, dtype=int)
    n_anomalous, n_good = int(labels.sum()), int((labels == 0).sum())
    if n_anomalous == 0 or n_good == 0:
        raise IadbenchError(
            f"{where}: the BRF needs good and anomalous training images, found {n_good} good and {n_anomalous} "
            "anomalous (split brf)"
        )
    model = classifier(xgboost, seed, n_good / n_anomalous)
    model.fit(features, labels)
    return model


def score(model: Any, features: np.ndarray) -> np.ndarray:
    """The BRF's raw margin per image (higher = more anomalous)."""
    return np.asarray(model.predict(features, output_margin=True), dtype=np.float64)


def booster_config(model: Any) -> dict[str, Any]:
    """The fitted booster's own configuration (what XGBoost actually used)."""
    return json.loads(model.get_booster().save_config())


def save(model: Any, path: Path) -> None:
    """Write the fitted booster as XGBoost's JSON model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.get_booster().save_model(str(path))


def load(path: Path) -> Any:
    """A booster written by :func:`save`."""
    from xgboost import Booster

    booster = Booster()
    booster.load_model(str(path))
    return booster
