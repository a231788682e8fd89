"""``iadbench segad``: SegAD: fit one setup's boosted random forest on one product, score its validation and test
images.

``iadbench segad --setup NAME --product P`` (``D+segad``, or ``all+segad`` over every ``segad.detectors``) joins the
features of its detectors, fits the BRF on the ``brf`` rows and writes the validation/test scores to
``data/maps/NAME/P.npz`` (scores only), so thresholds, evaluation, metrics and the report treat it like any model.
No image of a BRF training set is in validation or test (the split assigns each image once; checked again here).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Any

from iadbench.errors import IadbenchError
from iadbench.stages import add_cell_arguments, read_params

HELP = "SegAD: fit one setup's boosted random forest and score its images"
IMPORTS = ("xgboost", "iadbench.segad.brf")  # imported before any work: the warm worker preloads them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments: the cell."""
    add_cell_arguments(parser, "--setup", "<detector>+segad or all+segad (params: segad)")


def run(args: argparse.Namespace) -> None:
    """SegAD: fit one setup's boosted random forest on one product and score its validation/test images."""
    r = fit_cell(read_params(args), args.setup, args.product)
    print(
        f"{args.setup} on {args.product} ({r['mode']}): BRF on {r['n_brf_good']} good + {r['n_brf_anomalous']} "
        f"anomalous, {r['n_features']} features; fit {r['fit_seconds']} s, scored {r['n_images']} images"
    )


def _joined(
    detectors: list[str], product: str, detector_score: bool = False
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Features of several detectors side by side (their image ids must agree row by row); ``detector_score``
    appends each detector's own image score.
    """
    import numpy as np

    from iadbench.paths import segad_features_path as features_path

    parts, summaries = [], []
    for detector in detectors:
        path = features_path(detector, product)
        if not path.is_file():
            raise IadbenchError(f"{path}: SegAD features not found (run the segad_features stage of {detector})")
        parts.append(dict(np.load(path, allow_pickle=False)))
        summaries.append(json.loads(path.with_suffix(".json").read_text()))
    first = parts[0]
    for detector, other in zip(detectors[1:], parts[1:], strict=True):
        if not np.array_equal(other["image_id"], first["image_id"]):
            raise IadbenchError(
                f"{features_path(detector, product)}: images differ from {features_path(detectors[0], product)} "
                "(rerun segad_features with the same params)"
            )
    joined = {k: v for k, v in first.items() if k not in ("features", "names", "scores")}
    joined["features"] = np.concatenate([p["features"] for p in parts], axis=1)
    joined["names"] = np.concatenate([p["names"] for p in parts])
    if detector_score:  # one more column per detector: its own image score (map maximum for most detectors)
        joined["features"] = np.concatenate([joined["features"], np.stack([p["scores"] for p in parts], 1)], axis=1)
        joined["names"] = np.concatenate([joined["names"], [f"{d}/image_score" for d in detectors]])
    return joined, summaries


def fit_cell(params: dict[str, Any], setup: str, product: str) -> dict[str, Any]:
    """Fit the BRF of ``setup`` on ``product`` and write its scores (see the module docstring); write the BRF
    (``models/<setup>/<product>/brf.json``, ``meta.json``) and the predict record.
    """
    import numpy as np

    from iadbench import resources
    from iadbench.metrics.counts import confusion_counts
    from iadbench.metrics.curves import auroc
    from iadbench.params import SegadParams
    from iadbench.paths import MAPS_DIR, MODELS_DIR, PREDICT_REPORTS
    from iadbench.segad import brf

    segad = SegadParams.from_params(params)
    detectors = segad.detectors_of(setup)
    data, summaries = _joined(detectors, product, segad.detector_score)
    train = data["split"] == "brf"
    held_out = ~train
    overlap = sorted(set(data["image_id"][train]) & set(data["image_id"][held_out]))
    if overlap:
        raise IadbenchError(f"{setup}/{product}: image(s) both in the BRF training set and validation/test: {overlap}")
    xgb = dict(segad.xgboost)
    start = time.perf_counter()
    model = brf.fit(data["features"][train], data["label"][train], xgb, segad.seed, f"{setup}/{product}")
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    scores = brf.score(model, data["features"][held_out])
    score_seconds = time.perf_counter() - start
    # how well the BRF separates its own training images (a BRF that learns its task yet fails on test: the
    # anomalies it learned from are not the test's)
    train_auroc = auroc(confusion_counts(brf.score(model, data["features"][train]), data["label"][train] == 1))
    constant = bool(np.ptp(scores) == 0)
    if constant:
        logging.getLogger("iadbench").warning(
            "%s/%s: the BRF gives every image the same score: with %d training images and these settings no tree "
            "split (too few BRF images: raise segad.brf_fraction or the train set)",
            setup,
            product,
            int(train.sum()),
        )
    arrays = {"image_id": data["image_id"][held_out], "split": data["split"][held_out],
              "scores": scores.astype(np.float32)}  # fmt: skip
    if "drift" in data:
        arrays["drift"] = data["drift"]
    out = MAPS_DIR / setup / f"{product}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        np.savez(fh, **arrays)
    cell = MODELS_DIR / setup / product
    brf.save(model, cell / "brf.json")
    config = brf.booster_config(model)
    gain = model.get_booster().get_score(importance_type="gain")
    names = [str(n) for n in data["names"]]
    top = sorted(((names[int(k[1:])], round(v, 4)) for k, v in gain.items()), key=lambda kv: -kv[1])[:10]
    meta = {
        "model": setup, "product": product, "family": "segad", "detectors": detectors, "pixel_maps": False,
        "image_score": "model", "mode": "supervised" if segad.shots else "one-class", "segments": segad.segments,
        "n_segments": summaries[0]["n_segments"], "n_features": int(data["features"].shape[1]),
        "n_brf_good": int((data["label"][train] == 0).sum()), "n_brf_anomalous": int(data["label"][train].sum()),
        "n_synthetic": int((data["kind"][train] == "synthetic").sum()), "seed": segad.seed, "xgboost": xgb,
        "detector_score": segad.detector_score,
        "scale_pos_weight": float(config["learner"]["objective"]["reg_loss_param"]["scale_pos_weight"]),
        "top_features_by_gain": top, "constant_scores": constant, "brf_train_auroc": round(float(train_auroc), 4),
    }  # fmt: skip
    (cell / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    report = {
        **{k: v for k, v in meta.items() if k != "top_features_by_gain"},
        "n_images": int(held_out.sum()), "map_size": 0, "epochs": xgb["n_estimators"], "versions": _versions(),
    }  # fmt: skip
    report_path = PREDICT_REPORTS / setup / f"{product}.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=1) + "\n")
    resources.record("segad", setup, product, fit_seconds=fit_seconds, score_seconds=score_seconds,
                     n_images=int(held_out.sum()))  # fmt: skip
    return {**report, **resources.read("segad", setup, product)}


def _versions() -> dict[str, str]:
    import numpy as np
    import sklearn
    import xgboost

    return {"xgboost": xgboost.__version__, "scikit-learn": sklearn.__version__, "numpy": np.__version__}
