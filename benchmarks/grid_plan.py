"""The full benchmark grid on paper: cells, compute hours and wall time, from per-cell costs measured here.

    python benchmarks/grid_plan.py measure [--size 256] [--train-images 32] [--test-images 16]
        Fits every default model of params.yaml (its ``models``) for one epoch on ``--train-images`` synthetic
        images at ``--size`` px and predicts ``--test-images``, through iadbench's own train and predict (the code
        a cell runs) in the environment the stages' command sets (``MALLOC_MMAP_THRESHOLD_``), on whatever device
        torch finds. Its figures vary between runs on one machine: four runs on this 2-core machine gave PatchCore's
        fit 74-77 s three times and 20 s once, the other models' within 1.7x of each other (high system time in the
        slow runs); the committed file is the last run's, and a plan built from it carries that spread. Writes
        reports/bench/grid_costs_<device>.json: seconds per training image per epoch and per predicted image.
    python benchmarks/grid_plan.py plan [--costs reports/bench/grid_costs_cpu.json] [--seeds 3] [--workers 1,8,32]
        The grid of the issue (MVTec AD 15 + BTAD 3 + VisA 12 products × the default models × seeds): cell count,
        compute hours and wall time on N workers, written to reports/bench/grid_plan.json and the README's
        ``grid-plan`` block.

The model of a cell's cost, and what it leaves out:

    seconds(cell) = n_train × epochs × s_fit + n_test × s_predict

with ``epochs`` the registry's *full* profile for a trained method (its source in ``iadbench models``) and 1 for a
memory bank (PaDiM, PatchCore: one pass), ``s_fit`` seconds per training image per epoch and ``s_predict`` per test
image, both measured by ``measure``. Linear in the images for the trained methods and PaDiM's feature pass; for
PatchCore the fit is scaled with the *square* of the training images instead (``fit × (n_train / n_measured)²``):
its greedy coreset selection computes, for each of ``ratio × n_train × patches`` picks, distances to all
``n_train × patches`` patches, which dominates its fit (measured: 77 of PatchCore's 79 s at 32 images of 256 px).
Early stopping, validation passes, data loading from disk and the evaluation stages (seconds per cell on a CPU) are
left out. Wall time on N workers is max(total / N, the longest cell): the grid's
cells are independent, which is what ``iadbench study cells --executor ray`` exploits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import yaml
from models_bench import STAGE_ENV
from readme_blocks import replace_block, save_result

PROJECT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# (train images, test images) per product as released. MVTec AD: Bergmann et al., CVPR 2019, Table 1 (3629 train,
# 1725 test). VisA: Zou et al., ECCV 2022, the 1cls split file (split_csv/1cls.csv; 8659 train, 2162 test, 10821
# images). BTAD: Mishra et al., 2021, per product as laid out in the released archive (01 400/70, 02 399/230,
# 03 1000/441); this machine does not hold the archives, so these counts are typed, not read.
DATASETS: dict[str, dict[str, tuple[int, int]]] = {
    "mvtec_ad": {
        "bottle": (209, 83), "cable": (224, 150), "capsule": (219, 132), "carpet": (280, 117), "grid": (264, 78),
        "hazelnut": (391, 110), "leather": (245, 124), "metal_nut": (220, 115), "pill": (267, 167),
        "screw": (320, 160), "tile": (230, 117), "toothbrush": (60, 42), "transistor": (213, 100),
        "wood": (247, 79), "zipper": (240, 151),
    },
    "btad": {"01": (400, 70), "02": (399, 230), "03": (1000, 441)},
    "visa": {
        "candle": (900, 200), "capsules": (542, 160), "cashew": (450, 150), "chewinggum": (453, 150),
        "fryum": (450, 150), "macaroni1": (900, 200), "macaroni2": (900, 200), "pcb1": (904, 200),
        "pcb2": (901, 200), "pcb3": (905, 201), "pcb4": (904, 201), "pipe_fryum": (450, 150),
    },
}  # fmt: skip


def _default_params() -> dict:
    return yaml.safe_load((PROJECT / "params.yaml").read_text())


def measure(args: argparse.Namespace) -> dict:
    """Fit and predict every default model once on a synthetic product; seconds per image per epoch."""
    import torch
    from models_bench import synthetic_repo

    from iadbench.models.quiet import quiet_libraries
    from iadbench.models.registry import get_entry
    from iadbench.stages.predict import predict_cell
    from iadbench.stages.train import train_cell

    quiet_libraries()
    params = _default_params()
    models = list(params["models"])
    n_test_good = max(1, args.test_images // 2)
    params["data"].update(datasets=["synthetic"], products=["nut"], image_size=args.size)
    params["synthesize"].update(products=["nut"], image_size=args.size, n_train=args.train_images,
                                n_test_good=n_test_good, n_test_per_defect=1)  # fmt: skip
    params["split"]["val_fraction"] = 0.3
    params["train"].update(epochs=1, validation="fixed")
    params["segad"]["detectors"] = []
    params["export"]["cells"] = []
    for options in params["model_options"].values():
        if isinstance(options, dict) and "epochs" in options:
            options["epochs"] = None  # train.epochs = 1 for every trained method
    synthetic_repo(params)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows: dict[str, dict] = {}
    for model in models:
        start = time.perf_counter()
        meta = train_cell(params, model, "nut", progress=False)
        report = predict_cell(params, model, "nut", progress=False)
        n_train = int(meta.get("n_train") or args.train_images)
        epochs = get_entry(model).epochs
        fit_epochs = 1 if epochs is None else int(meta["epochs"])
        rows[model] = {
            "kind": "memory bank" if epochs is None else "trained",
            "n_train": n_train, "epochs_measured": fit_epochs, "fit_seconds": meta["fit_seconds"],
            "n_predicted": report["n_images"], "images_per_second": report["images_per_second"],
            "s_fit_per_image_epoch": round(meta["fit_seconds"] / (n_train * fit_epochs), 5),
            "s_predict_per_image": round(1.0 / max(report["images_per_second"], 1e-9), 5),
            "wall_seconds": round(time.perf_counter() - start, 1),
        }  # fmt: skip
        print(model, rows[model], flush=True)
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device == "cuda"
        else f"{os.cpu_count()}-core {platform.machine()} CPU",
        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "image_size": args.size,
        "synthetic_train_images": args.train_images, "models": rows,
    }  # fmt: skip


QUADRATIC_FIT = frozenset({"patchcore"})  # greedy coreset selection: picks × patches, both ∝ training images


def _fit_seconds(model: str, cost: dict, n_train: int, epochs: int) -> float:
    """A cell's fit seconds from the measured ones (the module docstring's model)."""
    if model in QUADRATIC_FIT:
        return cost["fit_seconds"] * (n_train / cost["n_train"]) ** 2
    return n_train * epochs * cost["s_fit_per_image_epoch"]


def plan(costs: dict, seeds: int, workers: list[int]) -> dict:
    """The grid's cells and hours from measured per-image costs (the model in the module docstring)."""
    from iadbench.models.registry import get_entry

    products = [(d, p, n) for d, ps in DATASETS.items() for p, n in ps.items()]
    per_model: dict[str, dict] = {}
    longest = 0.0
    for model, c in costs["models"].items():
        epochs_of = get_entry(model).epochs
        epochs = 1 if epochs_of is None else epochs_of.full
        seconds = [_fit_seconds(model, c, n_train, epochs) + n_test * c["s_predict_per_image"]
                   for _, _, (n_train, n_test) in products]  # fmt: skip
        longest = max(longest, max(seconds))
        per_model[model] = {"epochs": epochs, "epochs_source": None if epochs_of is None else epochs_of.source,
                            "fit_scaling": "quadratic" if model in QUADRATIC_FIT else "linear",
                            "cells": len(products) * seeds, "hours": round(sum(seconds) * seeds / 3600, 1),
                            "longest_cell_hours": round(max(seconds) / 3600, 2)}  # fmt: skip
    total = sum(m["hours"] for m in per_model.values())
    return {
        "datasets": {d: len(ps) for d, ps in DATASETS.items()},
        "products": len(products), "models": list(per_model), "seeds": seeds,
        "cells": len(products) * len(per_model) * seeds, "device": costs["device"],
        "device_name": costs["device_name"], "image_size": costs["image_size"], "per_model": per_model,
        "total_hours": round(total, 1), "longest_cell_hours": round(longest / 3600, 2),
        "wall_hours": {str(n): round(max(total / n, longest / 3600), 1) for n in workers},
    }  # fmt: skip


