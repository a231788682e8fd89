"""``iadbench recommend``'s ranking against values computed by hand on a small table (issue: from tables to a
decision): the profile's images, the means, the interval (against scipy's percentile bootstrap), the paired
comparison, the constraints, and each bad request's message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import bootstrap

from iadbench.errors import InputError, UsageError
from iadbench.evaluation.recommend import MIN_IMAGES, Constraints, Profile, recommend
from iadbench.evaluation.records import EvaluateRecord
from iadbench.params import EvaluateParams

P = EvaluateParams(aupro_fpr_limit=0.3, bootstrap=2000, confidence=0.95, seed=0, exclude_prefill_accepted=True)
# 12 anomalous images on background "with" (6 surface, 4 contamination, 2 structural), 3 on "without", 4 good
CATEGORY = ["surface"] * 6 + ["contamination"] * 4 + ["structural"] * 2
A_IOU = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.5, 0.5])  # model a at rule iou, per image
COSTS = {m: {"fit_seconds": 10.0, "images_per_second": 20.0, "peak_rss_mb": 900.0} for m in ("a", "b", "c")}


def _rows(model: str, iou: np.ndarray, roc: np.ndarray, good_flagged: int) -> list[dict]:
    rows = []
    for i, (cat, v_iou, v_roc) in enumerate(zip(CATEGORY, iou, roc, strict=True)):
        rows.append({"image_id": f"p/test/{cat}/{i:03d}.png", "label": "anomalous", "background": "with",
                     "defect_categories": cat, "iou_iou": v_iou, "iou_roc": v_roc, "img_iou_pred": int(i % 4 != 3),
                     "img_roc_pred": 1})  # fmt: skip
    for i in range(3):  # another background: never in a "with" profile
        rows.append({"image_id": f"p/test/other/{i:03d}.png", "label": "anomalous", "background": "without",
                     "defect_categories": "surface", "iou_iou": 1.0, "iou_roc": 1.0, "img_iou_pred": 1,
                     "img_roc_pred": 1})  # fmt: skip
    for i in range(4):
        rows.append({"image_id": f"p/test/good/{i:03d}.png", "label": "good", "background": "with",
                     "defect_categories": "", "iou_iou": np.nan, "iou_roc": np.nan,
                     "img_iou_pred": int(i < good_flagged), "img_roc_pred": 0})  # fmt: skip
    for row in rows:  # product q holds the images without background
        product = "q" if row["background"] == "without" else "p"
        row.update(model=model, product=product, dataset="d", source="workspace")
    return rows


TRAINING = {  # a: trained for its full length; b: 10 of 100 epochs (demo profile); c: a memory bank
    "a": {"epochs": 50, "epochs_rule": "profile full", "epochs_full": 50},
    "b": {"epochs": 10, "epochs_rule": "profile demo", "epochs_full": 100},
    "c": {"epochs": 1, "epochs_rule": "one pass", "epochs_full": 1},
}


def _doc(model: str, product: str = "p") -> EvaluateRecord:
    pixel = {"at": {"iou": {"threshold": 0.5}, "roc": {"threshold": 0.25}}}
    image = {"at": {"iou": {"threshold": 7.0}, "roc": {"threshold": 6.0}}}
    used = {"pixel": {"iou": "iou", "roc": "roc"}, "image": {}}
    return EvaluateRecord(model, product, "d", "f", "map_max", {}, used, [], image, pixel, {}, {}, TRAINING[model])


def _world(*models: tuple[str, np.ndarray, np.ndarray, int]) -> tuple[pd.DataFrame, dict]:
    table = pd.DataFrame([row for m in models for row in _rows(*m)])
    return table, {("workspace", m[0], product): _doc(m[0], product) for m in models for product in ("p", "q")}


SURFACE_OR_CONTAMINATION = Profile("with", ("surface", "contamination"))


def test_ranking_means_thresholds_and_a_clear_winner():
    # b is a minus 0.1 on every image: the paired difference is exactly 0.1 in every resample
    table, docs = _world(("a", A_IOU, A_IOU / 2, 0), ("b", A_IOU - 0.1, A_IOU / 4, 0))
    rec = recommend(table, docs, COSTS, SURFACE_OR_CONTAMINATION, P)
    assert rec.n_images == 10 and rec.n_good == 4  # 6 surface + 4 contamination; structural and "without" left out
    ranked = [(c["model"], c["rule"]) for c in rec.candidates]
    assert ranked == [("a", "iou"), ("b", "iou"), ("a", "roc"), ("b", "roc")]
    best = rec.candidates[0]
    assert best["mean_iou"] == pytest.approx(A_IOU[:10].mean())  # 0.45
    assert best["mean_iou_by_category"] == pytest.approx({"surface": 0.65, "contamination": 0.15})
    assert best["image_recall"] == pytest.approx(8 / 10)  # images 3 and 7 of the ten (i % 4 == 3) are missed
    assert best["false_alarm"] == 0.0
    assert best["thresholds"] == {"p": {"pixel": 0.5, "image": 7.0, "rule_used": "iou"}}  # q has no image "with"
    texture = recommend(table, docs, COSTS, Profile("without", ("surface",)), P).candidates[0]
    assert set(texture["thresholds"]) == {"q"} and texture["n_images"] == 3
    assert best["ms_per_image"] == pytest.approx(50.0) and best["peak_memory_mib"] == 900.0
    comp = rec.comparison
    assert comp["runner_up"] == {"model": "b", "rule": "iou"} and comp["n_images"] == 10
    assert comp["difference"] == pytest.approx(0.1) and comp["ci"] == pytest.approx([0.1, 0.1])
    assert not comp["indistinguishable"] and "better than b at iou" in rec.verdict


def test_the_interval_is_scipys_percentile_bootstrap():
    table, docs = _world(("a", A_IOU, A_IOU / 2, 0))
    lo, hi = recommend(table, docs, COSTS, SURFACE_OR_CONTAMINATION, P).candidates[0]["ci"]
    ref = bootstrap((A_IOU[:10],), np.mean, n_resamples=P.bootstrap, confidence_level=0.95, method="percentile",
                    random_state=1).confidence_interval  # fmt: skip
    assert lo == pytest.approx(ref.low, abs=0.03) and hi == pytest.approx(ref.high, abs=0.03)
    assert lo < A_IOU[:10].mean() < hi


def test_a_runner_up_that_wins_as_often_as_it_loses_is_indistinguishable():
    swing = np.where(np.arange(12) % 2 == 0, 0.2, -0.2)  # c = a ± 0.2 alternately: mean difference 0
    table, docs = _world(("a", A_IOU, A_IOU / 2, 0), ("c", A_IOU + swing, A_IOU / 2, 0))
    rec = recommend(table, docs, COSTS, SURFACE_OR_CONTAMINATION, P)
    assert rec.comparison["difference"] == pytest.approx(0.0, abs=1e-12)
    lo, hi = rec.comparison["ci"]
    assert lo < 0 < hi and rec.comparison["indistinguishable"] and "indistinguishable" in rec.verdict


def test_constraints_set_candidates_aside_with_the_reason():
    table, docs = _world(("a", A_IOU, A_IOU / 2, 2), ("b", A_IOU - 0.1, A_IOU / 4, 0))  # a/iou flags 2 of 4 good
    rec = recommend(table, docs, COSTS, SURFACE_OR_CONTAMINATION, P, Constraints(max_false_alarm=0.3))
    assert [(c["model"], c["rule"]) for c in rec.candidates][0] == ("b", "iou")
    (aside,) = rec.excluded
    assert (aside["model"], aside["rule"]) == ("a", "iou")
    assert aside["excluded_by"] == ["false alarm 0.5 > 0.3 (--max-false-alarm)"]
    with pytest.raises(UsageError, match=r"no \(model, rule\) meets.*ms per image 50 > 10 \(--max-ms-per-image\)"):
        recommend(table, docs, COSTS, SURFACE_OR_CONTAMINATION, P, Constraints(max_ms_per_image=10))


def test_few_images_are_said_plainly():
    table, docs = _world(("a", A_IOU, A_IOU / 2, 0), ("b", A_IOU - 0.1, A_IOU / 4, 0))
    rec = recommend(table, docs, COSTS, Profile("with", ("structural",)), P)
    assert rec.n_images == 2 < MIN_IMAGES
    assert rec.verdict.startswith("too few images to decide: 2 test image(s)")


def test_bad_requests_name_what_exists():
    table, docs = _world(("a", A_IOU, A_IOU / 2, 0))
    with pytest.raises(UsageError, match=r"no test image is combined, background with; profiles present .*"
                       r"contamination on background with \(4\).*surface on background without \(3\)"):  # fmt: skip
        recommend(table, docs, COSTS, Profile("with", ("combined",)), P)
    with pytest.raises(UsageError, match=r"--defects takes categories of .*got dirt"):
        Profile("with", ("dirt",))
    with pytest.raises(UsageError, match=r"--background must be one of \['with', 'without'\], got 'on'"):
        Profile("on", ("surface",))
    with pytest.raises(InputError, match=r"reports/costs.json: no entry for model 'a'"):
        recommend(table, docs, {}, SURFACE_OR_CONTAMINATION, P)


def test_under_trained_models_are_named_beside_the_ranking():
    from iadbench.evaluation.recommend import under_trained
    from iadbench.stages.recommend import render

    table, docs = _world(("a", A_IOU, A_IOU / 2, 0), ("b", A_IOU - 0.1, A_IOU / 2, 0), ("c", A_IOU / 3, A_IOU, 1))
    rec = recommend(table, docs, COSTS, SURFACE_OR_CONTAMINATION, P)
    by_model = {c["model"]: c["training"] for c in rec.candidates}
    assert by_model == TRAINING  # every cell of a model trained alike: its record, once
    assert under_trained(rec.candidates) == ["b (10 of 100, profile demo)"]
    text = render(rec)
    assert "under-trained: b (10 of 100, profile demo)" in text
    rows = {line.split()[1]: line.split() for line in text.splitlines() if line[:1].isdigit()}
    assert "50/50" in rows["a"] and "10/100" in rows["b"] and "pass" in rows["c"]  # epochs run / full length


def test_latency_of_an_exported_format_replaces_the_predict_throughput():
    from iadbench.stages.recommend import with_deploy_latency

    table, docs = _world(("a", A_IOU, A_IOU / 2, 0), ("b", A_IOU - 0.1, A_IOU / 4, 0))
    deploy = {"models": {m: {"onnx": {"p95_ms": 8.0}, "torch": {"p95_ms": 40.0}} for m in ("a", "b", "c")}}
    costs = with_deploy_latency(COSTS, deploy, "onnx")
    assert costs["a"]["images_per_second"] == pytest.approx(125.0) and costs["a"]["fit_seconds"] == 10.0
    rec = recommend(table, docs, costs, SURFACE_OR_CONTAMINATION, P, Constraints(max_ms_per_image=10.0))
    assert rec.candidates and all(c["ms_per_image"] == pytest.approx(8.0) for c in rec.candidates)
    slow = with_deploy_latency(COSTS, deploy, "torch")  # 40 ms at the line: over the budget
    with pytest.raises(UsageError, match=r"ms per image 40 > 10 \(--max-ms-per-image\)"):
        recommend(table, docs, slow, SURFACE_OR_CONTAMINATION, P, Constraints(max_ms_per_image=10.0))
    with pytest.raises(InputError, match="no openvino latency for model 'a'"):
        with_deploy_latency(COSTS, deploy, "openvino")
