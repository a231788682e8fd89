"""SegAD on the real magnetic tile: detector versus detector + SegAD, measured in the same run on the same split.

python benchmarks/segad.py tile [--data ../shared/data/magnetic_tile] [--model padim] [--size 128]
                                 [--shots 0 8] [--seeds 3]
    Imports the tile into a scratch repository and, per (shots, seed), runs iadbench's own verbs: split (the BRF
    part and the shots depend on segad.seed), train and predict the detector on its part of train/good, SegAD's
    features and BRF, then thresholds and evaluate for both. Baseline: the detector of the same run (trained on the
    same reduced train set). Reports image AUROC and FPR@95TPR (mean ± std over seeds) and the time SegAD adds
    next to the detector's. The magnetic tile ships no segmentation: grid segments (segad.segments: grid).
    --name NAME writes reports/bench/NAME.json instead and leaves the docs alone (a side check, e.g. many shots).
python benchmarks/segad.py render
    Rewrite docs/segad.md's magnetic-tile table from reports/bench/segad_tile.json.

Results are written to reports/bench/segad_tile.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import yaml
from models_bench import tile_repo
from readme_blocks import PROJECT, replace_block, save_result

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DOC = PROJECT / "docs/segad.md"


def bench_tile(args: argparse.Namespace) -> dict:
    from iadbench import resources
    from iadbench.cli import main as iadbench

    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["data"].update(dataset="magnetic_tile", products=["tile"], image_size=args.size)
    params["models"] = [args.model]
    home = Path.cwd()
    tile_repo(params, args.data)
    scratch = Path.cwd()
    runs = []
    setup = f"{args.model}+segad"
    for shots in args.shots:
        for seed in range(args.seeds):
            p = yaml.safe_load(Path("params.yaml").read_text())
            p["train"]["seed"] = seed
            p["segad"].update(detectors=[args.model], shots=shots, seed=seed, detector_score=args.detector_score)
            Path("params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
            cell = ["--product", "tile"]
            steps = [["split"], ["train", "--model", args.model, *cell], ["predict", "--model", args.model, *cell]]
            steps += [["segad-features", "--detector", args.model, *cell], ["segad", "--setup", setup, *cell]]
            for model in (args.model, setup):
                steps += [["thresholds", "--model", model, *cell], ["evaluate", "--model", model, *cell]]
            start = time.perf_counter()
            for step in steps:
                assert iadbench(["--quiet", *step]) == 0, step
            run = {"shots": shots, "seed": seed, "seconds": round(time.perf_counter() - start, 1)}
            for model in (args.model, setup):
                image = json.loads(Path(f"reports/evaluate/{model}/tile.json").read_text())["image"]
                run[model] = {"image_auroc": image["auroc"], "fpr_at_95tpr": image["fpr_at_95tpr"]}
            predict = json.loads(Path(f"reports/predict/{setup}/tile.json").read_text())
            features = resources.read("segad_features", args.model, "tile")
            run["times"] = {
                "detector_fit_seconds": resources.read("train", args.model, "tile")["fit_seconds"],
                "segad_feature_seconds": round(features["detector_seconds"] + features["feature_seconds"], 3),
                "brf_fit_seconds": resources.read("segad", setup, "tile")["fit_seconds"],
            }  # fmt: skip
            run["brf"] = {k: predict[k] for k in ("n_brf_good", "n_brf_anomalous", "n_synthetic", "mode")}
            print(json.dumps(run), flush=True)
            runs.append(run)
    result = {"dataset": "magnetic_tile", "model": args.model, "setup": setup, "image_size": args.size,
              "detector_score": args.detector_score,
              "segments": params["segad"]["segments"], "grid": params["segad"]["grid"], "runs": runs}  # fmt: skip
    save_result(args.name, result, home, scratch)
    return result


def _mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}" if values else "–"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _rows(r: dict, suffix: str = "") -> list[str]:
    model, setup = r["model"], r["setup"]
    lines = []
    for shots in sorted({run["shots"] for run in r["runs"]}):
        rs = [run for run in r["runs"] if run["shots"] == shots]
        cells = [_mean_std([x[m][k] for x in rs]) for k in ("image_auroc", "fpr_at_95tpr") for m in (model, setup)]
        times = [statistics.mean(x["times"][k] for x in rs)
                 for k in ("detector_fit_seconds", "segad_feature_seconds", "brf_fit_seconds")]  # fmt: skip
        label = ("0 (one-class)" if shots == 0 else str(shots)) + suffix
        lines.append(f"| {label} | {len(rs)} | " + " | ".join(cells) + " | " + " | ".join(f"{t:.1f}" for t in times)
                     + " |")  # fmt: skip
    return lines


def render() -> None:
    path = PROJECT / "reports/bench/segad_tile.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `python benchmarks/segad.py tile` first")
    r = json.loads(path.read_text())
    model = r["model"]
    lines = [
        f"From `reports/bench/segad_tile.json` (`python benchmarks/segad.py tile`; {model} at {r['image_size']} px, "
        f"{r['segments']} segments K = {r['grid']}, mean ± std over seeds; test split, thresholds not involved):",
        "",
        "| shots | seeds | image AUROC: detector | image AUROC: + SegAD | FPR@95TPR: detector | FPR@95TPR: + SegAD "
        "| detector fit (s) | SegAD features (s) | BRF fit (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += _rows(r)
    extra = PROJECT / "reports/bench/segad_tile_detector_score.json"
    if extra.is_file():  # `--detector-score --name segad_tile_detector_score`: the authors' extra feature
        lines += _rows(json.loads(extra.read_text()), " + detector score")
    replace_block("bench-segad-tile", lines, DOC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="bench", required=True)
    t = sub.add_parser("tile")
    t.add_argument("--data", default=str(PROJECT.parent / "shared/data/magnetic_tile"))
    t.add_argument("--model", default="padim")
    t.add_argument("--size", type=int, default=128)
    t.add_argument("--shots", type=int, nargs="+", default=[0, 8])
    t.add_argument("--seeds", type=int, default=3)
    t.add_argument("--detector-score", action="store_true", help="segad.detector_score: true (authors' code)")
    t.add_argument("--name", default="segad_tile", help="result file reports/bench/NAME.json (docs: segad_tile)")
    sub.add_parser("render")
    args = parser.parse_args()
    if args.bench == "tile":
        bench_tile(args)
        if args.name != "segad_tile":
            return
    render()


if __name__ == "__main__":
    main()
