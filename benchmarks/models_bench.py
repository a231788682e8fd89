"""Model-stage measurements, printed as ratios against a named baseline run in the same process on the same data.

    python benchmarks/models_bench.py weights  [--data ../shared/data/magnetic_tile]
        PaDiM and PatchCore with backbone.weights=package versus none (random) on the real magnetic-tile data:
        image and pixel AUROC on the test split. Baseline: the same model with random weights.
    python benchmarks/models_bench.py overhead [--model padim]
        fit + predict through iadbench (split-file dataset, DVCLive, state saved and reloaded, maps written)
        versus the bare anomalib Engine with anomalib's Folder datamodule on the same images and model.
        Baseline: the bare Engine.

Results are also written to reports/bench/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from readme_blocks import replace_block, save_result

PROJECT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _repo(params: dict) -> Path:
    work = Path(tempfile.mkdtemp(prefix="iadbench-bench-"))
    os.chdir(work)
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], check=True)
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "add", "-A"], check=True)
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@iadbench.invalid"]
    subprocess.run(["git", *identity, "commit", "-qm", "bench"], check=True)
    return work


STAGE_ENV = {"MALLOC_MMAP_THRESHOLD_": "4194304", "HF_HUB_OFFLINE": "1"}  # the train/predict stages' cmd (dvc.yaml)


def synthetic_repo(params: dict) -> Path:
    """A scratch repository (cwd) with ``params``' synthetic data generated and its manifest, categories and split."""
    from iadbench.cli import main as iadbench

    work = _repo(params)
    for verb in (["--quiet", "synthesize"], ["--quiet", "manifest"], ["categories"], ["split"]):
        assert iadbench(verb) == 0, verb
    return work


def _base_params() -> dict:
    return yaml.safe_load((PROJECT / "params.yaml").read_text())


