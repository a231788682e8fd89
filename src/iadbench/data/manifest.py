"""Scan a dataset in the MVTec AD layout into one table: one row per image, one per mask file.

The manifest records facts (does the file decode, its size, channels, hash, does its mask match); it does not
judge them. The manifest gate (:mod:`iadbench.gates`) turns facts into pass/fail with the rule and the file.
Only layout problems that leave nothing to tabulate (no dataset folder, a product without ``train/`` and
``test/``, an empty product) stop the scan itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from iadbench.errors import InputError, InputErrors
from iadbench.hashing import sha256_of

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
MASK_SUFFIX = "_mask"

IMAGE_COLUMNS = [
    "image_id", "dataset", "product", "split_folder", "label", "defect_type", "image_path", "sha256",
    "decodes", "decode_error", "width", "height", "channels", "mode", "format",
    "mask_path", "mask_exists", "mask_decodes", "mask_width", "mask_height", "mask_binary", "mask_empty",
    "mask_fraction", "mask_source",
]  # fmt: skip
MASK_COLUMNS = [
    "mask_id", "dataset", "product", "defect_type", "mask_path", "image_id", "has_image",
]  # fmt: skip
SEGMENTS_FILE = "segments.png"  # optional static segmentation of a product (SegAD's segments: one label per pixel)
SEGMENT_COLUMNS = [
    "product", "segments_path", "exists", "decodes", "decode_error", "width", "height", "n_labels", "labels",
    "labels_ok", "image_sizes", "sizes_ok", "sha256",
]  # fmt: skip


@dataclass(frozen=True)
class ImageFacts:
    """What decoding one file told us."""

    decodes: bool
    error: str
    width: int
    height: int
    channels: int
    mode: str
    format: str


def decode(path: Path) -> tuple[ImageFacts, Image.Image | None]:
    """Fully decode an image through :func:`iadbench.data.images.open_image` (every byte read, so truncated files
    fail here, not in training; upright; 16-bit scaled; decompression bombs refused).
    """
    from iadbench.data.images import open_image

    try:
        with Image.open(path) as raw:
            mode, fmt = raw.mode, raw.format or ""  # as stored (I;16 for 16-bit); the pixels come from open_image
        im = open_image(path)
        return ImageFacts(True, "", im.width, im.height, len(im.getbands()), mode, fmt), im
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a fact to record, not a crash
        return ImageFacts(False, f"{type(exc).__name__}: {exc}", 0, 0, 0, "", ""), None


def mask_facts(image: Image.Image) -> tuple[bool, bool, float]:
    """``(binary, empty, foreground_fraction)`` of a decoded mask.

    Binary means: one channel (or channels that agree), values ⊆ {0, 255} or ⊆ {0, 1} (MVTec AD writes 0/255).
    Foreground is every non-zero pixel.
    """
    arr = np.asarray(image)
    if arr.ndim == 3:
        if not all(np.array_equal(arr[..., 0], arr[..., k]) for k in range(1, arr.shape[2])):
            return False, False, float((arr != 0).any(axis=2).mean())
        arr = arr[..., 0]
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    values = set(np.unique(arr).tolist())
    binary = values <= {0, 255} or values <= {0, 1}
    fraction = float((arr != 0).mean())
    return binary, fraction == 0.0, fraction


def _is_image(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def images_in(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (no hidden files), sorted; none if it is not a folder."""
    return sorted(p for p in folder.iterdir() if _is_image(p)) if folder.is_dir() else []


