"""Speed and memory of iadbench's metric set against anomalib 2.7's metric classes and scikit-learn, same maps.

    python benchmarks/metrics_speed.py [--maps 500] [--size 256] [--seed 0] [--out reports/bench/metrics_speed.json]

The maps are synthetic (smooth noise, a raised blob over 2–5 % of the pixels), stored as float16 exactly as the
predict stage stores them; every contender gets the same values (anomalib and scikit-learn as float32/float64,
as they require). Each contender computes, from the same maps, masks and image scores:

- iadbench: pixel AUROC, AP, F1-max, AUPRO@0.3; ROC-T, IoU-T, PR-T fitted on the pixels; per-image IoU at the three
  thresholds; image AUROC, F1-max, PG2, PB2, FPR@95TPR; plus the oracle mean-IoU threshold;
- anomalib (its metric classes, each computing on its own as the Evaluator does): pixel AUROC, AUPR, F1Max, AUPRO,
  F1AdaptiveThreshold (its PR-T); image AUROC, F1Max, PG2, PB2 — it has no ROC-T, IoU-T or per-image IoU;
- scikit-learn: pixel roc_auc_score, average_precision_score, precision_recall_curve (F1-max, PR-T), roc_curve
  (ROC-T); the same at image level — it has no AUPRO.

Printed: seconds per contender, the ratios anomalib/iadbench and scikit-learn/iadbench (goal ≥ 10× and ≥ 3×), and
peak extra resident memory of each (Linux VmHWM, reset before each contender) against the maps' float32 size
(goal ≤ 2×). Results go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage


def make_maps(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maps (float16), masks (bool) and image scores (max of the map); half the images anomalous."""
    rng = np.random.default_rng(seed)
    maps = np.empty((n, size, size), np.float16)
    masks = np.zeros((n, size, size), bool)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        noise = ndimage.gaussian_filter(rng.normal(size=(size, size)), 3) * 3
        if i % 2 == 0:
            for _ in range(rng.integers(1, 4)):
                cy, cx = rng.integers(20, size - 20, 2)
                r = rng.uniform(0.05, 0.11) * size
                blob = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
                masks[i] |= blob
                noise += 1.2 * ndimage.gaussian_filter(blob.astype(float), 2)
        maps[i] = noise
    return maps, masks, maps.reshape(n, -1).max(axis=1).astype(np.float32)


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return float(line.split()[1]) / 1024  # MiB
    return float("nan")


