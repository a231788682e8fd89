"""``iadbench import PATH --name NAME [--format F]``: bring a dataset in as ``data/raw/NAME`` (MVTec AD layout),
tracked by DVC. Formats (MVTec AD, BTAD, VisA, MVTec 3D-AD, a folder per class) are registered in
:mod:`iadbench.data.formats`; the import record ``data/raw/NAME/import.json`` says what was converted.

The source folder is only read. The copy goes to a hidden temporary folder first and is renamed into place only
once it is complete, so a failed import never leaves a half dataset under ``data/raw``; an existing dataset of the
same name is never overwritten.

Categories: pass ``--export`` (a Label Studio JSON export) to bring annotators' labels along; or, before anyone
has labelled, ``--defect-map`` and ``--background`` write a provisional export in the same shape that maps each
defect type to a category, recorded as annotator ``iadbench-import`` so it is never mistaken for a human label;
MVTec AD and BTAD get such an export from the maps shipped in :mod:`iadbench.data.category_maps`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from iadbench.data.category_maps import MAP_FILES, CategoryMap, default_map
from iadbench.data.formats import (
    MISSING_MASK_POLICIES,
    Collected,
    Options,
    collect,
    detect_format,
    refuse_missing_masks,
    write_items,
)
from iadbench.data.manifest import check_segments, list_files
from iadbench.errors import IadbenchError, InputError
from iadbench.labelstudio import (
    BACKGROUND_FIELD,
    DEFECT_FIELD,
    IMPORT_ANNOTATOR,
    choices_result,
    local_file_url,
)
from iadbench.params import DATASET_NAME
from iadbench.paths import dataset_root, export_path
from iadbench.taxonomy import BACKGROUNDS, DEFECT_CATEGORIES

IMPORT_RECORD = "import.json"  # at the dataset root: format, source, counts and notes of the import


def parse_defect_map(text: str) -> dict[str, str]:
    """Parse ``"crack=structural,blowhole=surface"`` into a dict, checking every category name."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" not in item:
            raise IadbenchError(f"--defect-map: expected defect_type=category, got {item!r}")
        defect, category = (x.strip() for x in item.split("=", 1))
        if category not in DEFECT_CATEGORIES:
            raise IadbenchError(
                f"--defect-map: unknown category {category!r} for {defect!r}; valid: {list(DEFECT_CATEGORIES)}"
            )
        mapping[defect] = category
    return mapping


def mapped_export(
    root: Path, dest_root: str, category_of: Callable[[str, str], str], background_of: Callable[[str], str]
) -> list[dict]:
    """Provisional Label Studio export: one task per anomalous test image of ``root`` (MVTec layout), category
    ``category_of(product, defect_type)``, background ``background_of(product)``; annotator ``iadbench-import``.
    """
    listing = list_files(root)
    anomalous = sorted(((p, d, path) for p, s, d, path in listing.images if s == "test" and d != "good"),
                       key=lambda t: t[2].as_posix())  # fmt: skip
    tasks = []
    for k, (product, defect_type, path) in enumerate(anomalous, start=1):
        rel = path.relative_to(root).as_posix()
        tasks.append(
            {
                "id": k,
                "data": {"image": local_file_url(f"{dest_root}/{rel}")},
                "annotations": [
                    {
                        "id": k,
                        "completed_by": IMPORT_ANNOTATOR,
                        "was_cancelled": False,
                        "result": [
                            choices_result(DEFECT_FIELD, [category_of(product, defect_type)], f"{k}-d"),
                            choices_result(BACKGROUND_FIELD, [background_of(product)], f"{k}-b"),
                        ],
                    }
                ],
                "predictions": [],
            }
        )
    return tasks


def _anomalous_counts(root: Path) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for product, split, defect_type, _ in list_files(root).images:
        if split == "test" and defect_type != "good":
            counts[(product, defect_type)] = counts.get((product, defect_type), 0) + 1
    return counts


def _default_categories(fmt: str, root: Path, notes: list[str]) -> CategoryMap | None:
    """The shipped map of ``fmt`` if it covers every anomalous (product, defect type) of ``root``; notes say why
    not, and where the imported counts differ from the public release's.
    """
    cmap = default_map(fmt)
    if cmap is None:
        return None
    counts = _anomalous_counts(root)
    uncovered = sorted(k for k in counts if k not in cmap.categories)
    if uncovered:
        shown = ", ".join(f"{p}/{d}" for p, d in uncovered[:8])
        notes.append(f"the shipped {cmap.name} category map was not applied: it does not cover {shown}; "
                     "give --defect-map or --export, or label in Label Studio")  # fmt: skip
        return None
    differ = [f"{p}/{d}: {n} (release {cmap.n_test[(p, d)]})" for (p, d), n in sorted(counts.items())
              if (p, d) in cmap.n_test and cmap.n_test[(p, d)] != n]  # fmt: skip
    if differ:
        notes.append(f"image counts differ from the public {cmap.name} release: " + "; ".join(differ[:8]))
    notes.append(f"categories: the shipped {cmap.name} per-type map, recorded as annotator {IMPORT_ANNOTATOR!r} "
                 "(provisional; refine in Label Studio)")  # fmt: skip
    return cmap


