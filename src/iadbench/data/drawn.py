"""Masks drawn in Label Studio: the DVC-tracked export ``annotation/masks/<dataset>/`` and its provenance.

``iadbench annotate pull`` writes, per image whose regions someone drew, a one-channel 0/255 PNG at the image's size
(``<image id>.png``, the image id being the image's path under ``data/raw/<dataset>``) and one provenance record in
``masks.json``. The manifest reads the folder: a drawn mask is the image's mask where the dataset ships none, or
replaces a shipped mask that a person corrected. ``data/raw`` is never written.

``mask_source`` of an anomalous image (the manifest's column, then ``data/masks.csv``):

- ``shipped``: the dataset's own mask; ``shipped_corrected``: a person changed the shipped mask in Label Studio;
- ``drawn``: drawn by people from a blank image (no shipped mask, no pre-drawn region);
- ``prefill_edited``: pre-drawn by a detector (``annotate push --prefill``) and changed by a person;
- ``prefill_accepted``: pre-drawn by a detector and submitted unchanged: such a mask favours that detector, so
  ``evaluate.exclude_prefill_accepted`` can leave it out of pixel thresholds and metrics;
- ``pending``: imported with ``--missing-masks annotate`` and not drawn yet (image-level metrics only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iadbench.errors import InputError

MASKS_ROOT = Path("annotation/masks")
PROVENANCE = "masks.json"
MASK_SOURCES = ("shipped", "shipped_corrected", "drawn", "prefill_edited", "prefill_accepted", "pending")
DRAWN_SOURCES = ("shipped_corrected", "drawn", "prefill_edited", "prefill_accepted")
COMBINE_RULE = "pixel majority: a pixel is a defect where at least half of the image's annotators marked it"


def drawn_root(dataset: str) -> Path:
    """The dataset's mask export: ``annotation/masks/<dataset>``."""
    return MASKS_ROOT / dataset


def mask_file(image_id: str) -> str:
    """The drawn mask's path under the export for an image id (always PNG, whatever the image's format)."""
    return str(Path(image_id).with_suffix(".png").as_posix())


def read_provenance(root: Path) -> dict[str, dict[str, Any]]:
    """``image id -> record`` of a mask export (empty when the folder has no ``masks.json``); a malformed file or a
    record whose mask file is missing raises :class:`InputError` naming it.
    """
    path = root / PROVENANCE
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, "not valid JSON", str(exc)) from None
    images = doc.get("images") if isinstance(doc, dict) else None
    if not isinstance(images, dict):
        raise InputError(path, "a mask export's provenance must be an object with an 'images' object")
    for image_id, record in images.items():
        if not isinstance(record, dict) or record.get("mask_source") not in DRAWN_SOURCES:
            raise InputError(path, f"image {image_id}: mask_source must be one of {list(DRAWN_SOURCES)}",
                             f"got {record.get('mask_source') if isinstance(record, dict) else record!r}")  # fmt: skip
        if not (root / mask_file(image_id)).is_file():
            raise InputError(path, f"image {image_id}: its mask file is missing", str(root / mask_file(image_id)))
    return images


def drawn_masks(root: Path) -> dict[str, tuple[Path, str]]:
    """``image id -> (mask file, mask source)`` of a mask export (what the manifest's scan takes)."""
    return {i: (root / mask_file(i), str(r["mask_source"])) for i, r in read_provenance(root).items()}


def read_pending(dataset_root: Path) -> set[str]:
    """Image ids whose mask is pending: the import record's ``pending_masks`` (``--missing-masks annotate``)."""
    path = dataset_root / "import.json"
    if not path.is_file():
        return set()
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, "not valid JSON", str(exc)) from None
    return set(record.get("pending_masks") or []) if isinstance(record, dict) else set()
