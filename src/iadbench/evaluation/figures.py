"""Figures of the report (PNG, matplotlib's Agg backend: no display, no network).

- threshold curves of a cell on its validation split — ROC, PR and IoU vs FPR, pixel and image level — with the
  fitted thresholds marked (as Fig. 4 of "Rethinking Benchmarking Framework…");
- overlays of the best and worst test image per defect category at the headline rule: image, ground truth, score
  map, predicted mask, with IoU / F1 / FPR (as its Fig. 5);
- mean IoU per defect category and model with its bootstrap interval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from iadbench.metrics.rules import RULE_TABLE  # noqa: E402

PNG = {"dpi": 90, "metadata": {"Software": None}}  # no matplotlib version stamp: same input, same bytes


def threshold_curves(curves: pd.DataFrame, fitted: dict[str, Any], title: str, out: Path) -> Path:
    """ROC, PR and IoU-vs-FPR curves per level with each fitted threshold marked."""
    levels = [lv for lv in ("pixel", "image") if lv in set(curves["level"])]
    fig, axes = plt.subplots(len(levels), 3, figsize=(11, 3.4 * len(levels)), squeeze=False)
    for row, level in zip(axes, levels, strict=True):
        c = curves[curves["level"] == level].sort_values("threshold", ascending=False)
        panels = (("fpr", "tpr", "ROC"), ("tpr", "precision", "PR"), ("fpr", "iou", "IoU vs FPR"))
        for ax, (x, y, name) in zip(row, panels, strict=True):
            ax.plot(c[x], c[y], color="0.3", lw=1.2)
            for rule, fit in (fitted.get(level) or {}).items():
                spec = RULE_TABLE.get(rule)
                marker, color = (spec.marker, spec.color) if spec else ("d", "k")
                fx, fy = fit[x], fit[y]  # the fitted point's own validation rates (null when undefined)
                if fx is None or fy is None:
                    continue
                ax.plot([fx], [fy], marker=marker, color=color, ms=8, ls="", label=f"{rule} t={fit['threshold']:.3g}")
            ax.set(xlabel={"fpr": "FPR", "tpr": "recall (TPR)"}[x], ylabel={"tpr": "TPR", "precision": "precision",
                   "iou": "IoU"}[y], title=f"{level}: {name}", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))  # fmt: skip
            if name == "IoU vs FPR" and level == "pixel":
                ax.set_xscale("symlog", linthresh=1e-3)
                ax.set_xlim(0, 1.02)
            ax.grid(alpha=0.3)
        if row[0].get_legend_handles_labels()[0]:  # a level with no fitted rule has nothing to name
            row[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, **PNG)
    plt.close(fig)
    return out


def category_bars(categories: pd.DataFrame, method: str, out: Path) -> Path:
    """Mean IoU per defect category (and all images) per model at ``method``, with bootstrap intervals."""
    rows = categories[(categories["rule"] == method) & categories["kind"].isin(["defect_category", "all"])]
    groups = list(dict.fromkeys(rows["group"]))
    models = list(dict.fromkeys(rows["model"]))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups)), 3.6))
    width = 0.8 / max(1, len(models))
    for i, model in enumerate(models):
        r = rows[rows["model"] == model].set_index("group").reindex(groups)
        y = r["mean_iou"].to_numpy(float)
        err = np.vstack([y - r["mean_iou_lo"].to_numpy(float), r["mean_iou_hi"].to_numpy(float) - y])
        x = np.arange(len(groups)) + (i - (len(models) - 1) / 2) * width
        ax.bar(x, np.nan_to_num(y), width, yerr=np.nan_to_num(np.abs(err)), capsize=2, label=model)
        for xi, yi in zip(x, y, strict=True):
            if not np.isfinite(yi):
                ax.text(xi, 0.005, "absent", rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set(ylabel=f"mean per-image IoU ({method.upper()}-T)", title="Test mean IoU per defect category (95 % CI)")
    ax.legend(fontsize=8, ncols=min(5, len(models)))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, **PNG)
    plt.close(fig)
    return out


def overlays(panels: list[dict[str, Any]], title: str, out: Path) -> Path:
    """One row per panel: image, ground truth, score map, predicted mask (``panel`` keys: image, mask, map,
    threshold, label, iou, f1, fpr).
    """
    # no ticks on the image axes (they are hidden anyway): matplotlib otherwise builds and measures every tick of 40
    # axes for the layout; the PNG is byte-identical and the figure ~30 % faster (profiled on the default run)
    fig, axes = plt.subplots(len(panels), 4, figsize=(9, 2.4 * len(panels)), squeeze=False,
                             subplot_kw={"xticks": [], "yticks": []})  # fmt: skip
    for row, p in zip(axes, panels, strict=True):
        image = p["image"]  # the model's input itself (H, W, 3 uint8), drifted when the test images drifted
        predicted = p["map"] >= p["threshold"]
        row[0].imshow(image)
        row[0].set_title(p["label"], fontsize=8, loc="left")
        row[1].imshow(image)
        row[1].imshow(np.ma.masked_where(~p["mask"], p["mask"]), cmap="autumn", alpha=0.6)
        row[1].set_title("ground truth", fontsize=8)
        shown = row[2].imshow(p["map"].astype(np.float32), cmap="jet")
        row[2].contour(p["map"] >= p["threshold"], levels=[0.5], colors="white", linewidths=0.6)
        fig.colorbar(shown, ax=row[2], fraction=0.046)
        row[2].set_title(f"score map (t={p['threshold']:.3g})", fontsize=8)
        row[3].imshow(image)
        row[3].imshow(np.ma.masked_where(~predicted, predicted), cmap="cool", alpha=0.6)
        row[3].set_title(f"IoU {p['iou']:.2f}  F1 {p['f1']:.2f}  FPR {p['fpr']:.3f}", fontsize=8)
        for ax in row:
            ax.set_axis_off()
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, **{**PNG, "dpi": 60})
    plt.close(fig)
    return out


def drift_examples(examples: list[dict[str, Any]], title: str, out: Path) -> Path:
    """Test images before and after their drift plan, the ground truth outlined on both (it moves with geometry).

    Each example holds ``clean`` and ``drifted`` (H, W, 3 floats in [0, 1]), ``mask`` and ``drifted_mask`` (bool)
    and ``label`` (the image id and the plan).
    """
    fig, axes = plt.subplots(len(examples), 2, figsize=(6.4, 3.0 * len(examples)), squeeze=False)
    for row, ex in zip(axes, examples, strict=True):
        for ax, (image, mask, name) in zip(
            row, ((ex["clean"], ex["mask"], "clean"), (ex["drifted"], ex["drifted_mask"], "drifted")), strict=True
        ):
            ax.imshow(image)
            if mask.any():
                ax.contour(mask.astype(float), levels=[0.5], colors="red", linewidths=0.8)
            ax.set_title(name if name == "clean" else ex["label"], fontsize=7)
            ax.axis("off")
        row[0].text(-0.05, 0.5, ex["image_id"], transform=row[0].transAxes, rotation=90, va="center", ha="right",
                    fontsize=7)  # fmt: skip
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, **PNG)
    plt.close(fig)
    return out