def _dvc_add(*paths: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", "add", *map(str, paths)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise IadbenchError(
            f"`dvc add {' '.join(map(str, paths))}` failed:\n{proc.stderr.strip() or proc.stdout.strip()}"
        )


@dataclass
class Imported:
    """What an import did: the paths it added (and `dvc add`ed), the format it read, the notes a user must see."""

    added: list[Path]
    fmt: str
    record: dict[str, object]

    @property
    def notes(self) -> list[str]:
        """What the user must hear about the import."""
        return list(self.record["notes"])  # type: ignore[call-overload]


def refuse_outside_links(source: Path) -> None:
    """Refuse a dataset holding a symbolic link that leads outside it: copying would follow it and put a file from
    elsewhere (anything the user can read) into ``data/raw``. Links within the dataset are fine.
    """
    import os

    root = source.resolve()
    for folder, dirs, files in os.walk(source, followlinks=False):
        for name in (*dirs, *files):
            path = Path(folder) / name
            if path.is_symlink():
                target = path.resolve()
                if target != root and root not in target.parents:
                    raise InputError(
                        path, f"symbolic link to {target}, outside the dataset: refused (it would be followed and "
                        "its target copied into data/raw)", "copy the file into the dataset or remove the link",
                    )  # fmt: skip


def _check_arguments(name: str, export: Path | None, defect_map: dict[str, str] | None, background: str | None,
                     missing_masks: str) -> None:  # fmt: skip
    """The command-line arguments' own rules, before any file is read."""
    if not DATASET_NAME.match(name):
        raise IadbenchError(f"--name must be a plain folder name (letters, digits, _ . -), got {name!r}")
    if background is not None and background not in BACKGROUNDS:
        raise IadbenchError(f"--background must be one of {list(BACKGROUNDS)}, got {background!r}")
    if export is not None and (defect_map or background):
        raise IadbenchError("give either --export or --defect-map/--background, not both")
    if defect_map and background is None:
        raise IadbenchError("--defect-map needs --background (with|without) so that every image gets one")
    if missing_masks not in MISSING_MASK_POLICIES:
        raise IadbenchError(f"--missing-masks must be one of {list(MISSING_MASK_POLICIES)}, got {missing_masks!r}")