def measure(name: str, fn, *args) -> dict:
    """Run ``fn`` once; wall seconds and peak resident memory above the level before it started."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (peak RSS) to the current RSS
    before = _status("VmRSS")
    start = time.perf_counter()
    result = fn(*args)
    seconds = time.perf_counter() - start
    peak = _status("VmHWM") - before
    print(f"  {name:10s} {seconds:7.2f} s   peak +{peak:7.1f} MiB", flush=True)
    return {"seconds": seconds, "peak_extra_mib": peak, "result": result}


def run_iadbench(maps: np.ndarray, masks: np.ndarray, scores: np.ndarray) -> dict:
    from iadbench.metrics.counts import confusion_counts
    from iadbench.metrics.curves import auroc, average_precision, f1_max, fpr_at_tpr, tnr_at_fnr, tpr_at_fpr
    from iadbench.metrics.maps import aupro_from_counts, iou, oracle_threshold, per_image_confusion, pixel_curves
    from iadbench.metrics.rules import fit_threshold

    curves = pixel_curves(maps, masks)
    fitted = {rule: fit_threshold(curves.pixels, rule).threshold for rule in ("roc", "iou", "pr")}
    counts = per_image_confusion(maps, masks, np.array(list(fitted.values())))
    anomalous = masks.any(axis=(1, 2))
    mean_iou = {r: float(np.nanmean(iou(counts["tp"][:, j], counts["fp"][:, j], counts["fn"][:, j])[anomalous]))
                for j, r in enumerate(fitted)}  # fmt: skip
    image = confusion_counts(scores.astype(np.float64), anomalous)
    return {
        "pixel_auroc": auroc(curves.pixels), "pixel_ap": average_precision(curves.pixels),
        "pixel_f1_max": f1_max(curves.pixels)[0], "aupro": aupro_from_counts(curves.pro, 0.3),
        "thresholds": fitted, "mean_iou": mean_iou, "oracle": oracle_threshold(maps, masks),
        "image_auroc": auroc(image), "image_f1_max": f1_max(image)[0], "pg2": tnr_at_fnr(image, 0.02),
        "pb2": tpr_at_fpr(image, 0.02), "fpr95": fpr_at_tpr(image, 0.95),
    }  # fmt: skip


def run_anomalib(maps: np.ndarray, masks: np.ndarray, scores: np.ndarray) -> dict:
    import torch
    from anomalib.metrics.aupr import _AUPR
    from anomalib.metrics.aupro import _AUPRO
    from anomalib.metrics.auroc import _AUROC
    from anomalib.metrics.f1_score import _F1Max
    from anomalib.metrics.pg_pb import _PBn, _PGn
    from anomalib.metrics.threshold.f1_adaptive_threshold import _F1AdaptiveThreshold

    m = torch.from_numpy(maps.astype(np.float32))
    y = torch.from_numpy(masks.astype(np.int64))
    s = torch.from_numpy(scores)
    labels = torch.from_numpy(masks.any(axis=(1, 2)).astype(np.int64))
    out = {}
    for name, metric, preds, target in (
        ("pixel_auroc", _AUROC(), m, y), ("pixel_ap", _AUPR(), m, y), ("pixel_f1_max", _F1Max(), m, y),
        ("aupro", _AUPRO(fpr_limit=0.3), m, y), ("pr_threshold", _F1AdaptiveThreshold(), m, y),
        ("image_auroc", _AUROC(), s, labels), ("image_f1_max", _F1Max(), s, labels),
        ("pg2", _PGn(fnr=0.02), s, labels), ("pb2", _PBn(fpr=0.02), s, labels),
    ):  # fmt: skip
        metric.update(preds, target)
        out[name] = float(metric.compute())
    return out


def run_sklearn(maps: np.ndarray, masks: np.ndarray, scores: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    out = {}
    for level, s, y in (("pixel", maps.ravel().astype(np.float32), masks.ravel()),
                        ("image", scores, masks.any(axis=(1, 2)))):  # fmt: skip
        out[f"{level}_auroc"] = roc_auc_score(y, s)
        out[f"{level}_ap"] = average_precision_score(y, s)
        precision, recall, t = precision_recall_curve(y, s)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        out[f"{level}_f1_max"] = float(f1.max())
        out[f"{level}_pr_threshold"] = float(t[min(int(np.argmax(f1)), len(t) - 1)])
        fpr, tpr, t = roc_curve(y, s)
        out[f"{level}_roc_threshold"] = float(t[int(np.argmax(np.sqrt(tpr * (1 - fpr))))])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--maps", type=int, default=500)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["anomalib", "sklearn"])
    parser.add_argument("--out", type=Path, default=Path("reports/bench/metrics_speed.json"))
    parser.add_argument("--readme", action="store_true", help="write the README's bench-metrics block")
    args = parser.parse_args()
    maps, masks, scores = make_maps(args.maps, args.size, args.seed)
    float32_mib = maps.size * 4 / 2**20
    print(f"{args.maps} maps of {args.size}x{args.size} ({maps.size / 1e6:.1f} M pixels, "
          f"{100 * masks.mean():.2f} % anomalous; float32 size {float32_mib:.0f} MiB)")  # fmt: skip
    runs = {"iadbench": measure("iadbench", run_iadbench, maps, masks, scores)}
    if "anomalib" not in args.skip:
        runs["anomalib"] = measure("anomalib", run_anomalib, maps, masks, scores)
    if "sklearn" not in args.skip:
        runs["sklearn"] = measure("sklearn", run_sklearn, maps, masks, scores)
    base = runs["iadbench"]
    summary = {
        "maps": args.maps, "size": args.size, "pixels": int(maps.size), "anomalous_pixel_fraction": float(masks.mean()),
        "float32_mib": float32_mib, "baseline": "iadbench",
        "seconds": {k: round(v["seconds"], 3) for k, v in runs.items()},
        "peak_extra_mib": {k: round(v["peak_extra_mib"], 1) for k, v in runs.items()},
        "speedup_vs": {k: round(v["seconds"] / base["seconds"], 2) for k, v in runs.items() if k != "iadbench"},
        "iadbench_peak_over_float32": round(base["peak_extra_mib"] / float32_mib, 2),
        "values": {k: v["result"] for k, v in runs.items()},
    }  # fmt: skip
    for k, ratio in summary["speedup_vs"].items():
        goal = 10 if k == "anomalib" else 3
        print(f"{k} / iadbench time: x{ratio:.1f} (goal >= {goal}x: {'met' if ratio >= goal else 'NOT met'})")
    ratio = summary["iadbench_peak_over_float32"]
    verdict = "met" if ratio <= 2 else "NOT met"
    print(f"iadbench peak extra memory / maps float32 size: {ratio:.2f} (goal <= 2: {verdict})")
    v = summary["values"]
    if "anomalib" in v:
        for key in ("pixel_auroc", "pixel_ap", "aupro", "image_auroc"):
            print(f"  {key:12s} iadbench {v['iadbench'][key]:.6f}  anomalib {v['anomalib'][key]:.6f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1, default=float) + "\n")
    print(f"wrote {args.out}")
    if args.readme:
        render(summary)


def render(summary: dict | None = None) -> None:
    """The README's metric-speed block, from ``reports/bench/metrics_speed.json``."""
    from readme_blocks import PROJECT, replace_block

    s = summary or json.loads((PROJECT / "reports/bench/metrics_speed.json").read_text())
    lines = [
        f"From `reports/bench/metrics_speed.json` (`python benchmarks/metrics_speed.py --readme`: {s['maps']} maps of "
        f"{s['size']}×{s['size']}, {100 * s['anomalous_pixel_fraction']:.1f} % anomalous pixels, float32 size "
        f"{s['float32_mib']:.0f} MiB; one run, 2 CPU cores; baseline = iadbench):",
        "",
        "| contender | seconds | time / iadbench | peak extra memory (MiB) | peak / maps float32 size |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, seconds in s["seconds"].items():
        ratio = seconds / s["seconds"]["iadbench"]
        peak = s["peak_extra_mib"][name]
        lines.append(f"| {name} | {seconds:.2f} | ×{ratio:.1f} | {peak:.0f} | {peak / s['float32_mib']:.2f} |")
    replace_block("bench-metrics", lines)


if __name__ == "__main__":
    main()
