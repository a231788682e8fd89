"""Where each model's map peaks on a small defect of known position, before and after iadbench's corrections.

    python benchmarks/alignment.py [--sizes 128 256] [--models ae stfpm padim cflow patchcore] [--docs]

The probe of :mod:`tests.models.probe` (plain plates; five test images, one bright square each), one tiny fit per
(model, size, variant) through the real ``train_cell`` / ``predict_cell``:

- baseline ``anomalib``: the package weights in timm's ``efficientnet_lite0`` (what iadbench ran before) and
  anomalib's own interpolation and CFLOW normalisation (``corrections=False``);
- ``iadbench``: the weights in ``tf_efficientnet_lite0`` (their own padding) with grid placement.

Prints the mean (row, col) offset of the peaks in pixels and writes ``reports/bench/alignment.json``; ``--docs``
renders the table into docs/fidelity.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import yaml
from readme_blocks import PROJECT, replace_block

os.environ.setdefault("HF_HUB_OFFLINE", "1")
EPOCHS = {"stfpm": 20, "cflow": 2, "reverse_distillation": 2}


def _offsets(model: str, size: int, corrections: bool) -> list[list[float]]:
    import sys

    sys.path.insert(0, str(PROJECT))  # the probe is a test fixture: tests/models/probe.py
    from tests.models.probe import default_probe, locate, write_probe

    from iadbench.models.weights import package_weights_file

    root = Path(tempfile.mkdtemp(prefix="iadbench-align-"))
    os.chdir(root)
    probe = default_probe(size)
    write_probe(root, probe)
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["data"] = {"dataset": "probe", "products": ["plate"], "image_size": size}
    params["train"] = {"seed": 0, "epochs": EPOCHS.get(model, 1), "batch_size": 4, "num_workers": 0}
    params["model_options"]["cflow"]["fiber_batch_size"] = 16
    if not corrections:
        params["backbone"].update(name="efficientnet_lite0", weights=str(package_weights_file()))
    return locate(params, model, probe, corrections).round(2).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--models", nargs="+", default=["ae", "stfpm", "padim", "cflow", "patchcore"])
    parser.add_argument("--docs", action="store_true", help="render the table into docs/fidelity.md")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    for size in args.sizes:
        for model in args.models:
            row = {}
            for variant, corrections in (("anomalib", False), ("iadbench", True)):
                offsets = np.asarray(_offsets(model, size, corrections))
                row[variant] = {"per_square": offsets.tolist(), "mean": offsets.mean(axis=0).round(2).tolist()}
            results[f"{model}@{size}"] = row
            print(f"{model:10s} {size:4d} px  anomalib {row['anomalib']['mean']}  iadbench {row['iadbench']['mean']}",
                  flush=True)  # fmt: skip
    out = PROJECT / "reports/bench/alignment.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    if args.docs:
        lines = [
            "From `reports/bench/alignment.json` (`python benchmarks/alignment.py --docs`): mean (row, col) offset in "
            "pixels of the map's peak from the centre of five squares (side ≈ size/16), one tiny fit per cell.",
            "",
            "| model | input px | anomalib 2.7 as iadbench ran it before | iadbench |",
            "| --- | --- | --- | --- |",
        ]
        for key, row in results.items():
            model, size = key.split("@")
            before, after = row["anomalib"]["mean"], row["iadbench"]["mean"]
            cells = f"{before[0]:+.2f}, {before[1]:+.2f} | {after[0]:+.2f}, {after[1]:+.2f}"
            lines.append(f"| {model} | {size} | {cells} |")
        replace_block("bench-alignment", lines, PROJECT / "docs/fidelity.md")


if __name__ == "__main__":
    main()
