"""An export folder: its files, their checks, and the preprocessing it records as data.

Layout (``EXPORT_FORMAT`` 1)::

    DIR/iadbench-export.json   what the folder is: iadbench version, format, cell, rule, every file's sha256
    DIR/model.pt2              torch:    torch.export program (``torch.export.load(...).module()``)
    DIR/model.onnx             onnx:     ONNX graph (opset 18), one input ``image``, outputs ``anomaly_map``, ``score``
    DIR/model.xml, model.bin   openvino: OpenVINO IR converted from that ONNX graph, weights kept in float32
    DIR/preprocess.json        file → input tensor, as data (:func:`prepare` applies it)
    DIR/thresholds.json        the rule's pixel and image thresholds, in the units of the graph's outputs
    DIR/card.json, README.md   the model card: data version, training params, test metrics at the rule, cost

The graph's input is one image, ``1 × 3 × S × S`` float32 in [0, 1] (RGB); normalisation is its first layer (the
values are in ``preprocess.json`` under ``in_graph``). Its outputs are the anomaly map ``1 × S × S`` and the image
score ``1``, both float32. The benchmark stores maps as float16 (:func:`iadbench.models.run.to_float16`) and
compares ``value ≥ threshold``; :func:`decide` does exactly that, so that a verdict at the line is the verdict the
benchmark scored.

Nothing here imports anomalib, Lightning or DVC: a folder is read with numpy, Pillow and its format's runtime.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from iadbench.errors import IadbenchError

EXPORT_FORMAT = 1
MANIFEST = "iadbench-export.json"
FORMATS = ("torch", "onnx", "openvino")
GRAPH_FILES = {"torch": ("model.pt2",), "onnx": ("model.onnx",), "openvino": ("model.xml", "model.bin")}
RESAMPLING = {"bilinear": Image.Resampling.BILINEAR}


class BundleError(IadbenchError):
    """An export folder that cannot be used as it is (names the file and the rule it breaks)."""


def package_version() -> str:
    """The installed iadbench version (an export records the version that wrote it)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("iadbench")
    except PackageNotFoundError:  # a source tree on sys.path without installation metadata
        return "unknown"


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A checked export folder: where it is, what its manifest says, its preprocessing and thresholds."""

    root: Path
    manifest: dict[str, Any]
    preprocess: dict[str, Any]
    thresholds: dict[str, Any]

    @property
    def format(self) -> str:
        """The graph's format: torch, onnx or openvino."""
        return str(self.manifest["format"])

    @property
    def size(self) -> int:
        """The side of the graph's square input and of its map."""
        return int(self.preprocess["size"])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{path}: missing (an export folder holds {MANIFEST} and the files it lists)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None


def read_bundle(root: str | Path, verify_hashes: bool = True) -> Bundle:
    """Open and check an export folder: its manifest, the iadbench version and format that wrote it, every file it
    lists present with its recorded sha256 (``verify_hashes``), and the preprocessing and thresholds it needs.

    Raises :class:`BundleError` naming the file and the rule: not a folder, no manifest, another export format or
    iadbench version (re-export it with this version), a listed file missing or changed, an unknown format.
    """
    root = Path(root)
    if not root.is_dir():
        raise BundleError(f"{root}: not a folder (give the folder `iadbench export` wrote)")
    manifest = _read_json(root / MANIFEST)
    written_by = manifest.get("iadbench_version")
    if manifest.get("export_format") != EXPORT_FORMAT or written_by != package_version():
        raise BundleError(
            f"{root / MANIFEST}: written by iadbench {written_by} (export format {manifest.get('export_format')}), "
            f"this is iadbench {package_version()} (export format {EXPORT_FORMAT}): preprocessing and graph "
            "conventions are only guaranteed within one version; export the cell again with this version"
        )
    if manifest.get("format") not in FORMATS:
        raise BundleError(f"{root / MANIFEST}: unknown format {manifest.get('format')!r}; known: {list(FORMATS)}")
    files: dict[str, str] = manifest.get("files") or {}
    for name in (*GRAPH_FILES[manifest["format"]], "preprocess.json", "thresholds.json"):
        if name not in files:
            raise BundleError(f"{root / MANIFEST}: does not list {name}, which a {manifest['format']} export needs")
    for name, digest in files.items():
        path = root / name
        if not path.is_file():
            raise BundleError(f"{path}: missing; {MANIFEST} lists it (copy the whole folder, or export again)")
        if verify_hashes and sha256(path) != digest:
            raise BundleError(f"{path}: its sha256 differs from the one in {MANIFEST} (the file was changed)")
    return Bundle(root, manifest, _read_json(root / "preprocess.json"), _read_json(root / "thresholds.json"))