def subdirs(folder: Path) -> list[Path]:
    """The non-hidden sub-folders of ``folder``, sorted; none if it is not a folder."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.is_dir() else []


@dataclass(frozen=True)
class Listing:
    """Files of a dataset in the MVTec AD layout, found without decoding anything."""

    images: list[tuple[str, str, str, Path]]  # (product, split folder, defect type, path)
    masks: list[tuple[str, str, Path]]  # (product, defect type, path)


def list_files(root: Path) -> Listing:
    """List images and masks under ``root``, checking only the folder layout.

    Raises :class:`InputErrors` for layout problems that leave nothing to tabulate: no dataset folder, no product,
    a product without ``train/`` and ``test/``, an empty product.
    """
    if not root.is_dir():
        raise InputError(root, "dataset folder not found", "import it with `iadbench import PATH --name NAME`")
    products = subdirs(root)
    if not products:
        raise InputError(root, "dataset holds no product folder (MVTec AD layout: <product>/train/good/...)")
    problems: list[InputError] = []
    images: list[tuple[str, str, str, Path]] = []
    masks: list[tuple[str, str, Path]] = []
    for product_dir in products:
        product = product_dir.name
        train, test = product_dir / "train", product_dir / "test"
        if not train.is_dir() or not test.is_dir():
            problems.append(InputError(product_dir, "product folder must hold train/ and test/ (MVTec AD layout)"))
            continue
        found = 0
        for split_dir in (train, test, product_dir / "validation"):  # validation/: shipped (MVTec AD 2), optional
            for defect_dir in subdirs(split_dir):
                for image in images_in(defect_dir):
                    images.append((product, split_dir.name, defect_dir.name, image))
                    found += 1
        if found == 0:
            problems.append(InputError(product_dir, "empty product: no image under train/ or test/"))
        for defect_dir in subdirs(product_dir / "ground_truth"):
            masks += [(product, defect_dir.name, m) for m in images_in(defect_dir)]
    if problems:
        raise InputErrors(problems)
    return Listing(images=images, masks=masks)


def scan(
    root: Path,
    dataset: str,
    progress: bool = True,
    drawn: dict[str, tuple[Path, str]] | None = None,
    pending: set[str] | frozenset[str] = frozenset(),
    drawn_record: Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scan ``root`` (= ``data/raw/<dataset>``) into ``(images, masks)`` tables.

    Paths in the tables are as given by ``root`` (relative to the repository root in the pipeline), POSIX-style.
    ``drawn``: image id -> (mask file, mask source) of the dataset's drawn masks (``annotation/masks/<dataset>``,
    read by :mod:`iadbench.data.drawn`, named ``drawn_record`` in errors); a drawn mask is the image's mask (instead
    of a shipped one where a person corrected it). ``pending``: image ids imported without a mask, to be drawn.
    ``mask_source`` says where each anomalous image's mask comes from. Raises :class:`InputErrors` for layout
    problems (see :func:`list_files`) and :class:`InputError` for a drawn mask of an image that is not an anomalous
    validation/test image.
    """
    provenance = drawn or {}
    listing = list_files(root)
    entries, mask_files = listing.images, listing.masks
    masks_by_key = {
        (p, d, m.stem.removesuffix(MASK_SUFFIX)): m for p, d, m in mask_files if m.stem.endswith(MASK_SUFFIX)
    }
    rows: list[dict] = []
    image_of_mask: dict[Path, str] = {}
    for product, split_folder, defect_type, path in tqdm(entries, desc="manifest", unit="img", disable=not progress):
        label = "good" if defect_type == "good" else "anomalous"
        facts, _ = decode(path)
        mask_path = masks_by_key.get((product, defect_type, path.stem)) if split_folder == "test" else None
        relative = path.relative_to(root).as_posix()
        source = ""
        if label == "anomalous" and split_folder != "train":
            source = "shipped" if mask_path is not None else "pending" if relative in pending else ""
            if relative in provenance:
                mask_path, source = provenance[relative]
        row = {
            "image_id": path.relative_to(root).as_posix(),
            "dataset": dataset,
            "product": product,
            "split_folder": split_folder,
            "label": label,
            "defect_type": defect_type,
            "image_path": path.as_posix(),
            "sha256": sha256_of(path),
            "decodes": facts.decodes,
            "decode_error": facts.error,
            "width": facts.width,
            "height": facts.height,
            "channels": facts.channels,
            "mode": facts.mode,
            "format": facts.format,
            "mask_path": "",
            "mask_exists": False,
            "mask_decodes": False,
            "mask_width": 0,
            "mask_height": 0,
            "mask_binary": False,
            "mask_empty": False,
            "mask_fraction": 0.0,
            "mask_source": source,
        }
        if mask_path is not None:
            image_of_mask[mask_path] = path.relative_to(root).as_posix()
            mfacts, mimage = decode(mask_path)
            row.update(mask_path=mask_path.as_posix(), mask_exists=True, mask_decodes=mfacts.decodes)
            row.update(mask_width=mfacts.width, mask_height=mfacts.height)
            if mimage is not None:
                binary, empty, fraction = mask_facts(mimage)
                row.update(mask_binary=binary, mask_empty=empty, mask_fraction=round(fraction, 8))
        rows.append(row)
    images = pd.DataFrame(rows, columns=IMAGE_COLUMNS).sort_values("image_id", kind="stable").reset_index(drop=True)
    eligible = set(images.loc[(images["label"] == "anomalous") & (images["split_folder"] != "train"), "image_id"])
    strays = sorted(set(provenance) - eligible)
    if strays:
        raise InputError(
            drawn_record or root,
            f"drawn masks for images that are not anomalous validation/test images of {root}",
            f"{len(strays)} image(s), e.g. {strays[:3]}; pull again or remove them",
        )

    mask_rows = []
    for product, defect_type, m in mask_files:
        mask_rows.append(
            {
                "mask_id": m.relative_to(root).as_posix(),
                "dataset": dataset,
                "product": product,
                "defect_type": defect_type,
                "mask_path": m.as_posix(),
                "image_id": image_of_mask.get(m, ""),
                "has_image": m in image_of_mask,
            }
        )
    masks = pd.DataFrame(mask_rows, columns=MASK_COLUMNS).sort_values("mask_id", kind="stable").reset_index(drop=True)
    return images, masks


