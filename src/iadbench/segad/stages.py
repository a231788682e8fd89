"""The SegAD stages: ``segad_features`` (one detector × product) and ``segad`` (one setup × product).

``iadbench segad-features --detector D --product P`` writes ``data/segad/D/P.npz``: the segment statistics
(:mod:`iadbench.segad.features`) of D's maps of every image the BRF trains on or scores —

- ``brf`` images (split ``brf``: good train images the detectors never saw, and ``segad.shots`` real anomalous ones),
  run through D's trained cell here;
- one-class (``segad.shots`` = 0): ``segad.synthetic_per_image`` disturbed copies of each good ``brf`` image
  (:mod:`iadbench.segad.disturb`), also run through D here;
- ``validation`` and ``test`` images, read from ``data/maps/D/P.npz`` (the predict stage's maps, drift included).

``iadbench segad --setup NAME --product P`` (``D+segad``, or ``all+segad`` over every ``segad.detectors``) joins the
features of its detectors, fits the BRF on the ``brf`` rows and writes the validation/test scores to
``data/maps/NAME/P.npz`` (scores only), so thresholds, evaluation, metrics and the report treat it like any model.
No image of a BRF training set is in validation or test (the split assigns each image once; checked again here).
"""

from __future__ import annotations

import json
import logging
import time
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from iadbench import resources
from iadbench.errors import IadbenchError
from iadbench.params import SEGAD_SUFFIX, SegadParams
from iadbench.paths import ASSIGNMENT, MAPS_DIR, MODELS_DIR, PREDICT_REPORTS, SEGAD_DIR
from iadbench.segad import brf, disturb
from iadbench.segad.features import feature_names, segment_statistics
from iadbench.segad.segments import n_segments, product_segments

SYNTHETIC = "#synthetic"  # image id of a disturbed copy: <image id>#synthetic<k>


def features_path(detector: str, product: str) -> Any:
    """``data/segad/<detector>/<product>.npz``."""
    return SEGAD_DIR / detector / f"{product}.npz"


def detectors_of(setup: str, segad: SegadParams) -> list[str]:
    """The detectors whose maps a setup reads: ``D+segad`` → [D]; ``all+segad`` → every ``segad.detectors``."""
    if setup not in segad.setups:
        raise IadbenchError(f"unknown SegAD setup {setup!r}; this run's setups (params segad): {list(segad.setups)}")
    base = setup.removesuffix(SEGAD_SUFFIX)
    return list(segad.detectors) if base in segad.ensembles else [base]


