"""Which bytes the CPU decides: one cell trained and predicted again under capped math kernels, on one machine.

A rebuild on the same machine reproduces every cached hash of ``dvc.lock``; on another machine the trained weights
and maps can come out with other bytes (the demo on a new machine reran all 78 stages). This script measures the
likely cause on a single machine: PyTorch's CPU kernels pick their code path from the instruction set the CPU has —
oneDNN for convolutions (``ONEDNN_MAX_CPU_ISA`` caps it) and MKL for matrix products (``MKL_ENABLE_INSTRUCTIONS``)
— and each path sums in another order; so may the number of threads that split a reduction (``OMP_NUM_THREADS``,
which Ray sets to a task's CPUs; the uncapped runs use PyTorch's default, recorded as ``threads``). Each
configuration below runs the train and predict stages of one cell in fresh processes (``IADBENCH_WARM=0``, the
stages' own environment), then compares the model folder's bytes and the maps file with the uncapped run's: equal
bytes, or the largest difference in the maps and the image scores.

    python benchmarks/isa_bytes.py [--models padim,ae] [--readme]

Writes ``reports/bench/isa_bytes.json``; ``--readme`` rewrites the README block ``isa-bytes``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models_bench import STAGE_ENV, synthetic_repo  # noqa: E402
from readme_blocks import PROJECT, replace_block, save_result  # noqa: E402

FRESH_STAGE_ENV = {**STAGE_ENV, "IADBENCH_WARM": "0"}  # each configuration in fresh processes
CONFIGS: dict[str, dict[str, str]] = {
    "uncapped": {},
    "uncapped, again": {},
    "MKL capped at AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "oneDNN capped at AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "both capped at AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "uncapped, one thread": {"OMP_NUM_THREADS": "1"},  # what a Ray task with --cpus-per-experiment 1 gets
}
KNOBS = ("MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
PRODUCT = "nut"


def _folder_sha256(folder: Path) -> str:
    """sha256 over the folder's files, in name order (name, then bytes): equal iff every file is byte-identical."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _cpu() -> dict:
    flags = set()
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
    wide = sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    return {"model_name": name, "vector_flags": wide, "cpus": os.cpu_count()}


def _default_threads() -> int:
    """PyTorch's thread count in a stage's environment without the knobs (what the uncapped runs used)."""
    env = {k: v for k, v in os.environ.items() if k not in KNOBS}
    code = "import torch; print(torch.get_num_threads())"
    return int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout)


def run(models: list[str]) -> dict:
    import torch

    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["data"].update(datasets=["synthetic"], products=[PRODUCT])
    params["synthesize"]["products"] = [PRODUCT]
    params["models"] = models
    params["segad"]["detectors"] = []
    params["export"]["cells"] = []
    here = Path.cwd()
    work = synthetic_repo(params)
    iadbench = str(Path(sys.executable).with_name("iadbench"))
    rows: dict[str, list[dict]] = {}
    for model in models:
        reference: dict | None = None
        rows[model] = []
        for name, caps in CONFIGS.items():
            env = {k: v for k, v in os.environ.items() if k not in KNOBS}
            env.update({**FRESH_STAGE_ENV, **caps})
            start = time.perf_counter()
            for verb in ("train", "predict"):
                subprocess.run([iadbench, verb, "--model", model, "--product", PRODUCT], check=True, env=env,
                               stdout=subprocess.DEVNULL)  # fmt: skip
            maps_file = Path(f"data/maps/{model}/{PRODUCT}.npz")
            maps = dict(np.load(maps_file))
            row = {"config": name, "env": caps, "model_sha256": _folder_sha256(Path(f"models/{model}/{PRODUCT}")),
                   "maps_sha256": hashlib.sha256(maps_file.read_bytes()).hexdigest(),
                   "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
            if reference is None:
                reference = {"row": row, "maps": maps}
            ref = reference["maps"]
            diff_map = np.abs(maps["maps"].astype(np.float64) - ref["maps"].astype(np.float64))
            diff_score = np.abs(maps["scores"].astype(np.float64) - ref["scores"].astype(np.float64))
            span = float(np.ptp(ref["maps"].astype(np.float64))) or 1.0
            row.update(
                model_equal=row["model_sha256"] == reference["row"]["model_sha256"],
                maps_equal=row["maps_sha256"] == reference["row"]["maps_sha256"],
                max_map_diff_of_range=float(diff_map.max() / span),
                max_score_diff=float(diff_score.max()),
                score_rank_changes=int(np.sum(np.argsort(maps["scores"]) != np.argsort(ref["scores"]))),
            )
            rows[model].append(row)
            print(model, name, {k: row[k] for k in ("model_equal", "maps_equal", "max_map_diff_of_range")}, flush=True)
    result = {
        "product": PRODUCT, "image_size": params["data"]["image_size"], "torch": torch.__version__,
        "cpu": _cpu(), "threads": _default_threads(), "models": rows,
    }  # fmt: skip
    save_result("isa_bytes", result, here, work)
    return result


def render(result: dict) -> None:
    cpu = result["cpu"]
    avx512 = [f for f in cpu["vector_flags"] if f.startswith("avx512")]
    lines = [
        f"From `python benchmarks/isa_bytes.py --readme` (`reports/bench/isa_bytes.json`): the train and predict "
        f"stages of one synthetic `{result['product']}` cell at {result['image_size']} px, fresh processes, on one "
        f"machine ({cpu['cpus']} CPUs, {len(avx512)} AVX-512 extensions: {', '.join(avx512) or 'none'}; torch "
        f"{result['torch']}, {result['threads']} threads uncapped), each configuration compared with the uncapped run.",
        "",
        "| model | kernels | model bytes | maps bytes | largest map difference (of the map range) | largest score "
        "difference | images whose score rank moved |",
        "| --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for model, rows in result["models"].items():
        for row in rows:
            lines.append(
                f"| {model} | {row['config']} | {'same' if row['model_equal'] else 'differ'} | "
                f"{'same' if row['maps_equal'] else 'differ'} | {row['max_map_diff_of_range']:.1e} | "
                f"{row['max_score_diff']:.3g} | {row['score_rank_changes']} |"
            )
    replace_block("isa-bytes", lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="padim,ae")
    parser.add_argument("--readme", action="store_true", help="rewrite the README block isa-bytes")
    args = parser.parse_args()
    result = run([m.strip() for m in args.models.split(",") if m.strip()])
    if args.readme:
        render(result)


if __name__ == "__main__":
    main()
