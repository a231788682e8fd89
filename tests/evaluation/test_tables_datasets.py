"""Table 1 with several datasets: rows per category × dataset, then rows pooling them; one dataset unchanged."""

import numpy as np
import pandas as pd

from iadbench.evaluation.tables import POOLED, category_table, pooled
from iadbench.params import EvaluateParams
from tests.conftest import TINY

P = EvaluateParams.from_params(TINY)


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for dataset, n in (("synthetic", 6), ("btad", 4)):
        for k in range(n):
            anomalous = k % 2 == 0
            tp, fp, fn = (int(x) for x in rng.integers(0, 50, 3))
            rows.append({
                "model": "padim", "dataset": dataset, "product": f"{dataset}/p", "label": "anomalous" if anomalous
                else "good", "defect_categories": ("surface" if dataset == "btad" else "structural") if anomalous
                else "", "background": "without" if dataset == "btad" else "with", "has_mask": anomalous,
                "iou_iou": tp / (tp + fp + fn) if anomalous else np.nan, "pix_iou_tp": tp if anomalous else 0,
                "pix_iou_fp": fp, "pix_iou_fn": fn if anomalous else 0, "pixels": 100, "img_iou_pred": k % 3 == 0,
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_rows_per_dataset_then_pooled():
    table = _table()
    cats = category_table(table, ["synthetic", "btad"], P)
    assert list(dict.fromkeys(cats["dataset"])) == ["synthetic", "btad", POOLED]
    every = cats[(cats["kind"] == "all") & (cats["rule"] == "iou")].set_index("dataset")["n_images"]
    assert (every["synthetic"], every["btad"], every[POOLED]) == (6, 4, 10)
    btad = cats[(cats["dataset"] == "btad") & (cats["rule"] == "iou")].set_index("group")
    assert btad.loc["surface", "n_images"] == 2 and btad.loc["structural", "n_images"] == 0
    assert set(pooled(cats)["dataset"]) == {POOLED}


def test_the_pooled_rows_are_what_a_one_dataset_run_of_the_same_images_reports():
    table = _table()
    multi = pooled(category_table(table, ["synthetic", "btad"], P)).drop(columns="dataset").reset_index(drop=True)
    single = category_table(table.assign(dataset="x"), ["x"], P)
    assert set(pooled(single)["dataset"]) == {"x"}
    pd.testing.assert_frame_equal(multi, single.drop(columns="dataset"))  # same bootstrap streams, same numbers
