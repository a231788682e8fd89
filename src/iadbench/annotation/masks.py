"""Defect regions in Label Studio and the masks they become.

- **Out** (push): a mask becomes brush regions, one per 8-connected component, each with its category, encoded by
  ``label_studio_sdk``'s brush converter (``mask2rle``); a shipped mask is shown as such regions on the image, and
  :func:`prefill_masks` pre-draws regions for images without a mask from a trained detector's stored maps at a
  normal-only pixel threshold (no mask exists yet to fit any other rule).
- **Back** (pull): every annotator's regions are decoded with the SDK's ``decode_rle``, checked (the task's image
  size, a decodable RLE, a non-empty region, a known category), united per annotator, and the annotators' masks are
  combined by pixel majority (:data:`iadbench.data.drawn.COMBINE_RULE`); their agreement is the mean pairwise IoU.
  :func:`build_masks` then says where each final mask comes from (``mask_source``) and how far it moved from the
  pre-drawn regions (IoU), and :func:`write_masks` writes the export ``annotation/masks/<dataset>`` atomically.

The RLE codec is the SDK's, not hand-written: it is the one Label Studio's own brush tool reads and writes.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from iadbench.data.categories import annotator_of
from iadbench.data.drawn import COMBINE_RULE, PROVENANCE, mask_file
from iadbench.errors import IadbenchError, InputError, InputErrors
from iadbench.labelstudio import IMAGE_FIELD, REGION_CATEGORIES, REGION_FIELD

SMALL_DEFECT = 0.02  # a component covering under 2 % of the image is suggested as surface, else structural
PREFILL_PREFIX = "iadbench-prefill"  # the prediction's model_version: "iadbench-prefill <model> <rule> t=<t>"
PREFILL_REGION = "prefill-"  # ids of a detector's regions (a shipped mask's are "region-<k>"), in the same push


def components(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected components of a boolean mask, largest first (ties: first in raster order)."""
    labelled, n = ndimage.label(np.asarray(mask, dtype=bool), structure=np.ones((3, 3), dtype=bool))
    parts = [labelled == k for k in range(1, n + 1)]
    return sorted(parts, key=lambda p: -int(p.sum()))


def suggest_region(part: np.ndarray, current: tuple[str, ...] = ()) -> str:
    """A region's suggested category: the image's one current category when it has exactly one region category,
    else ``surface`` below :data:`SMALL_DEFECT` of the image and ``structural`` above (a coarse prior).
    """
    known = [c for c in current if c in REGION_CATEGORIES]
    if len(known) == 1:
        return known[0]
    return "surface" if part.mean() < SMALL_DEFECT else "structural"


def region_result(part: np.ndarray, label: str, result_id: str) -> dict[str, Any]:
    """One brush region as Label Studio stores it, its RLE from the SDK's ``mask2rle``."""
    from label_studio_sdk.converter.brush import mask2rle

    height, width = part.shape
    return {
        "id": result_id,
        "from_name": REGION_FIELD,
        "to_name": IMAGE_FIELD,
        "type": "brushlabels",
        "origin": "prediction",
        "original_width": int(width),
        "original_height": int(height),
        "image_rotation": 0,
        "value": {"format": "rle", "rle": mask2rle(part.astype(np.uint8) * 255), "brushlabels": [label]},
    }


def mask_regions(mask: np.ndarray, current: tuple[str, ...], prefix: str) -> list[dict[str, Any]]:
    """A mask as brush regions, one per component, each with its suggested category (:func:`suggest_region`)."""
    return [region_result(p, suggest_region(p, current), f"{prefix}{k}") for k, p in enumerate(components(mask))]


def rle_length(rle: list[int]) -> int:
    """The value count in an RLE's header (its first 32 bits, most significant first), read before decoding so that
    a corrupt header cannot make the decoder allocate gigabytes.
    """
    return int.from_bytes(bytes(int(b) & 0xFF for b in rle[:4]), "big") if len(rle) >= 4 else -1


