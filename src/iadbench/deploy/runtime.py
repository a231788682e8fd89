"""Run an export folder's graph with its format's runtime, and ``iadbench infer``'s outputs.

One image at a time (the graph's batch is one: the benchmark's maps never depend on the batch, and a line sees one
part at a time). Per image :func:`infer_images` writes

- ``OUT/masks/<name>.png``: the pixel decision at the image's own size (0/255; the S × S decision of
  :func:`~iadbench.deploy.bundle.decide` resized nearest-neighbour),
- ``OUT/maps/<name>.npy`` with ``save_map``: the float16 anomaly map at S × S, as the benchmark stores it,
- one line of ``OUT/predictions.jsonl``: image, size, score, verdict, defective share of pixels, files,

and ``OUT/summary.json`` (counts, images per second, the images it could not read and why). An image that cannot be
decoded, or whose channel count differs from the training images', is skipped and listed; the caller exits non-zero.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from iadbench.deploy.bundle import Bundle, BundleError, decide, float16_map, prepare

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
Runner = Callable[[np.ndarray], tuple[np.ndarray, float]]


def load_runner(bundle: Bundle, threads: int | None = None) -> Runner:
    """``image (1 × 3 × S × S float32) → (map S × S float32, score)`` for the bundle's format.

    torch: ``torch.export.load`` (no anomalib); onnx: onnxruntime's CPU provider; openvino: the CPU plugin with
    ``INFERENCE_PRECISION_HINT=f32`` (its default on CPUs with bf16 units would round to bfloat16).
    A missing runtime raises :class:`BundleError` naming the package.
    """
    fmt, root = bundle.format, bundle.root
    if fmt == "torch":
        import torch

        if threads:
            torch.set_num_threads(threads)
        with warnings.catch_warnings():  # torch's archive reader on CPU-only weights: nothing to act on
            warnings.filterwarnings("ignore", message="No complete tensor found in the group")
            program = torch.export.load(str(root / "model.pt2")).module()

        def run_torch(x: np.ndarray) -> tuple[np.ndarray, float]:
            with torch.no_grad():
                amap, score = program(torch.from_numpy(x))
            return amap[0].numpy(), float(score[0])

        return run_torch
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise BundleError(f"{root}: an onnx export needs onnxruntime (pip install onnxruntime)") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(root / "model.onnx"), options, providers=["CPUExecutionProvider"])

        def run_onnx(x: np.ndarray) -> tuple[np.ndarray, float]:
            amap, score = session.run(["anomaly_map", "score"], {"image": x})
            return amap[0], float(score[0])

        return run_onnx
    try:
        import openvino as ov
    except ImportError:
        raise BundleError(f"{root}: an openvino export needs the openvino package (pip install openvino)") from None
    config = {"INFERENCE_PRECISION_HINT": "f32", **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
    compiled = ov.Core().compile_model(str(root / "model.xml"), "CPU", config)

    def run_openvino(x: np.ndarray) -> tuple[np.ndarray, float]:
        result = compiled([x])
        return np.asarray(result[0])[0], float(np.asarray(result[1]).reshape(-1)[0])

    return run_openvino


def collect_images(inputs: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """(path, output name) of every image file given or inside a given folder (sorted, recursive); names are the
    path below the folder given (``folder/sub/x``), or the file's stem, made unique. A path that does not exist is
    an error (:class:`BundleError`), not a skipped image.
    """
    found: list[tuple[Path, str]] = []
    for item in map(Path, inputs):
        if item.is_dir():
            for path in sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
                found.append((path, str((Path(item.name) / path.relative_to(item)).with_suffix(""))))
        elif item.is_file():
            found.append((item, item.stem))
        else:
            raise BundleError(f"{item}: no such file or folder")
    seen: dict[str, int] = {}
    unique = []
    for path, name in found:
        seen[name] = seen.get(name, 0) + 1
        unique.append((path, name if seen[name] == 1 else f"{name}-{seen[name]}"))
    return unique


def infer_images(
    bundle: Bundle,
    images: list[tuple[Path, str]],
    out: Path,
    save_map: bool = False,
    runner: Runner | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score every image; write the files of the module docstring; return the summary (also ``summary.json``)."""
    from tqdm import tqdm

    runner = runner or load_runner(bundle)
    accepted = set(bundle.preprocess.get("train_channels") or [])
    out.mkdir(parents=True, exist_ok=True)
    failed: list[dict[str, str]] = []
    n_anomalous = 0
    seconds = 0.0
    with (out / "predictions.jsonl").open("w") as lines:
        for path, name in tqdm(images, desc="infer", unit="img", disable=not progress):
            try:
                start = time.perf_counter()
                x, (width, height), channels = prepare(path, bundle.preprocess)
                if accepted and channels not in accepted:
                    raise ValueError(f"{channels} channel(s); the training images have {sorted(accepted)}")
                amap, score = runner(x)
                seconds += time.perf_counter() - start
            except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
                failed.append({"image": str(path), "error": f"{type(exc).__name__}: {exc}"})
                continue
            mask, verdict = decide(amap, score, bundle.thresholds)
            n_anomalous += verdict
            row: dict[str, Any] = {"image": str(path), "width": width, "height": height, "score": score,
                                   "verdict": "anomalous" if verdict else "good", "mask": None,
                                   "map": None}  # fmt: skip
            if mask is not None:
                mask_path = out / "masks" / f"{name}.png"
                mask_path.parent.mkdir(parents=True, exist_ok=True)
                full = Image.fromarray((mask * 255).astype(np.uint8))
                full = full.resize((width, height), Image.Resampling.NEAREST)
                full.save(mask_path)
                row["mask"] = str(mask_path.relative_to(out))
                row["defect_fraction"] = float(mask.mean())
            if save_map:
                map_path = out / "maps" / f"{name}.npy"
                map_path.parent.mkdir(parents=True, exist_ok=True)
                np.save(map_path, float16_map(amap))
                row["map"] = str(map_path.relative_to(out))
            lines.write(json.dumps(row) + "\n")
    done = len(images) - len(failed)
    summary = {
        "export": str(bundle.root), "model": bundle.manifest["model"], "product": bundle.manifest["product"],
        "rule": bundle.manifest["rule"], "format": bundle.format, "images": len(images), "scored": done,
        "anomalous": n_anomalous, "failed": failed,
        "images_per_second": round(done / seconds, 2) if seconds > 0 else None,
        "timing": "decode + preprocess + graph per image, one at a time, this machine",
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