def channels_of(image: Image.Image) -> int:
    """Channel count of a decoded image as the manifest records it (``L`` 1, ``RGB`` 3, ``RGBA`` 4, ...)."""
    return len(image.getbands())


def prepare(path: str | Path, spec: dict[str, Any]) -> tuple[np.ndarray, tuple[int, int], int]:
    """One image file made into the graph's input by ``spec`` (preprocess.json): ``(1 × 3 × S × S float32 in
    [0, 1], (width, height) of the decoded upright image, its channel count)``.

    The steps are those of the benchmark (:func:`iadbench.data.images.model_input`): decode with EXIF orientation
    applied and 16-bit scaled by its depth (:func:`iadbench.data.images.open_image`), convert to ``spec["colour"]``
    (RGB, grey repeated), resize to ``size`` × ``size`` with ``spec["resample"]`` (no crop), multiply by the
    float32 value of 1/255 (as torchvision's ``to_dtype(..., scale=True)`` does; dividing by 255 rounds differently
    in 1 of ~3 values).
    """
    from iadbench.data.images import open_image

    image = open_image(path)
    channels = channels_of(image)
    size = int(spec["size"])
    resized = image.convert(spec["colour"]).resize((size, size), RESAMPLING[spec["resample"]])
    array = np.asarray(resized, dtype=np.float32) * np.float32(1.0 / 255.0)  # torchvision's to_dtype: x · (1/255)
    return np.ascontiguousarray(array.transpose(2, 0, 1)[None]), image.size, channels


def preprocess_spec(size: int, mean: list[float], std: list[float], train_channels: list[int]) -> dict[str, Any]:
    """preprocess.json: what :func:`prepare` does, and what the graph does first (``in_graph``)."""
    return {
        "size": int(size),
        "colour": "RGB",
        "resample": "bilinear",
        "steps": [
            "decode; apply the EXIF orientation tag; 16-bit greyscale scaled by round(v * 255 / 65535)",
            "convert to RGB (a grey image's channel repeated three times)",
            f"resize to {size} x {size}, bilinear (PIL), no crop",
            "float32, multiplied by float32(1/255): values in [0, 1], layout 1 x 3 x H x W",
        ],
        "in_graph": {"normalise": "(x - mean) / std per channel", "mean": list(mean), "std": list(std)},
        "train_channels": sorted(set(int(c) for c in train_channels)),
        "note": "images of another channel count than the training images are refused by `iadbench infer`",
    }


def float16_map(values: np.ndarray) -> np.ndarray:
    """The map as the benchmark stores and thresholds it: float16 (:func:`iadbench.models.run.to_float16`)."""
    return np.asarray(values, dtype=np.float32).astype(np.float16)


def decide(anomaly_map: np.ndarray, score: float, thresholds: dict[str, Any]) -> tuple[np.ndarray | None, bool]:
    """``(pixel mask at S × S or None, verdict)``: ``float16 map ≥ pixel threshold`` and ``float32 score ≥ image
    threshold``, the comparisons of :func:`iadbench.metrics.maps.per_image_confusion` and
    :func:`iadbench.evaluation.evaluate.image_at` (in float64, as there).
    """
    pixel = thresholds.get("pixel")
    mask = None
    if pixel is not None:
        mask = float16_map(anomaly_map).astype(np.float64) >= float(pixel["threshold"])
    verdict = bool(float(np.float32(score)) >= float(thresholds["image"]["threshold"]))
    return mask, verdict
