"""Volatile measurements — seconds, peak memory, the host — kept apart from the artifacts they describe.

A trained model, a map file or a predict record is a function of the data, the params and the code; how long it
took is not. Timings therefore never enter a cached output (whose hash another stage depends on) nor a file that
another stage reads: each stage writes them to ``reports/resources/<stage>/<model>/<product>.json`` (an uncached
DVC metric), and only the ``costs`` stage reads them back. A rebuild then reproduces every cached hash of the
committed ``dvc.lock``; only these files' own entries differ.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any

from iadbench.paths import RESOURCES_DIR, resources_path

STAGES = ("train", "predict", "segad_features", "segad")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def host() -> dict[str, Any]:
    """What the numbers were measured on: CPU count, architecture, the accelerator used, and whether the stage ran
    in a fresh interpreter or forked from the warm worker (:mod:`iadbench.warm`: its peak memory starts from the
    worker's resident size, not from the import peak).
    """
    torch = sys.modules.get("torch")  # never imported here: only a stage that already uses torch can have a GPU
    device = torch.cuda.get_device_name(0) if torch is not None and torch.cuda.is_available() else "cpu"
    warm = sys.modules.get("iadbench.warm")
    process = "warm" if warm is not None and warm.IN_WORKER else "fresh"
    return {"cpu_count": os.cpu_count(), "machine": platform.machine(), "device": device, "process": process}


def record(stage: str, model: str, product: str, **measures: float | int | None) -> Path:
    """Write one stage's measures on one cell, with the peak RSS of this process and the host."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")
    path = resources_path(stage, model, product)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {**{k: (round(v, 3) if isinstance(v, float) else v) for k, v in measures.items()},
           "peak_rss_mb": round(peak_rss_mb(), 1), "host": host()}  # fmt: skip
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def read(stage: str, model: str, product: str) -> dict[str, Any]:
    """One record, or ``{}`` when the stage has not run on that cell."""
    path = resources_path(stage, model, product)
    return json.loads(path.read_text()) if path.is_file() else {}


def collect(root: Path = RESOURCES_DIR) -> list[dict[str, Any]]:
    """Every record under ``root`` as rows: stage, model, product and its measures (host flattened)."""
    rows = []
    for path in sorted(root.glob("*/*/*.json")) + sorted(root.glob("*/*/*/*.json")):
        rel = path.relative_to(root).with_suffix("")
        stage, model, product = rel.parts[0], rel.parts[1], "/".join(rel.parts[2:])
        doc = json.loads(path.read_text())
        hosted = doc.pop("host", {}) or {}
        rows.append({"stage": stage, "model": model, "product": product, **doc,
                     **{f"host_{k}": v for k, v in hosted.items()}})  # fmt: skip
    return rows


def costs(rows: list[dict[str, Any]], models: list[str] | None = None) -> dict[str, Any]:
    """Per model (or SegAD setup), summed over its products: train ``fit_seconds``, ``predict_seconds`` (the
    engine's forward passes on validation + test), ``images_per_second`` = Σ images / Σ predict seconds, and the
    largest ``peak_rss_mb`` of any of its stage processes; SegAD setups add ``feature_seconds`` (their detectors run
    on the BRF images plus the segment statistics, from ``segad_features``) to their BRF ``fit_seconds``.
    ``models`` restricts and orders the result (the run's evaluated models); default: every model recorded.
    """
    by_model: dict[str, dict[str, float]] = {}
    for r in rows:
        target = r["model"]
        if r["stage"] == "segad_features":  # a detector's features serve its own setup (and all+segad)
            target = f"{r['model']}+segad"
        m = by_model.setdefault(target, {"fit_seconds": 0.0, "predict_seconds": 0.0, "images": 0.0,
                                         "peak_rss_mb": 0.0})  # fmt: skip
        m["peak_rss_mb"] = max(m["peak_rss_mb"], float(r.get("peak_rss_mb") or 0.0))
        if r["stage"] in ("train", "segad"):
            m["fit_seconds"] += float(r.get("fit_seconds") or 0.0)
        if r["stage"] in ("predict", "segad"):
            m["predict_seconds"] += float(r.get("predict_seconds", r.get("score_seconds")) or 0.0)
            m["images"] += float(r.get("n_images") or 0.0)
        if r["stage"] == "segad_features":
            m["feature_seconds"] = (
                m.get("feature_seconds", 0.0)
                + float(r.get("detector_seconds") or 0.0)
                + float(r.get("feature_seconds") or 0.0)
            )
    out = {}
    for model in models if models is not None else sorted(by_model):
        if model not in by_model:
            continue
        m = by_model[model]
        out[model] = {
            "fit_seconds": round(m["fit_seconds"], 2),
            **({"feature_seconds": round(m["feature_seconds"], 2)} if "feature_seconds" in m else {}),
            "predict_seconds": round(m["predict_seconds"], 2),
            "images_per_second": round(m["images"] / m["predict_seconds"], 1) if m["predict_seconds"] else None,
            "peak_rss_mb": round(m["peak_rss_mb"], 1),
        }
    return out


def costs_markdown(table: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """``reports/costs.md``: the per-model table and the host it was measured on."""
    hosts = sorted({(r.get("host_cpu_count"), r.get("host_machine"), r.get("host_device")) for r in rows}, key=str)
    host = "; ".join(f"{c} CPU(s), {m}, {d}" for c, m, d in hosts) or "unknown"
    lines = [
        "# What each model cost on this run",
        "",
        "Seconds and peak memory as measured by the stages that last ran (`reports/resources/`), summed over "
        "products. They depend on the machine and its load, so they are kept out of every cached artifact and "
        f"out of the report: a rebuild reproduces the results, not these numbers. Host: {host}.",
        "",
        "| model | fit (s) | SegAD features (s) | predict (s) | images/s | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for model, c in table.items():
        lines.append(f"| {model} | {c['fit_seconds']:.1f} | {c['feature_seconds']:.1f} | "
                     if "feature_seconds" in c else f"| {model} | {c['fit_seconds']:.1f} | – | ")  # fmt: skip
        ips = "–" if c["images_per_second"] is None else f"{c['images_per_second']:.1f}"
        lines[-1] += f"{c['predict_seconds']:.1f} | {ips} | {c['peak_rss_mb']:.0f} |"
    return "\n".join(lines) + "\n"


def write_costs(models: list[str] | None = None) -> dict[str, Any]:
    """The ``costs`` stage: ``reports/costs.json`` (a DVC metric) and ``reports/costs.md``."""
    from iadbench.paths import COSTS, COSTS_MD

    rows = collect()
    table = costs(rows, models)
    COSTS.parent.mkdir(parents=True, exist_ok=True)
    COSTS.write_text(json.dumps(table, indent=1) + "\n")
    COSTS_MD.write_text(costs_markdown(table, rows))
    return table