def decode_region(result: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
    """A brush region as a boolean (height, width) mask; ``size`` = the task image's (width, height).

    Raises ``ValueError`` naming the rule: the region's image size differs from the task's, its RLE does not
    decode (bad header, truncated, wrong length) or it marks no pixel.
    """
    from label_studio_sdk.converter.brush import decode_rle

    width, height = size
    got = (result.get("original_width"), result.get("original_height"))
    if got != (width, height):
        raise ValueError(f"drawn on an image of {got[0]}x{got[1]}, the task's image is {width}x{height}")
    value = result.get("value") or {}
    rle = value.get("rle")
    if not isinstance(rle, list) or not rle or not all(isinstance(b, int) and 0 <= b < 256 for b in rle):
        raise ValueError("its RLE is not a list of bytes")
    if rle_length(rle) != width * height * 4:
        raise ValueError(f"its RLE holds {rle_length(rle)} values, an RGBA image of {width}x{height} has "
                         f"{width * height * 4}")  # fmt: skip
    try:
        flat = decode_rle(rle)
    except Exception as exc:  # noqa: BLE001 - the SDK raises whatever a truncated bit stream gives
        raise ValueError(f"its RLE does not decode ({type(exc).__name__}: {exc})") from None
    if flat.size != width * height * 4:
        raise ValueError(f"its RLE decodes to {flat.size} values, not {width * height * 4}")
    mask = flat.reshape(height, width, 4)[:, :, 3] > 0
    if not mask.any():
        raise ValueError("it is empty (no pixel drawn)")
    return mask


def combine(masks: list[np.ndarray]) -> np.ndarray:
    """The annotators' masks combined by pixel majority (:data:`iadbench.data.drawn.COMBINE_RULE`):
    ``Σ_a m_a ≥ n / 2`` (one annotator: their mask; two: the union; three: two of three).
    """
    stack = np.stack(masks).astype(np.int32)
    return 2 * stack.sum(axis=0) >= len(masks)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """|a ∩ b| / |a ∪ b| (1.0 for two empty masks)."""
    union = int(np.logical_or(a, b).sum())
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def agreement(masks: list[np.ndarray]) -> float | None:
    """Mean IoU over every pair of annotators' masks (None with fewer than two annotators)."""
    pairs = [iou(a, b) for a, b in combinations(masks, 2)]
    return round(float(np.mean(pairs)), 6) if pairs else None


@dataclass(frozen=True)
class ImageMask:
    """One image's final mask from the export and where it comes from."""

    image_id: str  # the image's path under data/raw/<dataset>
    mask: np.ndarray
    source: str  # shipped_corrected | drawn | prefill_edited | prefill_accepted
    annotators: tuple[str, ...]
    agreement_iou: float | None
    prefill_iou: float | None
    prefill_version: str | None
    task_id: object

    def record(self) -> dict[str, Any]:
        """The image's entry in ``masks.json``."""
        return {"mask_source": self.source, "annotators": list(self.annotators), "agreement_iou": self.agreement_iou,
                "prefill_iou": self.prefill_iou, "prefill_version": self.prefill_version, "task_id": self.task_id,
                "defect_pixels": int(self.mask.sum())}  # fmt: skip


def _prefill(task: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """The regions a detector pre-drew on the task (region ids ``prefill-<k>``, in a prediction versioned
    ``iadbench-prefill ...``) and that version; none without. A push gives all its tasks one version (Label Studio
    pre-labels from one model version), so the region ids, not the version, tell a detector's regions from a shipped
    mask's. The task's predictions are read (objects, see ``client._with_predictions``) and the ``prediction`` an
    annotation started from.
    """
    candidates = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
    for annotation in task.get("annotations") or []:
        if isinstance(annotation, dict) and isinstance(annotation.get("prediction"), dict):
            candidates.append(annotation["prediction"])
    for prediction in candidates:
        version = str(prediction.get("model_version") or "")
        regions = [r for r in prediction.get("result") or [] if _is_region(r)]
        if version.startswith(PREFILL_PREFIX) and any(str(r.get("id", "")).startswith(PREFILL_REGION) for r in regions):
            return regions, version
    return [], None


def _is_region(result: object) -> bool:
    return isinstance(result, dict) and result.get("type") == "brushlabels" and result.get("from_name") == REGION_FIELD


def build_masks(
    export: Path, tasks: list[dict[str, Any]], images: dict[str, tuple[Path, Path | None]]
) -> tuple[list[ImageMask], dict[str, int]]:
    """Every image's final mask from a merged export; every problem found is reported at once, nothing written.

    ``images``: image id -> (image file, shipped mask file or None) of the dataset's anomalous validation/test
    images. An image nobody drew a region on keeps what it had (its shipped mask, or its mask stays pending); an
    image whose regions equal its shipped mask keeps ``shipped``. Returns the masks and counts.
    """
    from iadbench.data.categories import image_reference_to_path

    by_path = {Path(image).as_posix(): image_id for image_id, (image, _) in images.items()}
    problems: list[InputError] = []
    out: list[ImageMask] = []
    counts = {"with_regions": 0, "unchanged_shipped": 0, "without_regions": 0}
    for task in tasks:
        task_id = task.get("id")
        live = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
        drawn = [a for a in live if any(_is_region(r) for r in a.get("result") or [])]
        if not drawn:
            counts["without_regions"] += bool(live)
            continue
        reference = (task.get("data") or {}).get(IMAGE_FIELD, "")
        try:
            image_id = by_path.get(image_reference_to_path(str(reference)))
        except ValueError:
            image_id = None
        if image_id is None:
            problems.append(InputError(export, f"task {task_id}: regions on an image that is not an anomalous "
                                       "validation/test image of the dataset", str(reference)))  # fmt: skip
            continue
        image_path, shipped_path = images[image_id]
        with Image.open(image_path) as im:
            size = im.size
        latest: dict[str, dict[str, Any]] = {}  # one mask per person: their latest annotation (highest id)
        for annotation in sorted(drawn, key=lambda a: (not isinstance(a.get("id"), int), a.get("id") or 0)):
            latest[annotator_of(annotation)] = annotation
        per_annotator, who, bad = [], [], False
        for annotation in (latest[k] for k in sorted(latest)):
            layers = []
            for result in (r for r in annotation.get("result") or [] if _is_region(r)):
                labels = (result.get("value") or {}).get("brushlabels") or []
                try:
                    if len(labels) != 1 or labels[0] not in REGION_CATEGORIES:
                        raise ValueError(f"its category {labels} is not one of {list(REGION_CATEGORIES)}")
                    layers.append(decode_region(result, size))
                except ValueError as exc:
                    problems.append(InputError(export, f"task {task_id} ({image_id}), region {result.get('id')} "
                                               f"by {annotator_of(annotation)}: {exc}"))  # fmt: skip
                    bad = True
            if layers:
                per_annotator.append(np.logical_or.reduce(layers))
                who.append(annotator_of(annotation))
        if bad or not per_annotator:
            continue
        counts["with_regions"] += 1
        final = combine(per_annotator)
        prefill_regions, version = _prefill(task)
        prefill = None
        if prefill_regions:
            try:
                prefill = np.logical_or.reduce([decode_region(r, size) for r in prefill_regions])
            except ValueError as exc:
                problems.append(InputError(export, f"task {task_id} ({image_id}): its pre-drawn regions: {exc}"))
                continue
        shipped = read_mask(shipped_path)
        if prefill is not None:
            source = "prefill_accepted" if np.array_equal(final, prefill) else "prefill_edited"
        elif shipped is not None:
            if shipped.shape == final.shape and np.array_equal(final, shipped):
                counts["unchanged_shipped"] += 1
                continue
            source = "shipped_corrected"
        else:
            source = "drawn"
        out.append(ImageMask(image_id, final, source, tuple(who), agreement(per_annotator),
                             round(iou(prefill, final), 6) if prefill is not None else None, version,
                             task_id))  # fmt: skip
    if problems:
        raise InputErrors(problems)
    return sorted(out, key=lambda m: m.image_id), counts


def read_mask(path: str | Path | None) -> np.ndarray | None:
    """A mask file as booleans (non-zero = defect); None without a file (an empty path)."""
    if not path:
        return None
    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > 0


def dataset_images(manifest: Any, root: Path) -> dict[str, tuple[Path, Path | None]]:
    """Image id (path under ``root``) -> (image file, shipped mask file or None) of the manifest's anomalous
    validation/test images of the dataset at ``root``: the images a pull may write masks for. The shipped mask is the
    dataset's own (``ground_truth/<defect>/<stem>_mask.png``), whatever mask the manifest uses now.
    """
    from iadbench.data.manifest import MASK_SUFFIX

    base = root.as_posix().rstrip("/") + "/"
    out: dict[str, tuple[Path, Path | None]] = {}
    rows = manifest[(manifest["label"] == "anomalous") & (manifest["split_folder"] != "train")]
    for path in rows["image_path"]:
        if not str(path).startswith(base):
            continue
        image = Path(path)
        product, _, defect = Path(str(path)[len(base) :]).parts[:3]
        shipped = root / product / "ground_truth" / defect / f"{image.stem}{MASK_SUFFIX}.png"
        out[str(path)[len(base) :]] = (image, shipped if shipped.is_file() else None)
    return out


def write_masks(root: Path, masks: list[ImageMask], dataset: str) -> Path:
    """Write the export ``root`` (= ``annotation/masks/<dataset>``): one 0/255 PNG per image and ``masks.json``,
    staged beside it and swapped in only when complete (an interrupted pull leaves the previous export).
    """
    staging = root.with_name(f".{root.name}.pulling")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        for m in masks:
            path = staging / mask_file(m.image_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(m.mask.astype(np.uint8) * 255, mode="L").save(path, optimize=False)
        doc = {"dataset": dataset, "combine_rule": COMBINE_RULE,
               "images": {m.image_id: m.record() for m in masks}}  # fmt: skip
        (staging / PROVENANCE).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        old = root.with_name(f".{root.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if root.exists():
            os.replace(root, old)
        os.replace(staging, root)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return root


def prefill_masks(
    model: str, product: str, rule: str, image_ids: list[str]
) -> tuple[dict[str, np.ndarray], float, str]:
    """A trained cell's regions for ``image_ids`` (manifest ids of the product): its stored map of each image
    (``data/maps/<model>/<product>.npz``) at the cell's pixel threshold of ``rule``, a normal-only rule fitted on good
    validation images (``float16(map) ≥ t``, as the evaluation decides), at map size (S × S). Returns the masks, the
    threshold and the prediction's version text.
    """
    from iadbench.evaluation.cells import maps_path, thresholds_path
    from iadbench.evaluation.records import ThresholdsRecord
    from iadbench.metrics.rules import RULE_TABLE, normal_only_rules

    if rule not in normal_only_rules():
        needs = "needs anomalous masks to fit" if rule in RULE_TABLE else "is not a threshold rule"
        raise IadbenchError(f"--prefill-rule {rule!r} {needs}: pre-drawing uses a normal-only rule "
                            f"({', '.join(normal_only_rules())}), since no mask exists yet")  # fmt: skip
    path = maps_path(model, product)
    if not path.is_file():
        raise InputError(path, f"no trained cell {model}/{product} to pre-draw with",
                         f"add {model} to `models` in params.yaml and run dvc repro first")  # fmt: skip
    with np.load(path, allow_pickle=False) as data:
        if "maps" not in data.files:
            raise InputError(path, f"{model} writes image scores only: it has no anomaly map to pre-draw regions",
                             "choose a model with maps (e.g. padim, patchcore)")  # fmt: skip
        ids, maps = data["image_id"].astype(str), data["maps"]
        drift = data["drift"].astype(str) if "drift" in data.files else None
    fitted = ThresholdsRecord.read(thresholds_path(model, product))
    if not fitted.pixel or rule not in fitted.pixel:
        raise InputError(thresholds_path(model, product), f"no pixel threshold of rule {rule!r}",
                         "no good validation image? see the thresholds stage's notes")  # fmt: skip
    t = float(fitted.pixel[rule]["threshold"])
    index = {i: k for k, i in enumerate(ids)}
    out = {}
    for image_id in image_ids:
        if image_id not in index:
            raise InputError(path, f"image {image_id} has no stored map", "rerun predict (dvc repro)")
        k = index[image_id]
        if drift is not None and drift[k]:
            raise InputError(path, f"image {image_id}'s map is of a drifted copy (params: drift)",
                             "pre-draw from a run without drift")  # fmt: skip
        out[image_id] = maps[k].astype(np.float16) >= t
    return out, t, f"{PREFILL_PREFIX} {model} {rule} t={t:.6g}"


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map-size decision at an image's ``size`` (width, height): nearest neighbour, as the maps were squashed."""
    image = Image.fromarray(mask.astype(np.uint8) * 255, mode="L").resize(size, Image.Resampling.NEAREST)
    return np.asarray(image) > 0
