"""Dataset formats the importer reads, each registered once in :data:`FORMATS`.

A format knows how to recognise its layout (:attr:`Format.detect`, per top-level folder) and how to list its
images as :class:`Item` rows in the MVTec AD layout the pipeline reads (:attr:`Format.collect`). Writing the
items (:func:`write_items`) is shared: images are copied byte for byte, masks are rewritten as one-channel 0/255
PNGs named ``<stem>_mask.png`` (sources ship 0/1, 0/255, 16-bit and RGB masks under other names), so that every
imported dataset meets the manifest gate's mask rules the same way.

Layouts (as the public releases ship them; the MVTec AD layout is the target):

- ``mvtec``: ``<product>/train/good/*``, ``<product>/test/<type>/*``, ``<product>/ground_truth/<type>/<stem>_mask.png``
  (MVTec AD, MPDD and every dataset already in this layout): copied as is.
- ``btad``: ``<product>/train/ok``, ``<product>/test/ok|ko``, ``<product>/ground_truth/ko/<stem>.<png|bmp>``
  (BTAD: images ``.bmp`` or ``.png`` depending on the product, masks named like their image; anomalib's
  ``make_btech_dataset`` reads the same). ``ok`` becomes ``good``; ``ko`` stays the defect type.
- ``visa``: ``split_csv/1cls.csv`` (columns ``object,split,label,image,mask``; paths relative to the root) over
  ``<product>/Data/Images/{Normal,Anomaly}`` and ``<product>/Data/Masks/Anomaly`` (masks 0/1 or 0/255). The CSV
  gives no defect type: anomalous images get type ``bad`` (anomalib's ``Visa`` does the same).
- ``mvtec3d``: ``<product>/{train,validation,test}/<type>/rgb/*.png``, masks ``<product>/test/<type>/gt/*.png``;
  RGB only (``xyz/`` is ignored). ``validation/good`` images join train (renamed ``validation_<name>``) and the
  import record says how many: the pipeline draws its own validation split from the test images.
- ``mvtec_ad2``: ``<product>/train/good``, ``<product>/validation/good``, ``<product>/test_public/{good,bad}``, masks
  ``<product>/test_public/ground_truth/bad/<stem>_mask.png`` (MVTec AD 2, Heckler-Kram et al., 2025).
  ``validation/good`` is kept as ``<product>/validation/good`` (the split's ``split.validation: shipped`` uses it as
  the validation split, as shipped: good images only); ``test_private`` and ``test_private_mixed`` ship no ground
  truth and are skipped, with a note.
- ``folder``: ``good/`` and one folder per defect type, optional ``masks/<type>/<stem>.*`` (or ``masks/<stem>.*``)
  — anomalib's ``Folder`` layout for users' own data; one product (``--product``, default the dataset name). A
  share of the good images (``--good-test-fraction``, anomalib's default 0.2), chosen by a hash of the file name so
  that it never changes between imports, goes to ``test/good``.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from iadbench.data.manifest import MASK_SUFFIX, images_in, subdirs
from iadbench.errors import IadbenchError, InputError, InputErrors

MISSING_MASK_POLICIES = ("error", "empty", "skip", "annotate")


@dataclass(frozen=True)
class Item:
    """One image of the source and where it goes: ``<product>/<split>/<defect_type>/<name>``."""

    product: str
    split: str  # train | test
    defect_type: str  # good, or the defect type (test only)
    image: Path
    mask: Path | None = None
    name: str = ""  # file name in the MVTec layout (default: the source's)

    @property
    def target_name(self) -> str:
        """File name in the MVTec layout."""
        return self.name or self.image.name


@dataclass
class Collected:
    """What a format found: the items, the facts a user must hear about (notes), anomalous images with no mask."""

    items: list[Item]
    notes: list[str] = field(default_factory=list)
    missing_masks: list[Item] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    """Format options from the command line (only ``folder`` reads them)."""

    product: str = ""
    good_test_fraction: float = 0.2


@dataclass(frozen=True)
class Format:
    """A registered source layout."""

    name: str
    looks_for: str  # what detection looks for, in words (for errors)
    detect: Callable[[Path], bool]  # does this top-level folder (a product; the root for ``folder``) match?
    collect: Callable[[Path, Options], Collected]
    verbatim: bool = False  # already in the MVTec layout: copied as is
    per_product: bool = True  # False: the root itself is the unit (``folder``)
    aux: tuple[str, ...] = ()  # top-level folders that belong to the format but are not products


def _mask_by_stem(folder: Path, stem: str, suffixes: tuple[str, ...] = ("",)) -> Path | None:
    """The mask image in ``folder`` whose stem is ``stem + suffix`` for one of ``suffixes`` (any image extension)."""
    for suffix in suffixes:
        for p in images_in(folder):
            if p.stem == stem + suffix:
                return p
    return None


def _add(out: Collected, item: Item) -> None:
    out.items.append(item)
    if item.split == "test" and item.defect_type != "good" and item.mask is None:
        out.missing_masks.append(item)


# --- mvtec ---------------------------------------------------------------------------------------------------------


def _detect_mvtec(product: Path) -> bool:
    return bool(images_in(product / "train" / "good")) and (product / "test").is_dir()


def _collect_mvtec(root: Path, options: Options) -> Collected:
    out = Collected(items=[])
    for product in subdirs(root):
        for split in ("train", "test"):
            for type_dir in subdirs(product / split):
                for image in images_in(type_dir):
                    mask = None
                    if split == "test" and type_dir.name != "good":
                        mask = _mask_by_stem(product / "ground_truth" / type_dir.name, image.stem, (MASK_SUFFIX,))
                    _add(out, Item(product.name, split, type_dir.name, image, mask))
    return out


# --- btad ----------------------------------------------------------------------------------------------------------


def _detect_btad(product: Path) -> bool:
    return (product / "train" / "ok").is_dir()


def _collect_btad(root: Path, options: Options) -> Collected:
    out = Collected(items=[])
    for product in subdirs(root):
        for image in images_in(product / "train" / "ok"):
            _add(out, Item(product.name, "train", "good", image))
        for type_dir in subdirs(product / "test"):
            defect_type = "good" if type_dir.name == "ok" else type_dir.name
            for image in images_in(type_dir):
                mask = None
                if defect_type != "good":
                    mask = _mask_by_stem(product / "ground_truth" / type_dir.name, image.stem, ("", MASK_SUFFIX))
                _add(out, Item(product.name, "test", defect_type, image, mask))
    return out


# --- visa ----------------------------------------------------------------------------------------------------------

VISA_CSV = Path("split_csv/1cls.csv")
VISA_COLUMNS = ["object", "split", "label", "image", "mask"]


def _detect_visa(product: Path) -> bool:
    return (product / "Data" / "Images").is_dir()


def _collect_visa(root: Path, options: Options) -> Collected:
    path = root / VISA_CSV
    if not path.is_file():
        raise InputError(path, "a VisA folder needs its split file (split_csv/1cls.csv, as VisA ships it)")
    out = Collected(items=[])
    present = {p.name for p in subdirs(root)}
    problems: list[InputError] = []
    absent: set[str] = set()
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if header[:5] != VISA_COLUMNS:
            raise InputError(path, f"header must be {','.join(VISA_COLUMNS)}", f"got {','.join(header)}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < 5:
                problems.append(InputError(f"{path}:{line}", "a row needs 5 fields", ",".join(row)))
                continue
            product, split, label, image, mask = (x.strip() for x in row[:5])
            if product not in present:
                absent.add(product)
                continue
            if split not in ("train", "test") or label not in ("normal", "anomaly"):
                problems.append(InputError(f"{path}:{line}", "split must be train|test, label normal|anomaly",
                                           f"got {split!r}, {label!r}"))  # fmt: skip
                continue
            image_path = root / image
            if not image_path.is_file():
                problems.append(InputError(f"{path}:{line}", "names an image that does not exist", image))
                continue
            mask_path = root / mask if mask else None
            if mask_path is not None and not mask_path.is_file():
                problems.append(InputError(f"{path}:{line}", "names a mask that does not exist", mask))
                continue
            if split == "train" and label == "anomaly":
                problems.append(InputError(f"{path}:{line}", "an anomalous image cannot be a train image", image))
                continue
            defect_type = "good" if label == "normal" else "bad"
            _add(out, Item(product, split, defect_type, image_path, mask_path if defect_type != "good" else None))
    if problems:
        raise InputErrors(problems)
    if absent:
        out.notes.append(f"{VISA_CSV} lists product(s) {sorted(absent)} that are not in the folder: not imported")
    out.notes.append("VisA's split file gives no defect type: anomalous images are type 'bad'")
    return out


# --- mvtec3d -------------------------------------------------------------------------------------------------------


def _detect_mvtec3d(product: Path) -> bool:
    return (product / "train" / "good" / "rgb").is_dir()


def _collect_mvtec3d(root: Path, options: Options) -> Collected:
    out = Collected(items=[])
    for product in subdirs(root):
        for image in images_in(product / "train" / "good" / "rgb"):
            _add(out, Item(product.name, "train", "good", image))
        moved = 0
        for type_dir in subdirs(product / "validation"):
            for image in images_in(type_dir / "rgb"):
                if type_dir.name == "good":
                    _add(out, Item(product.name, "train", "good", image, name=f"validation_{image.name}"))
                    moved += 1
                else:  # MVTec 3D-AD ships good validation images only; anything else is not silently dropped
                    raise InputError(type_dir, "MVTec 3D-AD validation/ holds good images only")
        if moved:
            out.notes.append(f"{product.name}: {moved} validation/good image(s) joined train/good as validation_*")
        for type_dir in subdirs(product / "test"):
            for image in images_in(type_dir / "rgb"):
                mask = None
                if type_dir.name != "good":
                    mask = _mask_by_stem(type_dir / "gt", image.stem)
                _add(out, Item(product.name, "test", type_dir.name, image, mask))
    return out


# --- mvtec_ad2 -----------------------------------------------------------------------------------------------------

AD2_PRIVATE = ("test_private", "test_private_mixed")  # MVTec AD 2's test sets without public ground truth


def _detect_mvtec_ad2(product: Path) -> bool:
    return (
        bool(images_in(product / "train" / "good"))
        and (product / "validation" / "good").is_dir()
        and not (product / "test").is_dir()
    )


def _collect_mvtec_ad2(root: Path, options: Options) -> Collected:
    out = Collected(items=[])
    problems: list[InputError] = []
    for product in subdirs(root):
        public = product / "test_public"
        if not public.is_dir():
            why = "it is the only test set with ground truth (test_private* have none)"
            problems.append(InputError(product, "MVTec AD 2 product has no test_public/", why))
            continue
        for image in images_in(product / "train" / "good"):
            _add(out, Item(product.name, "train", "good", image))
        for type_dir in subdirs(product / "validation"):
            if type_dir.name != "good":  # MVTec AD 2 ships good validation images only: anything else is refused
                problems.append(InputError(type_dir, "MVTec AD 2 validation/ holds good images only"))
                continue
            for image in images_in(type_dir):
                _add(out, Item(product.name, "validation", "good", image))
        for type_dir in subdirs(public):
            if type_dir.name == "ground_truth":
                continue
            for image in images_in(type_dir):
                mask = None
                if type_dir.name != "good":
                    mask = _mask_by_stem(public / "ground_truth" / type_dir.name, image.stem, (MASK_SUFFIX,))
                _add(out, Item(product.name, "test", type_dir.name, image, mask))
        skipped = [f"{d}: {len(images_in(product / d))}" for d in AD2_PRIVATE if (product / d).is_dir()]
        if skipped:
            out.notes.append(f"{product.name}: skipped (no ground truth) {', '.join(skipped)} image(s)")
    if problems:
        raise InputErrors(problems)
    return out


# --- folder --------------------------------------------------------------------------------------------------------

FOLDER_GOOD = "good"
FOLDER_MASKS = ("masks", "mask", "ground_truth")


def _detect_folder(root: Path) -> bool:
    return bool(images_in(root / FOLDER_GOOD))


def _collect_folder(root: Path, options: Options) -> Collected:
    if not 0 < options.good_test_fraction < 1:
        raise IadbenchError(f"--good-test-fraction must be in (0, 1), got {options.good_test_fraction}")
    product = options.product
    out = Collected(items=[])
    good = images_in(root / FOLDER_GOOD)
    n_test = max(1, round(options.good_test_fraction * len(good)))
    if len(good) - n_test < 1:
        raise InputError(root / FOLDER_GOOD, "needs at least 2 good images (one to train on, one to test)")
    # a hash of the file name, not a random draw: the same folder always gives the same train/test good images
    by_hash = sorted(good, key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
    to_test = set(by_hash[:n_test])
    for image in good:
        _add(out, Item(product, "test" if image in to_test else "train", "good", image))
    masks_root = next((root / m for m in FOLDER_MASKS if (root / m).is_dir()), None)
    defect_dirs = [d for d in subdirs(root) if d.name != FOLDER_GOOD and (masks_root is None or d != masks_root)]
    if not defect_dirs:
        raise InputError(root, "a folder dataset needs one folder of anomalous images beside good/")
    for type_dir in defect_dirs:
        for image in images_in(type_dir):
            mask = None
            if masks_root is not None:
                mask = _mask_by_stem(masks_root / type_dir.name, image.stem, ("", MASK_SUFFIX))
                if mask is None and len(defect_dirs) == 1:
                    mask = _mask_by_stem(masks_root, image.stem, ("", MASK_SUFFIX))
            _add(out, Item(product, "test", type_dir.name, image, mask))
    out.notes.append(f"{product}: {n_test} of {len(good)} good images went to test/good (--good-test-fraction "
                     f"{options.good_test_fraction}, chosen by a hash of the file name)")  # fmt: skip
    if masks_root is None:
        out.notes.append("no masks folder (masks/, mask/ or ground_truth/): anomalous images have no masks")
    return out


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("mvtec", "<product>/train/good/<images> and <product>/test/", _detect_mvtec, _collect_mvtec,
               verbatim=True),
        Format("btad", "<product>/train/ok/", _detect_btad, _collect_btad),
        Format("visa", "<product>/Data/Images/ (and split_csv/1cls.csv)", _detect_visa, _collect_visa,
               aux=("split_csv",)),
        Format("mvtec3d", "<product>/train/good/rgb/", _detect_mvtec3d, _collect_mvtec3d),
        Format("mvtec_ad2", "<product>/train/good/ and <product>/validation/good/ beside test_public/",
               _detect_mvtec_ad2, _collect_mvtec_ad2),
        Format("folder", "good/<images> beside one folder per defect type", _detect_folder, _collect_folder,
               per_product=False),
    )
}  # fmt: skip


def detect_format(root: Path) -> str:
    """The one format ``root`` is in; an error lists the formats and what each looks for when there is none, and
    the folders of each format when they are mixed.
    """
    if not root.is_dir():
        raise InputError(root, "source folder not found")
    if FORMATS["folder"].detect(root) and not any(
        f.detect(d) for f in FORMATS.values() if f.per_product for d in subdirs(root)
    ):
        return "folder"
    aux = {a for f in FORMATS.values() for a in f.aux}
    found: dict[str, list[str]] = {}
    unknown: list[str] = []
    for d in subdirs(root):
        if d.name in aux:
            continue
        names = [f.name for f in FORMATS.values() if f.per_product and f.detect(d)]
        if names:
            found.setdefault(names[0], []).append(d.name)
        else:
            unknown.append(d.name)
    if len(found) == 1 and not unknown:
        return next(iter(found))
    looked = "; ".join(f"{f.name}: {f.looks_for}" for f in FORMATS.values())
    if not found:
        raise InputError(root, "no known dataset format found", f"looked for {looked}")
    parts = [f"{name}: {sorted(dirs)}" for name, dirs in sorted(found.items())]
    if unknown:
        parts.append(f"no format: {sorted(unknown)}")
    raise InputError(root, "mixed formats in one folder (import each dataset on its own)", "; ".join(parts))


def collect(root: Path, name: str, options: Options) -> Collected:
    """List ``root``'s items as format ``name``, after checking that every product folder is in that format."""
    if name not in FORMATS:
        raise IadbenchError(f"--format must be one of {sorted(FORMATS)}, got {name!r}")
    fmt = FORMATS[name]
    if not root.is_dir():
        raise InputError(root, "source folder not found")
    if fmt.per_product:
        products = [d for d in subdirs(root) if d.name not in fmt.aux]
        wrong = [d.name for d in products if not fmt.detect(d)]
        if not products or wrong:
            detail = f"folder(s) {sorted(wrong)} do not match" if wrong else "no product folder"
            raise InputError(root, f"not in the {name} layout ({fmt.looks_for})", detail)
    elif not fmt.detect(root):
        raise InputError(root, f"not in the {name} layout ({fmt.looks_for})")
    collected = fmt.collect(root, options)
    if not collected.items:
        raise InputError(root, f"no image found in the {name} layout ({fmt.looks_for})")
    names = {}
    for item in collected.items:
        key = (item.product, item.split, item.defect_type, item.target_name)
        if key in names:
            raise InputError(item.image, "two images would get the same name", f"{names[key]} and {item.image}")
        names[key] = item.image
    return collected