def scan_datasets(
    roots: dict[str, Path],
    prefixes: dict[str, str],
    progress: bool = True,
    drawn: dict[str, dict[str, tuple[Path, str]]] | None = None,
    pending: dict[str, set[str]] | None = None,
    drawn_records: dict[str, Path] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Scan several datasets (``roots``: name -> folder) into one ``(images, masks, segments)`` triple
    (``drawn``, ``pending``, ``drawn_records``: per dataset name, see :func:`scan`).

    ``prefixes[name]`` is put before each dataset's image ids, mask ids and product names (``btad/`` in a run of
    several datasets, ``""`` in a run of one), so that rows of two datasets never share an id and every product
    column holds the run's cell ids. Every missing dataset folder is reported at once.
    """
    missing = [
        InputError(root, f"data.datasets names {name!r} but the folder does not exist",
                   f"import it first: iadbench import PATH --name {name}")
        for name, root in roots.items() if not root.is_dir()
    ]  # fmt: skip
    if missing:
        raise InputErrors(missing)
    parts: list[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]] = []
    for name, root in roots.items():
        images, masks = scan(root, name, progress, (drawn or {}).get(name), (pending or {}).get(name, set()),
                             (drawn_records or {}).get(name))  # fmt: skip
        segments = scan_segments(root, images)
        prefix = prefixes[name]
        if prefix:
            images["image_id"] = prefix + images["image_id"]
            images["product"] = prefix + images["product"]
            masks["mask_id"] = prefix + masks["mask_id"]
            masks["product"] = prefix + masks["product"]
            masks["image_id"] = [prefix + i if i else "" for i in masks["image_id"]]
            segments["product"] = prefix + segments["product"]
        parts.append((images, masks, segments))
    images = pd.concat([p[0] for p in parts], ignore_index=True).sort_values("image_id", kind="stable")
    masks = pd.concat([p[1] for p in parts], ignore_index=True).sort_values("mask_id", kind="stable")
    segments = pd.concat([p[2] for p in parts], ignore_index=True)
    return images.reset_index(drop=True), masks.reset_index(drop=True), segments.reset_index(drop=True)


def write_table(df: pd.DataFrame, path: Path) -> None:
    """Write a table as CSV with a stable row order and line endings (so reruns are byte-identical)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, lineterminator="\n")


