"""What the fidelity corrections change in the numbers, measured against a named baseline in the same run.

python benchmarks/fidelity.py tile [--data ../shared/data/magnetic_tile] [--model padim] [--size 256]
    The real magnetic tile through iadbench's own train / predict / thresholds / evaluate verbs, twice:
    baseline "before" = the package weights in timm's efficientnet_lite0 with anomalib's own interpolation and
    normalisation (what iadbench ran before); "placement only" = the same weights and architecture with grid
    placement; "after" = tf_efficientnet_lite0 (the weights' own padding) with grid placement. Reports pixel
    AUROC, AUPRO@0.3, mean IoU at IoU-T and image AUROC, and the same pixel metrics from float32 maps against the
    stored float16 ones.
python benchmarks/fidelity.py batch [--model cflow] [--product nut] [--sizes 1 16 64]
    In this repository (after `dvc repro`): predict the trained cell again at several batch sizes and report the
    test image AUROC of each, with the corrections on (iadbench) and off (anomalib's own maps).
python benchmarks/fidelity.py render
    Rewrite docs/fidelity.md's tables from reports/bench/fidelity_*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np
import yaml
from models_bench import test_masks, tile_repo
from readme_blocks import PROJECT, replace_block, save_result

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DOC = PROJECT / "docs/fidelity.md"
VARIANTS = (("before", False, True), ("placement only", True, True), ("after", True, False))


def _pixel_metrics(maps: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    from iadbench.metrics.curves import auroc
    from iadbench.metrics.maps import aupro_from_counts, pixel_curves

    curves = pixel_curves(maps, masks)  # every test image: the comparison is float32 vs float16 on the same set
    return {"pixel_auroc": auroc(curves.pixels), "aupro": aupro_from_counts(curves.pro, 0.3)}


def bench_tile(args: argparse.Namespace) -> dict:
    from iadbench.cli import main as iadbench
    from iadbench.models.weights import package_weights_file
    from iadbench.stages.predict import predict_cell
    from iadbench.stages.train import train_cell

    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["data"].update(dataset="magnetic_tile", products=["tile"], image_size=args.size)
    params["models"] = [args.model]
    tile_repo(params, args.data)
    results = {}
    shipped = Path("params.yaml").read_text()
    for variant, corrections, symmetric in VARIANTS:
        p = yaml.safe_load(shipped)
        if symmetric:  # the same tensors in the symmetric-padding twin, as a file (package refuses that pairing)
            p["backbone"].update(name="efficientnet_lite0", weights=str(package_weights_file()))
        Path("params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
        meta = train_cell(p, args.model, "tile", progress=False, corrections=corrections)
        raw = Path(f"raw_{variant.replace(' ', '_')}.npy")
        predict_cell(p, args.model, "tile", progress=False, corrections=corrections, float32_maps=raw)
        for verb in ("thresholds", "evaluate"):
            assert iadbench([verb, "--model", args.model, "--product", "tile"]) == 0, verb
        cell = json.loads(Path(f"reports/evaluate/{args.model}/tile.json").read_text())
        row = {
            "backbone": p["backbone"]["name"], "corrections": corrections, "image_auroc": cell["image"]["auroc"],
            "pixel_auroc": cell["pixel"]["auroc"], "aupro": cell["pixel"]["aupro"],
            "mean_iou_iou_t": cell["pixel"]["at"]["iou"]["mean_iou"], "fit_seconds": meta["fit_seconds"],
        }  # fmt: skip
        test, _, masks = test_masks(args.model, "tile", args.size)
        stored = np.load(f"data/maps/{args.model}/tile.npz")["maps"][test]
        full = np.load(raw)[test]
        row["float16"] = _pixel_metrics(stored, masks)
        row["float32"] = _pixel_metrics(full, masks)
        row["raw_map_range"] = [float(full.min()), float(full.max())]
        results[variant] = row
        print(variant, json.dumps(row), flush=True)
    return {"model": args.model, "image_size": args.size, "dataset": "magnetic_tile", **results}


def bench_batch(args: argparse.Namespace) -> dict:
    import pandas as pd

    from iadbench.metrics.counts import confusion_counts
    from iadbench.metrics.curves import auroc
    from iadbench.stages.predict import predict_cell
    from iadbench.stages.train import train_cell

    os.chdir(PROJECT)
    params = yaml.safe_load(Path("params.yaml").read_text())
    work = Path("models") / args.model / args.product
    backup = Path(f"/tmp/iadbench-batch-{args.model}-{args.product}")
    shutil.rmtree(backup, ignore_errors=True)
    shutil.copytree(work, backup)
    maps_file = Path(f"data/maps/{args.model}/{args.product}.npz")
    report_file = Path(f"reports/predict/{args.model}/{args.product}.json")
    saved = {maps_file: maps_file.read_bytes(), report_file: report_file.read_bytes()}
    labels = pd.read_csv("data/assignment.csv", keep_default_na=False).set_index("image_id")["label"]
    results: dict[str, dict[str, float]] = {}
    try:
        for variant, corrections in (("anomalib", False), ("iadbench", True)):
            if not corrections:  # anomalib's own CFLOW map generator: the cell must be trained without the fix
                train_cell(params, args.model, args.product, progress=False, corrections=False)
            else:
                shutil.rmtree(work)
                shutil.copytree(backup, work)
            results[variant] = {}
            for size in args.sizes:
                p = {**params, "train": {**params["train"], "batch_size": size}}
                predict_cell(p, args.model, args.product, progress=False, corrections=corrections)
                data = np.load(maps_file)
                test = data["split"] == "test"
                y = (labels.loc[data["image_id"][test]] == "anomalous").to_numpy()
                results[variant][str(size)] = round(auroc(confusion_counts(data["scores"][test], y)), 4)
            print(args.model, variant, results[variant], flush=True)
    finally:  # leave the repository's cell and maps exactly as dvc repro wrote them
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(backup, work)
        for path, content in saved.items():
            path.write_bytes(content)
    return {"model": args.model, "product": args.product, "image_auroc_by_batch_size": results}


def render() -> None:
    bench = PROJECT / "reports/bench"
    tile_path, batch_path = bench / "fidelity_tile.json", bench / "fidelity_batch.json"
    if tile_path.is_file():
        r = json.loads(tile_path.read_text())
        lines = [
            f"From `reports/bench/fidelity_tile.json` (`python benchmarks/fidelity.py tile`; {r['model']} at "
            f"{r['image_size']} px on the magnetic tile's test split, through iadbench's own verbs):",
            "",
            "| variant | backbone | image AUROC | pixel AUROC | AUPRO@0.3 | mean IoU at IoU-T |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for variant, *_ in VARIANTS:
            v = r[variant]
            lines.append(f"| {variant} | {v['backbone']} | {v['image_auroc']:.3f} | {v['pixel_auroc']:.3f} | "
                         f"{v['aupro']:.3f} | {v['mean_iou_iou_t']:.3f} |")  # fmt: skip
        lines += ["", "| maps stored as | pixel AUROC | AUPRO@0.3 |", "| --- | --- | --- |"]
        for dtype in ("float32", "float16"):
            v = r["after"][dtype]
            lines.append(f"| {dtype} | {v['pixel_auroc']:.6f} | {v['aupro']:.6f} |")
        replace_block("bench-fidelity-tile", lines, DOC)
    if batch_path.is_file():
        r = json.loads(batch_path.read_text())
        rows = r["image_auroc_by_batch_size"]
        sizes = list(rows["iadbench"])
        lines = [
            f"From `reports/bench/fidelity_batch.json` (`python benchmarks/fidelity.py batch`; the default "
            f"`{r['model']}/{r['product']}` cell, test image AUROC when predicted at each batch size):",
            "",
            "| maps | " + " | ".join(f"batch {s}" for s in sizes) + " |",
            "| --- | " + " | ".join("---" for _ in sizes) + " |",
        ]
        for variant in ("anomalib", "iadbench"):
            lines.append(f"| {variant} | " + " | ".join(f"{rows[variant][s]:.3f}" for s in sizes) + " |")
        replace_block("bench-fidelity-batch", lines, DOC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="bench", required=True)
    t = sub.add_parser("tile")
    t.add_argument("--data", default=str(PROJECT.parent / "shared/data/magnetic_tile"))
    t.add_argument("--model", default="padim")
    t.add_argument("--size", type=int, default=256)
    b = sub.add_parser("batch")
    b.add_argument("--model", default="cflow")
    b.add_argument("--product", default="nut")
    b.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 64])
    sub.add_parser("render")
    args = parser.parse_args()
    if args.bench == "render":
        render()
        return
    here = Path.cwd()
    result = bench_tile(args) if args.bench == "tile" else bench_batch(args)
    out = save_result(f"fidelity_{args.bench}", result, here, Path.cwd() if args.bench == "tile" else None)
    render()
    print(f"-> {out}")


if __name__ == "__main__":
    main()
