"""Measure every registered model: does it train and predict offline here, how long, how much memory.

Runs each model in its own process (`iadbench train` then `iadbench predict`) on one tiny synthetic product in a
temporary repository, with HF_HUB_OFFLINE=1 and a timeout, and writes `reports/model_status.json` and
`reports/model_status.md` (the README's model table is that file, not typed by hand).

    python benchmarks/model_status.py [--size 64] [--epochs 1] [--timeout 600] [--models padim,ae]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import yaml
from models_bench import STAGE_ENV
from readme_blocks import replace_block

from iadbench import resources
from iadbench.cli import main as iadbench
from iadbench.models.registry import MODELS

PROJECT = Path(__file__).resolve().parents[1]


def _params(size: int, epochs: int) -> dict:
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["data"].update(dataset="synthetic", products=["nut"], image_size=size)
    # 20 train images: DFKDE needs at least n_pca_components (16) to fit at all
    params["synthesize"].update(image_size=size, products=["nut"], n_train=20, n_test_good=4, n_test_per_defect=2)
    params["train"].update(epochs=epochs, batch_size=4)
    return params


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:400] if lines else ""


DOWNLOAD_HINTS = ("not available offline", "needs a download", "is a download", "needs downloads", "(a download;")


def _cell(model: str, pfile: str, env: dict, timeout: int) -> tuple[str, str]:
    """Train then predict one cell in fresh processes; return (status, last error line)."""
    for verb in ("train", "predict"):
        cmd = ["iadbench", "--quiet", "--params", pfile, verb, "--model", model, "--product", "nut"]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"timeout after {timeout} s ({verb})", ""
        if proc.returncode != 0:
            message = _last_line(proc.stderr)
            kind = "needs a download" if any(h in message for h in DOWNLOAD_HINTS) else f"error ({verb})"
            return kind, message
    return "ok", ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--work", default="/tmp/iadbench-model-status")
    args = parser.parse_args()

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    Path("params.yaml").write_text(yaml.safe_dump(_params(args.size, args.epochs), sort_keys=False))
    for verb in (["--quiet", "synthesize"], ["--quiet", "manifest"], ["categories"], ["split"]):
        assert iadbench(verb) == 0, verb
    env = {**os.environ, **STAGE_ENV}
    results = []
    for model in args.models.split(","):
        entry = MODELS[model]
        row = {"model": model, "family": entry.family, "outputs": "maps+scores" if entry.pixel_maps else "scores only"}
        size = max(args.size, entry.min_size)
        if size != args.size:
            params = yaml.safe_load(Path("params.yaml").read_text())
            params["data"]["image_size"] = size
            Path(f"params-{model}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        pfile = f"params-{model}.yaml" if size != args.size else "params.yaml"
        start = time.perf_counter()
        status, message = _cell(model, pfile, env, args.timeout)
        if status == "needs a download" and entry.own_backbone:
            # Would it run offline on random features? (model_options.<model>.weights=none)
            params = yaml.safe_load(Path(pfile).read_text())
            params["model_options"][model]["weights"] = "none"
            Path(f"params-{model}-none.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            retry, retry_message = _cell(model, f"params-{model}-none.yaml", env, args.timeout)
            status = f"needs a download; with weights=none: {retry}"
            message = message if retry == "ok" else f"{message} / weights=none: {retry_message}"
        row.update(status=status, message=message)
        if status.endswith("ok"):
            report = json.loads(Path(f"reports/predict/{model}/nut.json").read_text())
            fit, ran = resources.read("train", model, "nut"), resources.read("predict", model, "nut")
            row.update(fit_seconds=fit["fit_seconds"], images_per_second=ran["images_per_second"],
                       peak_rss_mb=max(fit["peak_rss_mb"], ran["peak_rss_mb"]),
                       weights=f"{report['backbone'] or '-'} ({report['weights_source']})")  # fmt: skip
        row["wall_seconds"] = round(time.perf_counter() - start, 1)
        row["image_size"] = size
        results.append(row)
        print(json.dumps(row), flush=True)

    meta = {
        "epochs": args.epochs,
        "n_train": 20,
        "n_predict": "validation + test of 4 good and 12 anomalous images",
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    out = PROJECT / "reports"
    previous = out / "model_status.json"
    if previous.is_file():  # a --models subset updates its rows and keeps the others
        measured = {r["model"] for r in results}
        kept = {r["model"]: r for r in json.loads(previous.read_text())["models"] if r["model"] not in measured}
        by_name = {**kept, **{r["model"]: r for r in results}}
        results = [by_name[m] for m in MODELS if m in by_name]
    (out / "model_status.json").write_text(json.dumps({"setup": meta, "models": results}, indent=1) + "\n")
    lines = [
        f"Measured by `python benchmarks/model_status.py` ({args.size} px, {args.epochs} epoch(s), 20 train images "
        f"of the synthetic `nut`, offline, {meta['cores']} CPU cores; full messages in reports/model_status.json).",
        "",
        "| model | family | outputs | status | fit s | predict img/s | peak RSS MiB | weights / message |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        message = r.get("message", "").replace("|", "/").removeprefix("iadbench train: error: ")
        detail = r.get("weights") or (message[:150] + " …" if len(message) > 150 else message)
        lines.append(
            f"| {r['model']} | {r['family']} | {r['outputs']} | {r['status']} | {r.get('fit_seconds', '')} | "
            f"{r.get('images_per_second', '')} | {r.get('peak_rss_mb', '')} | {detail} |"
        )
    (out / "model_status.md").write_text("\n".join(lines) + "\n")
    replace_block("model-status", lines)


if __name__ == "__main__":
    main()