def read_table(path: Path) -> pd.DataFrame:
    """Read a table written by :func:`write_table`; string columns keep empty strings (not NaN)."""
    if not path.is_file():
        raise InputError(path, "table not found", "run the stage that writes it (dvc repro)")
    return pd.read_csv(path, keep_default_na=False, na_values=[])


def segment_labels(image: Image.Image) -> np.ndarray:
    """The label image of a ``segments.png``: one channel (channels that agree), integer labels."""
    arr = np.asarray(image)
    if arr.ndim == 3:
        if not all(np.array_equal(arr[..., 0], arr[..., k]) for k in range(1, arr.shape[2])):
            raise ValueError("its channels differ: a label image has one value per pixel")
        arr = arr[..., 0]
    return arr.astype(np.int64)


def segment_facts(product_dir: Path, image_sizes: set[tuple[int, int]]) -> dict[str, object]:
    """Facts about ``<product>/segments.png``: decodes, labels exactly ``0..L-1`` with every label present, and the
    size of every image of the product (``image_sizes``: their ``(width, height)``), so that the two align once
    both are resized to ``data.image_size``.
    """
    path = product_dir / SEGMENTS_FILE
    sizes = ";".join(f"{w}x{h}" for w, h in sorted(image_sizes))
    row: dict[str, object] = {
        "product": product_dir.name, "segments_path": path.as_posix(), "exists": path.is_file(), "decodes": False,
        "decode_error": "", "width": 0, "height": 0, "n_labels": 0, "labels": "", "labels_ok": False,
        "image_sizes": sizes, "sizes_ok": False, "sha256": "",
    }  # fmt: skip
    if not path.is_file():
        return row
    facts, image = decode(path)
    row.update(decodes=facts.decodes, decode_error=facts.error, width=facts.width, height=facts.height)
    row["sha256"] = sha256_of(path)
    if image is None:
        return row
    try:
        labels = np.unique(segment_labels(image))
    except ValueError as exc:
        row["decode_error"] = str(exc)
        return row
    row.update(
        n_labels=len(labels), labels=" ".join(map(str, labels[:20].tolist())) + (" ..." if len(labels) > 20 else "")
    )
    row["labels_ok"] = bool(labels.min() == 0 and np.array_equal(labels, np.arange(len(labels))))
    row["sizes_ok"] = image_sizes == {(facts.width, facts.height)}
    return row


def scan_segments(root: Path, images: pd.DataFrame) -> pd.DataFrame:
    """One row of :func:`segment_facts` per product folder under ``root`` (``images``: the manifest's rows)."""
    rows = []
    for product_dir in subdirs(root):
        mine = images[(images["product"] == product_dir.name) & images["decodes"].astype(bool)]
        rows.append(
            segment_facts(product_dir, {(int(w), int(h)) for w, h in zip(mine["width"], mine["height"], strict=True)})
        )
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


def check_segments(root: Path) -> None:
    """Refuse a dataset whose ``<product>/segments.png`` breaks a rule of :func:`segment_facts` (the importer runs
    this before copying; the sizes are checked against the product's ``train/good`` images).
    """
    problems = []
    for product_dir in subdirs(root):
        if not (product_dir / SEGMENTS_FILE).exists():
            continue
        sizes = set()
        for image in images_in(product_dir / "train" / "good"):
            facts, _ = decode(image)
            if facts.decodes:
                sizes.add((facts.width, facts.height))
        row = segment_facts(product_dir, sizes)
        path = str(row["segments_path"])
        if not row["decodes"] or row["decode_error"]:
            rule, detail = "segments.png must decode to one label per pixel", str(row["decode_error"])
        elif not row["labels_ok"]:
            rule, detail = "segments.png labels must be 0..L-1 with every label present", f"found {row['labels']}"
        elif not row["sizes_ok"]:
            rule = "segments.png must have the size of every image of its product"
            detail = f"segments {row['width']}x{row['height']}, images {row['image_sizes']}"
        else:
            continue
        problems.append(InputError(path, rule, detail))
    if problems:
        raise InputErrors(problems)