def features_cell(params: dict[str, Any], detector: str, product: str, progress: bool | None = None) -> dict:
    """Write ``data/segad/<detector>/<product>.npz`` (see the module docstring); return its summary."""
    from iadbench.models.run import infer, model_config, split_rows

    segad = SegadParams.from_params(params)
    if detector not in segad.detectors:
        raise IadbenchError(f"segad.detectors {list(segad.detectors)} does not name {detector!r}")
    size = model_config(params, detector).image_size
    rows = split_rows(product, ("brf", "validation", "test"))  # the split file's reader shared with train/predict
    part = rows[rows["split"] == "brf"]
    if len(part) < 2:
        raise IadbenchError(
            f"{ASSIGNMENT}: product {product}: the SegAD BRF part (split brf) holds {len(part)} image(s), at least 2 "
            "are needed (segad.brf_fraction; rerun the split stage)"
        )
    maps_file = MAPS_DIR / detector / f"{product}.npz"
    if not maps_file.is_file():
        raise IadbenchError(f"{maps_file}: maps not found (run the predict stage of {detector} first)")
    stored = dict(np.load(maps_file, allow_pickle=False))
    if "maps" not in stored:
        raise IadbenchError(f"{maps_file}: {detector} writes image scores only; SegAD needs its anomaly maps")
    held_out = set(stored["image_id"].tolist())
    leaked = sorted(held_out & set(part["image_id"]))
    if leaked:
        raise IadbenchError(f"{maps_file}: BRF image(s) also in validation/test: {leaked[:5]} (rerun the split)")
    labels = product_segments(segad, product, size)
    synthetic: dict[str, dict[str, Any]] = {}
    if segad.shots == 0:
        for image_id in part.loc[part["label"] == "good", "image_id"]:
            for k in range(segad.synthetic_per_image):
                synthetic[f"{image_id}{SYNTHETIC}{k}"] = disturb.plan(segad.seed, str(image_id), k, labels)
    copies = []
    for copy_id in synthetic:
        original = part[part["image_id"] == copy_id.split(SYNTHETIC)[0]].iloc[0].copy()
        original["image_id"], original["label"] = copy_id, "anomalous"
        copies.append(original)
    brf_rows = pd.concat([part, pd.DataFrame(copies)], ignore_index=True) if copies else part.reset_index(drop=True)
    edits = {i: partial(disturb.apply, p=p, labels=labels) for i, p in synthetic.items()}
    ran = infer(params, detector, product, brf_rows, progress, edits=edits)
    detector_seconds = ran["seconds"]  # the detector's forward passes on the BRF images (as predict_seconds)
    start = time.perf_counter()
    brf_maps = ran["maps"].astype(np.float16)  # stored maps are float16: the BRF sees what the held-out maps are
    features = np.concatenate([segment_statistics(brf_maps, labels), segment_statistics(stored["maps"], labels)])
    feature_seconds = time.perf_counter() - start
    pairs = zip(brf_rows["image_id"], brf_rows["label"], strict=True)
    kind = np.array(["synthetic" if i in synthetic else f"brf-{lbl}" for i, lbl in pairs] + stored["split"].tolist())
    label_of = dict(zip(rows["image_id"], rows["label"], strict=True))
    label = np.array(
        [int(lbl == "anomalous") for lbl in brf_rows["label"]]
        + [int(label_of[i] == "anomalous") for i in stored["image_id"]]
    )
    arrays = {
        "image_id": np.array([*brf_rows["image_id"], *stored["image_id"]], dtype=str),
        "split": np.array(["brf"] * len(brf_rows) + stored["split"].tolist(), dtype=str),
        "kind": kind,
        "label": label,
        "features": features,
        "scores": np.concatenate([ran["scores"], stored["scores"]]).astype(np.float64),  # the detector's own
        "names": np.array(feature_names(detector, n_segments(labels)), dtype=str),
        "segments": labels.astype(np.int16),
        "synthetic": np.array([json.dumps(synthetic.get(i, {})) for i in brf_rows["image_id"]], dtype=str),
    }
    if "drift" in stored:
        arrays["drift"] = stored["drift"]
    out = features_path(detector, product)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        np.savez(fh, **arrays)
    summary = {
        "detector": detector, "product": product, "segments": segad.segments, "n_segments": n_segments(labels),
        "n_brf_good": int((kind == "brf-good").sum()), "n_brf_shots": int((kind == "brf-anomalous").sum()),
        "n_synthetic": len(synthetic), "n_features": int(features.shape[1]),
    }  # fmt: skip
    (out.with_suffix(".json")).write_text(json.dumps(summary, indent=1) + "\n")
    resources.record("segad_features", detector, product, detector_seconds=detector_seconds,
                     feature_seconds=feature_seconds)  # fmt: skip
    return {**summary, **resources.read("segad_features", detector, product)}


def _joined(
    detectors: list[str], product: str, detector_score: bool = False
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """Features of several detectors side by side (their image ids must agree row by row); ``detector_score``
    appends each detector's own image score.
    """
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
    """Fit the BRF of ``setup`` on ``product`` and write its scores (see the module docstring)."""
    segad = SegadParams.from_params(params)
    detectors = detectors_of(setup, segad)
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
    from iadbench.metrics.counts import confusion_counts
    from iadbench.metrics.curves import auroc

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
    import sklearn
    import xgboost

    return {"xgboost": xgboost.__version__, "scikit-learn": sklearn.__version__, "numpy": np.__version__}