def binary_mask(path: Path) -> np.ndarray:
    """A mask file as a 0/255 ``uint8`` array: any non-zero value (1, 255, 65535, any colour) is foreground."""
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except Exception as exc:  # noqa: BLE001 - the decoder's error is the detail a user needs
        raise InputError(path, "mask does not decode", f"{type(exc).__name__}: {exc}") from exc
    if arr.ndim == 3:
        arr = (arr != 0).any(axis=2)
    return np.where(arr != 0, 255, 0).astype(np.uint8)


def refuse_missing_masks(collected: Collected) -> None:
    """Raise, naming every anomalous image that has no mask (``--missing-masks error``, the default)."""
    if collected.missing_masks:
        raise InputErrors(
            [InputError(i.image, "anomalous image has no mask", "--missing-masks annotate|empty|skip to import anyway")
             for i in collected.missing_masks]
        )  # fmt: skip


def write_items(collected: Collected, dest: Path, missing_masks: str, progress: bool = False) -> dict[str, object]:
    """Write ``collected`` under ``dest`` in the MVTec AD layout; return the import record.

    ``missing_masks``: ``error`` (refuse, listing the images), ``empty`` (write an all-zero mask: the pipeline then
    uses the image at image level only, as the manifest gate's ``gates.empty_mask`` says), ``skip`` (leave the
    image out), ``annotate`` (no mask file: the image is anomalous with its mask *pending*, listed in the record's
    ``pending_masks``, until a mask drawn in Label Studio arrives under ``annotation/masks/<dataset>``). Whatever is
    done is counted in the record.
    """
    if missing_masks not in MISSING_MASK_POLICIES:
        raise IadbenchError(f"--missing-masks must be one of {list(MISSING_MASK_POLICIES)}, got {missing_masks!r}")
    missing = {id(i) for i in collected.missing_masks}
    if missing_masks == "error":
        refuse_missing_masks(collected)
    from tqdm import tqdm

    written, pending = 0, []
    for item in tqdm(collected.items, desc="import", unit="img", disable=not progress):
        if id(item) in missing and missing_masks == "skip":
            continue
        target = dest / item.product / item.split / item.defect_type / item.target_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item.image, target)
        written += 1
        if item.split == "test" and item.defect_type != "good":
            stem = Path(item.target_name).stem
            mask_target = dest / item.product / "ground_truth" / item.defect_type / f"{stem}{MASK_SUFFIX}.png"
            if item.mask is None and missing_masks == "annotate":
                pending.append(f"{item.product}/{item.split}/{item.defect_type}/{item.target_name}")
                continue
            mask_target.parent.mkdir(parents=True, exist_ok=True)
            if item.mask is not None:
                Image.fromarray(binary_mask(item.mask), mode="L").save(mask_target)
            else:
                with Image.open(item.image) as im:
                    size = im.size
                Image.fromarray(np.zeros(size[::-1], np.uint8), mode="L").save(mask_target)
    notes = list(collected.notes)
    if collected.missing_masks:
        verb = {
            "empty": "got an empty mask (image-level only)",
            "skip": "were left out",
            "annotate": "wait for a mask drawn in Label Studio (iadbench annotate push)",
        }[missing_masks]
        notes.append(f"{len(collected.missing_masks)} anomalous image(s) without a mask {verb}: "
                     + ", ".join(i.image.name for i in collected.missing_masks[:10]))  # fmt: skip
    record: dict[str, object] = {"images": written, "notes": notes, "missing_masks": len(collected.missing_masks)}
    if missing_masks == "annotate":
        record["pending_masks"] = sorted(pending)
    return record
