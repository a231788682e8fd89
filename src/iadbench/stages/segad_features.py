"""``iadbench segad-features``: SegAD: segment statistics of one detector's maps on one product (BRF part, validation,
test).

``iadbench segad-features --detector D --product P`` writes ``data/segad/D/P.npz``: the segment statistics
(:mod:`iadbench.segad.features`) of D's maps of every image the BRF trains on or scores —

- ``brf`` images (split ``brf``: good train images the detectors never saw, and ``segad.shots`` real anomalous ones),
  run through D's trained cell here;
- one-class (``segad.shots`` = 0): ``segad.synthetic_per_image`` disturbed copies of each good ``brf`` image
  (:mod:`iadbench.segad.disturb`), also run through D here;
- ``validation`` and ``test`` images, read from ``data/maps/D/P.npz`` (the predict stage's maps, drift included).
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from typing import Any

from iadbench.errors import IadbenchError
from iadbench.paths import ASSIGNMENT
from iadbench.stages import TORCH_LIBRARIES, add_cell_arguments, read_params

HELP = "SegAD: segment statistics of one detector's maps (params: segad)"
IMPORTS = (
    *TORCH_LIBRARIES,
    "iadbench.models.run",
    "iadbench.segad.features",
)  # imported before any work: the warm worker preloads them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments: the cell."""
    add_cell_arguments(parser, "--detector", "one of segad.detectors")


def run(args: argparse.Namespace) -> None:
    """SegAD: segment statistics of one detector's maps on one product (BRF part, validation, test)."""
    s = features_cell(read_params(args), args.detector, args.product, progress=False if args.quiet else None)
    print(
        f"SegAD features of {args.detector} on {args.product}: {s['n_features']} per image ({s['n_segments']} "
        f"segment(s), {s['segments']}); BRF part {s['n_brf_good']} good + {s['n_brf_shots']} shot(s) + "
        f"{s['n_synthetic']} synthetic; detector {s['detector_seconds']} s, statistics {s['feature_seconds']} s"
    )


def features_cell(params: dict[str, Any], detector: str, product: str, progress: bool | None = None) -> dict:
    """Write ``data/segad/<detector>/<product>.npz`` and its ``.json`` summary (see the module docstring); return
    the summary with the seconds spent.
    """
    import numpy as np

    from iadbench import resources
    from iadbench.models.run import infer, model_config, split_rows
    from iadbench.params import SegadParams
    from iadbench.paths import segad_features_path
    from iadbench.segad import disturb
    from iadbench.segad.features import feature_names, segment_statistics
    from iadbench.segad.segments import n_segments, product_segments

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
    stored = _held_out_maps(detector, product, set(part["image_id"]))
    labels = product_segments(segad, product, size)
    per_image = segad.synthetic_per_image if segad.shots == 0 else 0
    brf_rows, synthetic = disturb.synthetic_copies(part, segad.seed, per_image, labels)
    edits = {i: partial(disturb.apply, p=p, labels=labels) for i, p in synthetic.items()}
    ran = infer(params, detector, product, brf_rows, progress, edits=edits)
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
    out = segad_features_path(detector, product)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        np.savez(fh, **arrays)
    summary = {
        "detector": detector, "product": product, "segments": segad.segments, "n_segments": n_segments(labels),
        "n_brf_good": int((kind == "brf-good").sum()), "n_brf_shots": int((kind == "brf-anomalous").sum()),
        "n_synthetic": len(synthetic), "n_features": int(features.shape[1]),
    }  # fmt: skip
    (out.with_suffix(".json")).write_text(json.dumps(summary, indent=1) + "\n")
    resources.record("segad_features", detector, product, detector_seconds=ran["seconds"],
                     feature_seconds=feature_seconds)  # fmt: skip
    return {**summary, **resources.read("segad_features", detector, product)}


def _held_out_maps(detector: str, product: str, brf_ids: set[str]) -> dict[str, Any]:
    """The predict stage's maps of the detector's validation and test images (``data/maps/<detector>/<product>.npz``);
    refused when absent, without maps, or sharing an image with the BRF part.
    """
    import numpy as np

    from iadbench.paths import MAPS_DIR

    maps_file = MAPS_DIR / detector / f"{product}.npz"
    if not maps_file.is_file():
        raise IadbenchError(f"{maps_file}: maps not found (run the predict stage of {detector} first)")
    stored = dict(np.load(maps_file, allow_pickle=False))
    if "maps" not in stored:
        raise IadbenchError(f"{maps_file}: {detector} writes image scores only; SegAD needs its anomaly maps")
    leaked = sorted(set(stored["image_id"].tolist()) & brf_ids)
    if leaked:
        raise IadbenchError(f"{maps_file}: BRF image(s) also in validation/test: {leaked[:5]} (rerun the split)")
    return stored