def render(result: dict) -> None:
    device = result["device"]
    unit = "GPU" if device == "cuda" else "CPU-machine"
    lines = [
        f"| model | epochs (full profile) | cells | {unit}-hours | longest cell (h) |",
        "|---|---|---|---|---|",
    ]
    for model, m in result["per_model"].items():
        epochs = "1 (memory bank)" if m["epochs_source"] is None else str(m["epochs"])
        epochs += ", fit ∝ n_train²" if m["fit_scaling"] == "quadratic" else ""
        lines.append(f"| {model} | {epochs} | {m['cells']} | {m['hours']:,} | {m['longest_cell_hours']} |")
    lines.append(f"| **all** | | **{result['cells']}** | **{result['total_hours']:,}** | "
                 f"{result['longest_cell_hours']} |")  # fmt: skip
    walls = ", ".join(f"{n} worker{'s' if n != '1' else ''}: {w:,} h" for n, w in result["wall_hours"].items())
    sets = ", ".join(f"{d} {n}" for d, n in result["datasets"].items())
    lines += [
        "",
        f"`python benchmarks/grid_plan.py plan` from `reports/bench/grid_costs_{device}.json` (measured by "
        f"`grid_plan.py measure` on {result['device_name']}, {result['image_size']} px): {result['products']} "
        f"products ({sets}) × {len(result['models'])} default models × {result['seeds']} seeds = "
        f"{result['cells']} cells. Wall time, max(total / N, longest cell): {walls}.",
    ]
    replace_block("grid-plan", lines)


def main() -> None:
    if any(os.environ.get(k) != v for k, v in STAGE_ENV.items()):  # glibc reads it at start: run as the stage runs
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **STAGE_ENV})
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--size", type=int, default=256)
    m.add_argument("--train-images", type=int, default=32)
    m.add_argument("--test-images", type=int, default=16)
    p = sub.add_parser("plan")
    p.add_argument("--costs", default=str(PROJECT / "reports/bench/grid_costs_cpu.json"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--workers", default="1,8,32")
    args = parser.parse_args()
    if args.step == "measure":
        here = Path.cwd()
        result = measure(args)
        out = save_result(f"grid_costs_{result['device']}", result, here, Path.cwd())
        print(f"-> {out}")
        return
    costs = json.loads(Path(args.costs).read_text())
    result = plan(costs, args.seeds, [int(n) for n in args.workers.split(",")])
    out = PROJECT / "reports/bench/grid_plan.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    render(result)
    total = result["total_hours"]
    print(f"{result['cells']} cells, {total:,} {result['device']}-hours; wall {result['wall_hours']} -> {out}")
    if not math.isfinite(total):
        raise SystemExit("the plan is not finite: check the costs file")


if __name__ == "__main__":
    main()