def test_masks(model: str, product: str, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(test rows of the maps file, their labels, their masks at ``size``) in the maps file's order."""
    import pandas as pd

    data = np.load(f"data/maps/{model}/{product}.npz")
    split = pd.read_csv("data/split.csv", keep_default_na=False).set_index("image_id")
    test = data["split"] == "test"
    ids = data["image_id"][test]
    labels = (split.loc[ids, "label"] == "anomalous").to_numpy()
    masks = []
    for image_id in ids:
        path = split.loc[image_id, "mask_path"]
        if path:
            with Image.open(path) as im:
                masks.append(np.asarray(im.convert("L").resize((size, size), Image.Resampling.NEAREST)) > 0)
        else:
            masks.append(np.zeros((size, size), bool))
    return test, labels, np.stack(masks)


def _aurocs(model: str, product: str, size: int) -> tuple[float, float]:
    from sklearn.metrics import roc_auc_score

    data = np.load(f"data/maps/{model}/{product}.npz")
    test, labels, masks = test_masks(model, product, size)
    image_auroc = roc_auc_score(labels, data["scores"][test])
    pixel_auroc = roc_auc_score(masks.ravel(), data["maps"][test].astype(np.float32).ravel())
    return float(image_auroc), float(pixel_auroc)


def tile_repo(params: dict, data: str) -> None:
    """A scratch repository (cwd) with the magnetic tile imported, per defect type mapped, manifest/categories/split."""
    from iadbench.cli import main as iadbench

    _repo(params)
    defect_map = "blowhole=structural,break=structural,crack=structural,fray=structural,uneven=surface"
    source = str(Path(data).resolve())
    iadbench(["import", source, "--name", "magnetic_tile", "--background", "without", "--defect-map", defect_map])
    for verb in (["--quiet", "manifest"], ["categories"], ["split"]):
        assert iadbench(verb) == 0, verb


def bench_weights(args: argparse.Namespace) -> dict:
    from iadbench.stages.predict import predict_cell
    from iadbench.stages.train import train_cell

    params = _base_params()
    params["data"].update(dataset="magnetic_tile", products=["tile"])
    tile_repo(params, args.data)
    results = {}
    for model, size in (("padim", 256), ("patchcore", 128)):
        for weights in ("package", "none"):
            p = yaml.safe_load(Path("params.yaml").read_text())
            p["data"]["image_size"] = size
            p["backbone"]["weights"] = weights
            p["model_options"]["patchcore"]["coreset_sampling_ratio"] = args.coreset
            start = time.perf_counter()
            meta = train_cell(p, model, "tile", progress=False)
            report = predict_cell(p, model, "tile", progress=False)
            image_auroc, pixel_auroc = _aurocs(model, "tile", size)
            results[f"{model}/{weights}"] = {
                "image_size": size, "image_auroc": round(image_auroc, 4), "pixel_auroc": round(pixel_auroc, 4),
                "fit_seconds": meta["fit_seconds"], "images_per_second": report["images_per_second"],
                "seconds": round(time.perf_counter() - start, 1), "weights_sha256": meta["weights_sha256"],
            }  # fmt: skip
            print(model, weights, results[f"{model}/{weights}"], flush=True)
    for model in ("padim", "patchcore"):
        pre, rnd = results[f"{model}/package"], results[f"{model}/none"]
        for metric in ("image_auroc", "pixel_auroc"):
            print(f"{model} {metric}: package {pre[metric]:.3f} vs random {rnd[metric]:.3f} "
                  f"(+{pre[metric] - rnd[metric]:.3f}, x{pre[metric] / rnd[metric]:.2f})")  # fmt: skip
    return results


def bench_overhead(args: argparse.Namespace) -> dict:
    import torch
    from anomalib.data import Folder
    from anomalib.engine import Engine

    from iadbench.models.quiet import quiet_libraries
    from iadbench.models.registry import build_model
    from iadbench.models.run import model_config
    from iadbench.stages.predict import predict_cell
    from iadbench.stages.train import train_cell

    quiet_libraries()
    params = _base_params()
    params["data"]["products"] = ["nut"]
    params["synthesize"]["products"] = ["nut"]
    synthetic_repo(params)
    root = Path("data/raw/synthetic/nut")
    abnormal = sorted(p.name for p in (root / "test").iterdir() if p.name != "good")
    timings: dict[str, list[float]] = {"iadbench": [], "bare_engine": []}
    timings["iadbench_deterministic_off"] = []
    loose = {**params, "train": {**params["train"], "deterministic": False}}
    for _ in range(args.repeats):
        for key, p in (("iadbench", params), ("iadbench_deterministic_off", loose)):
            torch.manual_seed(0)
            start = time.perf_counter()
            train_cell(p, args.model, "nut", progress=False)
            predict_cell(p, args.model, "nut", progress=False)
            timings[key].append(time.perf_counter() - start)

        torch.manual_seed(0)
        start = time.perf_counter()
        model, *_ = build_model(model_config(params, args.model))
        datamodule = Folder(
            name="nut", root=root, normal_dir="train/good", abnormal_dir=[f"test/{d}" for d in abnormal],
            normal_test_dir="test/good", train_batch_size=params["train"]["batch_size"],
            eval_batch_size=params["train"]["batch_size"], num_workers=0, test_split_mode="from_dir",
            val_split_mode="none",
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            engine = Engine(accelerator="auto", devices=1, max_epochs=params["train"]["epochs"], logger=False,
                            default_root_dir=tmp, enable_progress_bar=False)  # fmt: skip
            datamodule.setup()
            engine.fit(model, train_dataloaders=datamodule.train_dataloader())
            predictions = engine.predict(model, dataloaders=datamodule.test_dataloader())
        assert sum(len(b.pred_score) for b in predictions) == 56
        timings["bare_engine"].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in timings.items()}
    ratio = best["iadbench"] / best["bare_engine"]
    loose_ratio = best["iadbench_deterministic_off"] / best["bare_engine"]
    print(f"{args.model}: iadbench {best['iadbench']:.2f} s vs bare Engine {best['bare_engine']:.2f} s "
          f"-> x{ratio:.3f} ({(ratio - 1) * 100:+.1f} %), best of {args.repeats}")  # fmt: skip
    print(f"{args.model}: iadbench with train.deterministic=false {best['iadbench_deterministic_off']:.2f} s "
          f"-> x{loose_ratio:.3f} ({(loose_ratio - 1) * 100:+.1f} %) (the bare Engine's flag)")  # fmt: skip
    return {
        "model": args.model, "timings": timings, "best": best, "ratio_vs_bare_engine": round(ratio, 4),
        "ratio_vs_bare_engine_deterministic_off": round(loose_ratio, 4),
    }  # fmt: skip


def render() -> None:
    """Write the README's benchmark tables from reports/bench/*.json (numbers are never typed by hand)."""
    bench = PROJECT / "reports/bench"
    weights = json.loads((bench / "weights.json").read_text())
    lines = [
        "From `reports/bench/weights.json` (`python benchmarks/models_bench.py weights`; magnetic tile, test split "
        "of iadbench's split, image score = model's own; PatchCore with a 1 % coreset to fit CPU time):",
        "",
        "| model | input px | weights | image AUROC | pixel AUROC | fit s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, r in weights.items():
        model, source = key.split("/")
        lines.append(f"| {model} | {r['image_size']} | {source} | {r['image_auroc']:.3f} | {r['pixel_auroc']:.3f} | "
                     f"{r['fit_seconds']:.0f} |")  # fmt: skip
    replace_block("bench-weights", lines)
    rows = []
    for path in sorted(bench.glob("overhead_*.json")):
        r = json.loads(path.read_text())
        best = r["best"]
        rows.append(f"| {r['model']} | {best['bare_engine']:.2f} | {best['iadbench']:.2f} | "
                    f"x{r['ratio_vs_bare_engine']:.3f} | "
                    f"{best.get('iadbench_deterministic_off', float('nan')):.2f} | "
                    f"x{r.get('ratio_vs_bare_engine_deterministic_off', float('nan')):.3f} |")  # fmt: skip
    replace_block("bench-overhead", [
        "From `reports/bench/overhead_*.json` (`python benchmarks/models_bench.py overhead --model M`; fit + predict "
        "of the default synthetic `nut`, best of 3, seconds):",
        "",
        "| model | bare anomalib Engine | iadbench | ratio | iadbench, train.deterministic=false | ratio |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="bench", required=True)
    w = sub.add_parser("weights")
    w.add_argument("--data", default=str(PROJECT.parent / "shared/data/magnetic_tile"))
    w.add_argument("--coreset", type=float, default=0.01, help="PatchCore coreset ratio (CPU time)")
    o = sub.add_parser("overhead")
    o.add_argument("--model", default="padim")
    o.add_argument("--repeats", type=int, default=3)
    sub.add_parser("render", help="rewrite the README's benchmark tables from reports/bench/*.json")
    args = parser.parse_args()
    if args.bench == "render":
        render()
        return
    here = Path.cwd()
    result = bench_weights(args) if args.bench == "weights" else bench_overhead(args)
    name = f"{args.bench}{'' if args.bench == 'weights' else '_' + args.model}"
    out = save_result(name, result, here, Path.cwd())
    render()
    print(f"-> {out}")


if __name__ == "__main__":
    main()
