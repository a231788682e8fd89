"""Write the embedded synthetic dataset in the MVTec AD layout, and its Label Studio export.

Layout written under ``out``::

    <product>/train/good/NNN.<ext>
    <product>/test/good/NNN.<ext>
    <product>/test/<defect_type>/NNN.<ext>
    <product>/ground_truth/<defect_type>/NNN_mask.png     (0/255, exact)

Every image has its own random generator seeded by ``(seed, product, folder, index)``, so an image does not change
when other sizes or products are added, and two runs with the same params write byte-identical files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from iadbench.labelstudio import BACKGROUND_FIELD, DEFECT_FIELD, SIMULATED_PREFIX, choices_result, local_file_url
from iadbench.params import SynthesizeParams
from iadbench.seeding import stream
from iadbench.synth.draw import to_uint8
from iadbench.synth.products import PRODUCTS, ProductSpec, render
from iadbench.taxonomy import BACKGROUNDS, DEFECT_CATEGORIES

_rng = stream


def _save(image: np.ndarray, path: Path, mode: str) -> None:
    pixels = to_uint8(image)
    pil = Image.fromarray(pixels[..., 0], mode="L") if mode == "L" else Image.fromarray(pixels, mode="RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jpg":
        pil.save(path, quality=95, subsampling=0, optimize=False)
    else:
        pil.save(path, optimize=False)


def _annotate(rng: np.random.Generator, truth: str, background: str, error: float) -> tuple[list[str], str]:
    """One simulated annotator: right most of the time, with probability ``error`` picks another category."""
    choice = truth
    if rng.random() < error:
        others = [c for c in DEFECT_CATEGORIES if c != truth]
        choice = others[rng.integers(len(others))]
    bg = background
    if rng.random() < error / 4:
        bg = [b for b in BACKGROUNDS if b != background][0]
    return [choice], bg


def generate(
    params: SynthesizeParams, out: Path, export: Path, repo_root: Path = Path("."), progress: bool = True
) -> dict[str, int]:
    """Write the dataset to ``out`` (replacing it) and the annotators' export to ``export``.

    The export holds one task per anomalous test image, annotated by ``params.annotators`` simulated annotators
    who each mislabel with probability ``params.annotator_error`` — as real annotators would have labelled it.
    Returns image counts per product.
    """
    if out.exists():
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tasks: list[dict] = []
    counts: dict[str, int] = {}
    jobs: list[tuple[ProductSpec, str, str, int]] = []
    for name in params.products:
        product = PRODUCTS[name]
        jobs += [(product, "train", "good", i) for i in range(params.n_train)]
        jobs += [(product, "test", "good", i) for i in range(params.n_test_good)]
        for defect_type in product.defect_types:
            jobs += [(product, "test", defect_type, i) for i in range(params.n_test_per_defect)]
    for product, folder, defect_type, i in tqdm(jobs, desc="synthesize", unit="img", disable=not progress):
        rng = _rng(params.seed, product.name, folder, defect_type, i)
        image, mask = render(product, rng, params.image_size, None if defect_type == "good" else defect_type)
        stem = f"{i:03d}"
        image_path = tmp / product.name / folder / defect_type / f"{stem}{product.extension}"
        _save(image, image_path, product.mode)
        counts[product.name] = counts.get(product.name, 0) + 1
        if defect_type == "good":
            continue
        mask_path = tmp / product.name / "ground_truth" / defect_type / f"{stem}_mask.png"
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((mask * 255).astype(np.uint8), mode="L").save(mask_path, optimize=False)
        tasks.append(_task(params, product, defect_type, stem, out, repo_root, len(tasks) + 1))
    tmp.rename(out)
    export.parent.mkdir(parents=True, exist_ok=True)
    export.write_text(json.dumps(tasks, indent=1, sort_keys=True) + "\n")
    return counts


def _task(
    params: SynthesizeParams, product: ProductSpec, defect_type: str, stem: str, out: Path, root: Path, task_id: int
) -> dict:
    rel = out.resolve().relative_to(root.resolve()).as_posix()
    ann_rng = _rng(params.seed, "annotators", product.name, defect_type, stem)
    annotations = []
    for k in range(params.annotators):
        categories, background = _annotate(
            ann_rng, product.category_of(defect_type), product.background, params.annotator_error
        )
        annotations.append(
            {
                "id": task_id * 10 + k,
                "completed_by": f"{SIMULATED_PREFIX}{k + 1}",  # never mistaken for a person's label
                "was_cancelled": False,
                "ground_truth": False,
                "result": [
                    choices_result(DEFECT_FIELD, categories, f"{task_id}-{k}-d"),
                    choices_result(BACKGROUND_FIELD, [background], f"{task_id}-{k}-b"),
                ],
            }
        )
    return {
        "id": task_id,
        "data": {
            "image": local_file_url(f"{rel}/{product.name}/test/{defect_type}/{stem}{product.extension}"),
            "mask": local_file_url(f"{rel}/{product.name}/ground_truth/{defect_type}/{stem}_mask.png"),
            "reference": local_file_url(f"{rel}/{product.name}/train/good/000{product.extension}"),
            "product": product.name,
        },
        "annotations": annotations,
        "predictions": [],
    }
