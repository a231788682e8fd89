"""``iadbench predict``: write anomaly maps and scores of one (model, product) cell."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from iadbench.stages import TORCH_LIBRARIES, add_cell_arguments, read_params

HELP = "write anomaly maps and scores of one (model, product) cell"
IMPORTS = (*TORCH_LIBRARIES, "iadbench.models.run")  # imported before any work: the warm worker preloads them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments: the cell."""
    add_cell_arguments(parser)


def run(args: argparse.Namespace) -> None:
    """Write anomaly maps and scores of one (model, product) cell."""
    report = predict_cell(read_params(args), args.model, args.product, progress=False if args.quiet else None)
    print(
        f"predicted {report['n_images']} images with {args.model} on {args.product}: "
        f"{report['images_per_second']} img/s, peak RSS {report['peak_rss_mb']} MiB"
    )


def predict_cell(
    params: dict[str, Any],
    model: str,
    product: str,
    progress: bool | None = None,
    corrections: bool = True,
    float32_maps: Path | None = None,
) -> dict[str, Any]:
    """Run the trained cell on ``product``'s validation and test rows; write ``data/maps/<model>/<product>.npz``
    (image ids, splits, raw scores, float16 maps: :func:`iadbench.models.run.to_float16`) and
    ``reports/predict/<model>/<product>.json`` (what ran, each cell's raw float32 map range).

    Test images only get the test-time drift of ``drift`` (thresholds are fitted on the clean validation split, as
    in production). ``float32_maps`` also saves the raw maps there (benchmarks only).
    """
    import numpy as np

    from iadbench import resources
    from iadbench.data import drift as test_drift
    from iadbench.models.registry import get_entry
    from iadbench.models.run import infer, model_config, split_rows, to_float16, versions
    from iadbench.paths import MAPS_DIR, PREDICT_REPORTS

    get_entry(model)
    cfg = model_config(params, model, corrections)
    drift = test_drift.DriftParams.from_params(params)
    rows = split_rows(product, ("validation", "test"))
    plans = {i: test_drift.plan(drift, i, cfg.image_size) for i in rows.loc[rows["split"] == "test", "image_id"]}
    out = infer(params, model, product, rows, progress, corrections, plans)
    entry, meta, record, seconds = out["entry"], out["meta"], out["record"], out["seconds"]
    arrays: dict[str, np.ndarray] = {
        "image_id": rows["image_id"].to_numpy(dtype=str),
        "split": rows["split"].to_numpy(dtype=str),
        "scores": out["scores"].astype(np.float32),
    }
    if drift.on:
        arrays["drift"] = np.array([test_drift.encode(plans.get(i, [])) for i in rows["image_id"]], dtype=str)
    if entry.pixel_maps:
        arrays["maps"] = to_float16(out["maps"], model, product)
        if float32_maps is not None:
            np.save(float32_maps, out["maps"])
    out_path = MAPS_DIR / model / f"{product}.npz"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("wb") as fh:
        np.savez(fh, **arrays)
    report = {
        "model": model, "product": product, "n_images": len(rows), "pixel_maps": entry.pixel_maps,
        "image_score": entry.image_score, "map_size": cfg.image_size if entry.pixel_maps else 0,
        "epochs": meta["epochs"], "epochs_rule": meta["epochs_rule"], "epochs_full": meta["epochs_full"],
        **{k: meta[k] for k in ("best_epoch", "regime", "n_train_anomalous") if k in meta},
        **{k: meta[k] for k in ("backbone", "weights_source", "weights_sha256")},
        "versions": versions(), "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_", ""),
        "options": cfg.options, "corrections": cfg.corrections,
        "raw_map_range": [float(out["maps"].min()), float(out["maps"].max())] if entry.pixel_maps else None,
        **record,
    }  # fmt: skip
    if drift.on:
        report["drift"] = {"transforms": list(drift.transforms), "seed": drift.seed, "drifted_images": len(plans)}
    report_path = PREDICT_REPORTS / model / f"{product}.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=1) + "\n")
    resources.record("predict", model, product, predict_seconds=seconds, n_images=len(rows),
                     images_per_second=round(len(rows) / max(seconds, 1e-9), 2))  # fmt: skip
    return {**report, **resources.read("predict", model, product)}
