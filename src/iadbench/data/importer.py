"""``iadbench import PATH --name NAME``: bring an MVTec-layout folder in as ``data/raw/NAME``, tracked by DVC.

The source folder is only read. The copy goes to a hidden temporary folder first and is renamed into place only
once it is complete, so a failed import never leaves a half dataset under ``data/raw``; an existing dataset of the
same name is never overwritten.

Categories: pass ``--export`` (a Label Studio JSON export) to bring annotators' labels along; or, before anyone
has labelled, ``--defect-map`` and ``--background`` write a provisional export in the same shape that maps each
defect type to a category, recorded as annotator ``iadbench-import`` so it is never mistaken for a human label.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from iadbench.data.manifest import check_segments, list_files
from iadbench.errors import IadbenchError, InputError
from iadbench.labelstudio import BACKGROUND_FIELD, DEFECT_FIELD, choices_result, local_file_url
from iadbench.params import DATASET_NAME
from iadbench.paths import dataset_root, export_path
from iadbench.taxonomy import BACKGROUNDS, DEFECT_CATEGORIES

IMPORT_ANNOTATOR = "iadbench-import"


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


def mapped_export(root: Path, dest_root: str, defect_map: dict[str, str], background: str) -> list[dict]:
    """Provisional Label Studio export: one task per anomalous test image, category from its defect type."""
    listing = list_files(root)
    anomalous = [(p, d, path) for p, s, d, path in listing.images if s == "test" and d != "good"]
    unmapped = sorted({d for _, d, _ in anomalous} - set(defect_map))
    if unmapped:
        raise IadbenchError(f"--defect-map does not cover defect type(s) {unmapped} found under {root}/*/test/")
    tasks = []
    for k, (_, defect_type, path) in enumerate(sorted(anomalous, key=lambda t: t[2].as_posix()), start=1):
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
                            choices_result(DEFECT_FIELD, [defect_map[defect_type]], f"{k}-d"),
                            choices_result(BACKGROUND_FIELD, [background], f"{k}-b"),
                        ],
                    }
                ],
                "predictions": [],
            }
        )
    return tasks


def _dvc_add(*paths: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", "add", *map(str, paths)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise IadbenchError(
            f"`dvc add {' '.join(map(str, paths))}` failed:\n{proc.stderr.strip() or proc.stdout.strip()}"
        )


def import_dataset(
    source: Path,
    name: str,
    export: Path | None = None,
    defect_map: dict[str, str] | None = None,
    background: str | None = None,
    track: bool = True,
) -> list[Path]:
    """Copy ``source`` to ``data/raw/<name>`` and ``dvc add`` it (and its export); return the paths added."""
    if not DATASET_NAME.match(name):
        raise IadbenchError(f"--name must be a plain folder name (letters, digits, _ . -), got {name!r}")
    if background is not None and background not in BACKGROUNDS:
        raise IadbenchError(f"--background must be one of {list(BACKGROUNDS)}, got {background!r}")
    if export is not None and (defect_map or background):
        raise IadbenchError("give either --export or --defect-map/--background, not both")
    if defect_map and background is None:
        raise IadbenchError("--defect-map needs --background (with|without) so that every image gets one")
    source = source.resolve()
    dest = dataset_root(name)
    if dest.exists() or dest.with_suffix(".dvc").exists():
        raise InputError(dest, "dataset already imported", f"to replace it: dvc remove {dest}.dvc && rm -rf {dest}")
    if dest.resolve() == source or dest.resolve() in source.parents or source in dest.resolve().parents:
        raise InputError(source, "source and destination overlap")
    list_files(source)  # layout errors before anything is copied
    check_segments(source)  # and a product's segments.png (SegAD), if it has one

    tasks = None
    if export is not None:
        try:
            tasks = json.loads(export.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(export, "export is not a readable JSON file", str(exc)) from exc
        if not isinstance(tasks, list):
            raise InputError(export, "a Label Studio JSON export must be a list of tasks")
    elif defect_map:
        tasks = mapped_export(source, dest.as_posix(), defect_map, background or "")

    export_dest = export_path(name)
    if tasks is not None and export_dest.exists():
        raise InputError(export_dest, "an export for this dataset already exists", "remove it first")
    staging = dest.with_name(f".{name}.importing")
    if staging.exists():
        shutil.rmtree(staging)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(source, staging, symlinks=False)
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    added = [dest]
    if tasks is not None:
        export_dest.parent.mkdir(parents=True, exist_ok=True)
        export_dest.write_text(json.dumps(tasks, indent=1, sort_keys=True) + "\n")
        added.append(export_dest)
    if track:
        _dvc_add(*added)
    return added