def _read_export(export: Path | None) -> list | None:
    """The tasks of a Label Studio JSON export (None without one)."""
    if export is None:
        return None
    try:
        tasks = json.loads(export.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(export, "export is not a readable JSON file", str(exc)) from exc
    if not isinstance(tasks, list):
        raise InputError(export, "a Label Studio JSON export must be a list of tasks")
    return tasks


def _categories(tasks: list | None, staging: Path, dest: Path, source: Path, fmt: str,
                defect_map: dict[str, str] | None, background: str | None, default_categories: bool,
                notes: list[str]) -> list | None:  # fmt: skip
    """The category tasks of the staged copy: the export's, else the defect map's, else the format's shipped map."""
    if tasks is None and defect_map:
        unmapped = sorted({d for _, d in _anomalous_counts(staging)} - set(defect_map))
        if unmapped:
            raise IadbenchError(f"--defect-map does not cover defect type(s) {unmapped} found in {source}")
        tasks = mapped_export(staging, dest.as_posix(), lambda p, d: defect_map[d], lambda p: background or "")
    elif tasks is None and default_categories:
        cmap = _default_categories(fmt, staging, notes)
        if cmap is not None:
            tasks = mapped_export(staging, dest.as_posix(), lambda p, d: cmap.categories[(p, d)],
                                  lambda p: cmap.backgrounds[p])  # fmt: skip
    return tasks


def import_dataset(
    source: Path,
    name: str,
    export: Path | None = None,
    defect_map: dict[str, str] | None = None,
    background: str | None = None,
    track: bool = True,
    fmt: str | None = None,
    options: Options | None = None,
    missing_masks: str = "error",
    default_categories: bool = True,
    progress: bool = False,
) -> Imported:
    """Copy a dataset as it ships to ``data/raw/<name>`` in the MVTec AD layout and ``dvc add`` it and its export.

    Categories, in order: ``export`` (a Label Studio JSON export), ``defect_map`` + ``background`` (one category per
    defect type), the shipped map of the format (MVTec AD, BTAD) when it covers every defect type, else none (label
    the dataset in Label Studio before the pipeline can run on it). The copy is staged beside the destination and
    renamed into place only when complete; ``source`` is never written.

    Args:
        source: the dataset folder as it ships (read only).
        name: the dataset's name, a plain folder name: ``data/raw/<name>``, an entry of ``data.datasets``.
        export: a Label Studio JSON export with the dataset's categories (``annotation/exports/<name>.json``).
        defect_map: provisional categories, defect type -> ``structural|surface|contamination|combined``.
        background: with ``defect_map``: every image's background category, ``with`` or ``without``.
        track: ``dvc add`` the copy and the export (False: copy only).
        fmt: the source layout, a registered format (``mvtec``, ``btad``, ``visa``, ``mvtec3d``, ``folder``);
            None: detected from the folder (the error lists what each format looks for).
        options: format options (the ``folder`` format's product name and share of good test images).
        missing_masks: anomalous images without a mask: ``error`` (refuse), ``empty`` (an empty mask: image-level
            metrics only) or ``skip`` (left out).
        default_categories: apply the format's shipped per-type category map (MVTec AD, BTAD) when no other is given.
        progress: show a progress bar while writing.

    Returns:
        What was added (the dataset folder, and the export when one was written), the format and the import record
        (``data/raw/<name>/import.json``: image count, notes, masks handled).

    Raises:
        IadbenchError: an argument breaks its rule (named), or the defect map misses a defect type.
        InputError: the source (or export) breaks a layout rule, the destination exists, or they overlap.

    """
    _check_arguments(name, export, defect_map, background, missing_masks)
    refuse_outside_links(source)
    source = source.resolve()
    dest = _destination(source, name)
    fmt = fmt or detect_format(source)
    collected = _collect_checked(source, name, fmt, options or Options(), missing_masks)
    tasks = _read_export(export)
    export_dest = export_path(name)
    if export_dest.exists() and (export is not None or defect_map or (default_categories and fmt in MAP_FILES)):
        raise InputError(export_dest, "an export for this dataset already exists", "remove it first")
    categorise = partial(_categories, source=source, fmt=fmt, defect_map=defect_map, background=background,
                         default_categories=default_categories)  # fmt: skip
    record, tasks = _write_staged(collected, source, dest, fmt, missing_masks, tasks, categorise, export, progress)
    added = [dest]
    if tasks is not None:
        export_dest.parent.mkdir(parents=True, exist_ok=True)
        export_dest.write_text(json.dumps(tasks, indent=1, sort_keys=True) + "\n")
        added.append(export_dest)
    if track:
        _dvc_add(*added)
    return Imported(added=added, fmt=fmt, record=record)


def _destination(source: Path, name: str) -> Path:
    """``data/raw/<name>``, refused when it (or its .dvc file) exists or overlaps the source."""
    dest = dataset_root(name)
    if dest.exists() or dest.with_suffix(".dvc").exists():
        raise InputError(dest, "dataset already imported", f"to replace it: dvc remove {dest}.dvc && rm -rf {dest}")
    if dest.resolve() == source or dest.resolve() in source.parents or source in dest.resolve().parents:
        raise InputError(source, "source and destination overlap")
    return dest


def _collect_checked(source: Path, name: str, fmt: str, options: Options, missing_masks: str) -> Collected:
    """The source's images in ``fmt``, every layout rule checked before anything is copied."""
    options = replace(options, product=options.product or name)
    if fmt == "folder" and not DATASET_NAME.match(options.product):
        raise IadbenchError(f"--product must be a plain folder name, got {options.product!r}")
    collected = collect(source, fmt, options)
    if missing_masks == "error":
        refuse_missing_masks(collected)
    if fmt == "mvtec":
        list_files(source)
        check_segments(source)  # and a product's segments.png (SegAD), if it has one
    return collected


def _write_staged(
    collected: Collected,
    source: Path,
    dest: Path,
    fmt: str,
    missing_masks: str,
    tasks: list[dict] | None,
    categorise: Callable[..., list[dict] | None],
    export: Path | None,
    progress: bool,
) -> tuple[dict[str, object], list[dict] | None]:
    """Write the dataset beside ``dest`` (``.<name>.importing``), its categories and import record, and rename it
    into place only when complete; the record and the categories' tasks.
    """
    staging = dest.with_name(f".{dest.name}.importing")
    if staging.exists():
        shutil.rmtree(staging)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if fmt == "mvtec" and not collected.missing_masks:
            shutil.copytree(source, staging, symlinks=False)
            record = {"images": len(collected.items), "notes": list(collected.notes), "missing_masks": 0}
        else:
            record = write_items(collected, staging, missing_masks, progress=progress)
        list_files(staging)  # what the pipeline will read
        notes: list[str] = record["notes"]  # type: ignore[assignment]
        tasks = categorise(tasks, staging, dest, notes=notes)
        if tasks is None and export is None:
            notes.append(f"no categories yet: label the anomalous images (iadbench annotate push --dataset "
                         f"{dest.name}) or import again with --defect-map/--export")  # fmt: skip
        record = {"format": fmt, "source": source.as_posix(), **record}
        (staging / IMPORT_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return record, tasks
