"""Exported detectors at the line: parity with the pipeline and speed per format, against the PyTorch path.

python benchmarks/deploy_speed.py [--product nut] [--rule iou] [--repeats 3] [--threads 2]
    In the built workspace (after `dvc repro`): export every model of params.yaml for the product in every format
    (torch, onnx, openvino) to a scratch folder, then, on the product's test images,

    - parity: each format's maps (float16, as stored) against data/maps/<model>/<product>.npz, its verdicts
      against the evaluate stage's image predictions at the rule, its masks against the stored maps
      thresholded at the rule's pixel threshold;
    - speed: per image, preprocessing + graph, one image at a time, ``--repeats`` passes after 3 warm-up
      images; images/s, latency p50 and p95. Baseline: "pytorch (eager)", iadbench's own module run eagerly
      under grid placement, one image at a time (what the predict stage computes per image).

    Writes reports/bench/deploy.json and the README's deploy blocks. Speeds are of this machine at that time
    (one run, ratios against the baseline of the same run); parity figures are exact counts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from readme_blocks import PROJECT, replace_block, save_result

os.environ.setdefault("HF_HUB_OFFLINE", "1")
FORMATS = ("torch", "onnx", "openvino")
BASELINE = "pytorch (eager)"


def _eager_runner(params: dict, model: str, product: str):
    """iadbench's own module, eager, under grid placement with the cell's shifts (batch of one)."""
    import torch

    from iadbench.deploy.export import trained_module
    from iadbench.deploy.graph import DeployedDetector, normalisation
    from iadbench.models.geometry import GridPlacement, parse_shifts

    module, cfg, meta = trained_module(params, model, product)
    mean, std = normalisation(module, cfg.image_size)
    detector = DeployedDetector(module.model, mean, std, cfg.image_size).eval()
    shifts = parse_shifts(meta.get("receptive_field_shifts", {}))

    def run(x: np.ndarray) -> tuple[np.ndarray, float]:
        with torch.no_grad(), GridPlacement((cfg.image_size, cfg.image_size), shifts):
            amap, score = detector(torch.from_numpy(x))
        return amap[0].numpy(), float(score[0])

    return run


def _time(runner, paths: list[str], spec: dict, repeats: int) -> dict[str, float]:
    from iadbench.deploy.bundle import prepare

    for path in paths[:3]:
        runner(prepare(path, spec)[0])
    latencies = []
    for _ in range(repeats):
        for path in paths:
            start = time.perf_counter()
            runner(prepare(path, spec)[0])
            latencies.append((time.perf_counter() - start) * 1000.0)
    return {"images_per_second": round(1000.0 / statistics.fmean(latencies), 2),
            "p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p95_ms": round(float(np.percentile(latencies, 95)), 2), "n": len(latencies)}  # fmt: skip


def _parity(runner, model: str, product: str, rule: str, spec: dict, paths: list[str], ids: list[str]) -> dict:
    from iadbench.deploy.bundle import decide, float16_map, prepare

    stored = np.load(f"data/maps/{model}/{product}.npz")
    index = {image_id: k for k, image_id in enumerate(stored["image_id"])}
    rows = pd.read_csv(f"reports/evaluate/{model}/{product}.csv").set_index("image_id")
    fitted = json.loads(Path(f"reports/thresholds/{model}/{product}.json").read_text())
    thresholds = {level: {"threshold": fitted[level][rule]["threshold"]} for level in ("pixel", "image")}
    worst, worst_steps, differing, verdicts, mask_equal, pixels = 0.0, 0.0, 0, 0, 0, 0
    for path, image_id in zip(paths, ids, strict=True):
        amap, score = runner(prepare(path, spec)[0])
        ours = float16_map(amap).astype(np.float64)
        theirs = stored["maps"][index[image_id]].astype(np.float64)
        gap = np.abs(ours - theirs)
        step = np.spacing(np.maximum(np.abs(ours), np.abs(theirs)).astype(np.float16)).astype(np.float64)
        worst, worst_steps = max(worst, float(gap.max())), max(worst_steps, float((gap / step).max()))
        differing += int((gap > 0).sum())
        mask, verdict = decide(amap, score, thresholds)
        verdicts += int(verdict == bool(rows.loc[image_id, f"img_{rule}_pred"]))
        mask_equal += int((mask == (theirs >= thresholds["pixel"]["threshold"])).sum())
        pixels += mask.size
    span = float(stored["maps"].max()) - float(stored["maps"].min())
    return {"max_abs_map_difference": worst, "max_float16_steps": worst_steps,
            "pixels_differing": differing, "pixels": pixels, "verdicts_equal": verdicts, "images": len(ids),
            "mask_pixels_equal": mask_equal, "map_range": span}  # fmt: skip


def bench(args: argparse.Namespace) -> dict:
    import torch

    from iadbench.deploy.bundle import read_bundle
    from iadbench.deploy.export import export_cell
    from iadbench.deploy.runtime import load_runner
    from iadbench.models.run import split_rows
    from iadbench.params import load_params

    os.chdir(PROJECT)
    torch.set_num_threads(args.threads)
    params = load_params()
    rows = split_rows(args.product, ("test",))
    paths, ids = [str(p) for p in rows["image_path"]], [str(i) for i in rows["image_id"]]
    scratch = Path(tempfile.mkdtemp(prefix="iadbench-deploy-"))
    results: dict = {"product": args.product, "rule": args.rule, "threads": args.threads, "repeats": args.repeats,
                     "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s)", "baseline": BASELINE,
                     "models": {}}  # fmt: skip
    for model in params["models"]:
        entry: dict = {}
        runner = _eager_runner(params, model, args.product)
        spec = None
        for fmt in FORMATS:
            out = scratch / model / fmt
            start = time.perf_counter()
            export_cell(params, model, args.product, args.rule, fmt, out, record_git=False)
            export_seconds = round(time.perf_counter() - start, 1)
            bundle = read_bundle(out)
            spec = bundle.preprocess
            fmt_runner = load_runner(bundle, args.threads)
            entry[fmt] = {"export_seconds": export_seconds,
                          "bytes": sum(p.stat().st_size for p in out.iterdir() if p.name.startswith("model.")),
                          **_parity(fmt_runner, model, args.product, args.rule, spec, paths, ids),
                          **_time(fmt_runner, paths, spec, args.repeats)}  # fmt: skip
            print(model, fmt, entry[fmt], flush=True)
        entry[BASELINE] = {**_parity(runner, model, args.product, args.rule, spec, paths, ids),
                           **_time(runner, paths, spec, args.repeats)}  # fmt: skip
        print(model, BASELINE, entry[BASELINE], flush=True)
        results["models"][model] = entry
    shutil.rmtree(scratch, ignore_errors=True)
    return results


def render(result: dict) -> None:
    """The README's ``deploy-speed`` and ``deploy-parity`` blocks from reports/bench/deploy.json."""
    head = (f"From `reports/bench/deploy.json` (`python benchmarks/deploy_speed.py`; {result['product']}'s "
            f"{next(iter(result['models'].values()))[BASELINE]['images']} test images, rule `{result['rule']}`, "
            f"{result['threads']} thread(s), {result['machine']}, one run).")  # fmt: skip
    speed = [head, "", "Per image, decode + preprocess + graph, one image at a time; ratio = images/s against "
             f"`{BASELINE}` (iadbench's module, eager, under grid placement) of the same model in the same run.", "",
             "| model | format | images/s | p50 ms | p95 ms | × baseline | graph MB | export s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    parity = [head, "", "Against the pipeline's stored float16 maps (`data/maps/<model>/<product>.npz`), the "
              "evaluate stage's verdicts and the stored maps thresholded at the rule (float16 steps: the largest "
              "difference in units of float16's spacing at that value).", "",
              "| model | format | max map difference | float16 steps | pixels differing | verdicts equal | "
              "mask pixels equal |", "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for model, entry in result["models"].items():
        base = entry[BASELINE]["images_per_second"]
        for fmt in (BASELINE, *FORMATS):
            e = entry[fmt]
            size = f"{e['bytes'] / 1e6:.1f}" if "bytes" in e else "–"
            export = str(e["export_seconds"]) if "export_seconds" in e else "–"
            speed.append(f"| {model} | {fmt} | {e['images_per_second']:.1f} | {e['p50_ms']:.1f} | {e['p95_ms']:.1f} "
                         f"| {e['images_per_second'] / base:.2f} | {size} | {export} |")  # fmt: skip
            parity.append(f"| {model} | {fmt} | {e['max_abs_map_difference']:.3g} (range {e['map_range']:.3g}) | "
                          f"{e['max_float16_steps']:.0f} | {e['pixels_differing']} of {e['pixels']} | "
                          f"{e['verdicts_equal']} of {e['images']} | "
                          f"{e['mask_pixels_equal'] / e['pixels']:.6f} |")  # fmt: skip
    replace_block("deploy-speed", speed)
    replace_block("deploy-parity", parity)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--product", default="nut")
    parser.add_argument("--rule", default="iou")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--render", action="store_true", help="only rewrite the README blocks from deploy.json")
    args = parser.parse_args()
    path = PROJECT / "reports/bench/deploy.json"
    if not args.render:
        home = Path.cwd()
        save_result("deploy", bench(args), home)
    render(json.loads(path.read_text()))
    print(yaml.safe_dump({"written": str(path)}), end="")


if __name__ == "__main__":
    main()
