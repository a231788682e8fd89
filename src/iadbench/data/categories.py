"""Defect and background categories from a Label Studio JSON export.

Parsing (:func:`parse_export`) turns the export into one vote per (task, annotator): an annotation with brush regions
votes for its regions' categories (one category, or ``combined`` when its regions carry different ones), one without
for the categories it chose (older exports, the import map, the synthetic annotators). Resolution
(:func:`resolve_categories`) turns votes into one row per manifest image:

- **defect categories** (multi-label): a category is kept when more than half of the annotators chose it; a
  category chosen by exactly half is kept too and the image is flagged ``defect_tie``; if no category reaches
  half, the most-voted categories are kept (several on a tie) and the image is flagged.
- **background** (single choice): the majority choice; on a tie the first in ``(with, without)`` and the image is
  flagged ``background_tie``. Images that no task covers (train and good images, usually) take their product's
  majority background, recorded as ``background_source = product_majority``.
- **agreement**: the fraction of annotators whose choice equals the resolved one (1.0 = unanimous), and the vote
  count per category (``votes_<category>``, ``votes_background_<b>``) from which the summary computes Fleiss' kappa.

Malformed exports (not a list, unknown choice, image outside the dataset root or not in the manifest, duplicate
tasks) raise :class:`~iadbench.errors.InputErrors` naming the export file, the task id and the rule. Cancelled
annotations are skipped (counted in ``n_cancelled``).
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pandas as pd

from iadbench.errors import InputError, InputErrors
from iadbench.labelstudio import (
    BACKGROUND_FIELD,
    DEFECT_FIELD,
    IMAGE_FIELD,
    IMPORT_ANNOTATOR,
    NOTE_FIELD,
    REGION_CATEGORIES,
    REGION_FIELD,
    SIMULATED_PREFIX,
    region_defects,
)
from iadbench.taxonomy import BACKGROUNDS, DEFECT_CATEGORIES, join_categories

CATEGORY_COLUMNS = [
    "image_id", "product", "label", "defect_categories", "background", "background_source", "label_source",
    "n_annotators",
    "n_cancelled", "notes", "defect_agreement", "background_agreement", "defect_tie", "background_tie", "task_id",
    *(f"votes_{c}" for c in DEFECT_CATEGORIES), *(f"votes_background_{b}" for b in BACKGROUNDS),
]  # fmt: skip


LABEL_SOURCES = ("person", "suggestion", "import_map", "simulated", "none")


@dataclass(frozen=True)
class Vote:
    """One annotator's answer for one task (``suggested``: it equals the task's suggestion, accepted unchanged)."""

    task_id: int
    image_id: str
    annotator: str
    defect_categories: frozenset[str]
    background: str | None
    cancelled: bool
    suggested: bool = False
    note: str = ""  # the annotator's free-text note, if any

    @property
    def source(self) -> str:
        """Who the vote comes from: ``import_map``, ``simulated``, or a person (``suggestion`` when unchanged)."""
        if self.annotator == IMPORT_ANNOTATOR:
            return "import_map"
        if self.annotator.startswith(SIMULATED_PREFIX):
            return "simulated"
        return "suggestion" if self.suggested else "person"


def label_source(votes: list[Vote]) -> str:
    """An image's label source from its live votes: ``person`` if any person changed or gave a label,
    ``suggestion`` if every person accepted the suggestion unchanged, else the provisional source, else ``none``.
    """
    sources = {v.source for v in votes}
    for source in LABEL_SOURCES[:-1]:
        if source in sources:
            return source
    return "none"


def image_reference_to_path(reference: str) -> str:
    """Repository-relative path of a task's image reference.

    Accepts Label Studio local-file URLs (``/data/local-files/?d=data/raw/x/...``) and plain relative paths.
    Uploaded files (``/data/upload/...``) and remote URLs have no place in a versioned dataset and are rejected.
    """
    parsed = urlparse(reference)
    if parsed.path.rstrip("/").endswith("/data/local-files"):
        values = parse_qs(parsed.query).get("d")
        if not values:
            raise ValueError("local-files URL without ?d=<path>")
        path = values[0]
    elif parsed.scheme or reference.startswith("/data/"):
        raise ValueError("only Label Studio local-file storage or plain paths are supported, not uploads or URLs")
    else:
        path = unquote(reference)
    return posixpath.normpath(path.replace("\\", "/"))


def annotator_of(annotation: dict) -> str:
    """Who made an annotation: its ``completed_by`` (an e-mail or id when it is an object), as text."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return str(who) if who is not None else f"annotation-{annotation.get('id')}"


def parse_export(export: Path, dataset_root: str, manifest_ids: set[str]) -> list[Vote]:
    """Read ``export`` and return its votes; every problem found is reported at once.

    ``dataset_root`` is the repository-relative dataset folder (``data/raw/<dataset>``): a task image must lie
    inside it and be in ``manifest_ids`` (image ids are paths relative to the dataset root).
    """
    try:
        tasks = json.loads(export.read_text())
    except FileNotFoundError as exc:
        raise InputError(
            export, "annotation export not found", "run `iadbench import` or `iadbench annotate pull`"
        ) from exc
    except json.JSONDecodeError as exc:
        raise InputError(export, "not valid JSON", str(exc)) from exc
    if not isinstance(tasks, list):
        raise InputError(export, "a Label Studio JSON export must be a list of tasks")
    if not tasks:
        raise InputError(export, "export holds no task", "label some images first (see annotation/README.md)")

    root = posixpath.normpath(dataset_root) + "/"
    problems: list[InputError] = []
    votes: list[Vote] = []
    task_of_image: dict[str, int] = {}
    seen_ids: set[int] = set()

    def bad(task_id: object, rule: str, detail: str = "") -> None:
        problems.append(InputError(export, f"task {task_id}: {rule}", detail))

    for task in tasks:
        task_id = task.get("id") if isinstance(task, dict) else None
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            bad(task_id, "task must be an object with a 'data' object")
            continue
        if task_id in seen_ids:
            bad(task_id, "duplicate task id")
            continue
        seen_ids.add(task_id)
        reference = task["data"].get(IMAGE_FIELD)
        if not isinstance(reference, str):
            bad(task_id, f"data.{IMAGE_FIELD} is missing")
            continue
        try:
            path = image_reference_to_path(reference)
        except ValueError as exc:
            bad(task_id, "unsupported image reference", f"{reference!r}: {exc}")
            continue
        if not path.startswith(root):
            bad(task_id, f"image lies outside the dataset root {root}", path)
            continue
        image_id = path[len(root) :]
        if image_id not in manifest_ids:
            bad(task_id, "image does not exist in the manifest", path)
            continue
        if image_id in task_of_image:
            bad(task_id, "duplicate task for one image", f"{image_id} is also task {task_of_image[image_id]}")
            continue
        task_of_image[image_id] = task_id
        suggestion = _suggestion(task)
        for annotation in task.get("annotations") or []:
            vote = _vote(annotation, task_id, image_id, bad)
            if vote is not None:
                shown = _suggestion({"predictions": [annotation.get("prediction")]}) or suggestion
                votes.append(replace(vote, suggested=shown == (vote.defect_categories, vote.background)))
    if problems:
        raise InputErrors(problems)
    return votes


def dataset_votes(export: Path, root: Path, manifest: pd.DataFrame) -> list[Vote]:
    """The votes of one dataset's export, keyed by the manifest's image ids.

    Exports name images by their path under ``root`` (``data/raw/<dataset>``), whatever the run: the export of a
    dataset does not change when a second dataset joins the run and its image ids gain the ``<dataset>/`` prefix.
    """
    ids = relative_ids(manifest, root)
    return [replace(v, image_id=ids[v.image_id]) for v in parse_export(export, root.as_posix(), set(ids))]


def relative_ids(manifest: pd.DataFrame, root: Path) -> dict[str, str]:
    """Path under ``root`` -> manifest image id, for the manifest's images that lie under ``root``."""
    base = posixpath.normpath(root.as_posix()) + "/"
    pairs = zip(manifest["image_id"], manifest["image_path"], strict=True)
    return {path[len(base) :]: image_id for image_id, path in pairs if path.startswith(base)}


def result_choices(result: list) -> tuple[frozenset[str], str | None]:
    """(defect categories, background) of one annotation's or prediction's result list: the categories of its
    regions (:func:`iadbench.labelstudio.region_defects`) where it has regions, else the categories chosen.
    """
    defects: set[str] = set()
    regions: set[str] = set()
    background = None
    for entry in result or []:
        if isinstance(entry, dict) and entry.get("type") == "brushlabels" and entry.get("from_name") == REGION_FIELD:
            regions |= set((entry.get("value") or {}).get("brushlabels") or [])
        if not isinstance(entry, dict) or entry.get("type") != "choices":
            continue
        chosen = (entry.get("value") or {}).get("choices") or []
        if entry.get("from_name") == DEFECT_FIELD:
            defects |= set(chosen)
        elif entry.get("from_name") == BACKGROUND_FIELD and chosen:
            background = chosen[0]
    return (region_defects(regions) if regions else frozenset(defects)), background


def _suggestion(task: dict) -> tuple[frozenset[str], str | None] | None:
    """The (defects, background) the task suggested (its first prediction), or None. Label Studio's export lists a
    task's predictions as ids and puts the prediction an annotation started from in the annotation's ``prediction``
    object; :func:`parse_export` looks there first.
    """
    predictions = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
    return result_choices(predictions[0].get("result") or []) if predictions else None


def _vote(annotation: dict, task_id: int, image_id: str, bad) -> Vote | None:  # noqa: ANN001 - local callback
    defects: set[str] = set()
    regions: set[str] = set()
    background: str | None = None
    ok = True
    note = ""
    for result in annotation.get("result") or []:
        if result.get("type") == "brushlabels" and result.get("from_name") == REGION_FIELD:
            labels = (result.get("value") or {}).get("brushlabels") or []
            if len(labels) != 1 or labels[0] not in REGION_CATEGORIES:
                bad(task_id, f"a region must carry one category of {list(REGION_CATEGORIES)}",
                    f"region {result.get('id')} has {labels}")  # fmt: skip
                ok = False
            regions |= set(labels)
        if result.get("type") == "textarea" and result.get("from_name") == NOTE_FIELD:
            note = " ".join(str(t) for t in (result.get("value") or {}).get("text") or []).strip()
        if result.get("type") != "choices":
            continue
        name = result.get("from_name")
        chosen = (result.get("value") or {}).get("choices") or []
        if name == DEFECT_FIELD:
            unknown = sorted(set(chosen) - set(DEFECT_CATEGORIES))
            if unknown:
                bad(task_id, f"unknown defect category {unknown}", f"valid: {list(DEFECT_CATEGORIES)}")
                ok = False
            defects |= set(chosen)
        elif name == BACKGROUND_FIELD:
            unknown = sorted(set(chosen) - set(BACKGROUNDS))
            if unknown or len(chosen) > 1:
                bad(task_id, f"background must be one of {list(BACKGROUNDS)}", f"got {chosen}")
                ok = False
            elif chosen:
                background = chosen[0]
    if not ok:
        return None
    return Vote(
        task_id=task_id,
        image_id=image_id,
        annotator=annotator_of(annotation),
        defect_categories=region_defects(regions) if regions else frozenset(defects),
        background=background,
        cancelled=bool(annotation.get("was_cancelled")),
        note=note,
    )


def resolve_defects(choices: list[frozenset[str]]) -> tuple[frozenset[str], bool, float]:
    """Majority vote over multi-label choices → ``(categories, tie, agreement)`` (see module docstring)."""
    n = len(choices)
    if n == 0:
        return frozenset(), False, 0.0
    counts = Counter(c for choice in choices for c in choice)
    if not counts:
        return frozenset(), False, 1.0
    kept = {c for c, k in counts.items() if 2 * k >= n}
    tie = any(2 * k == n for c, k in counts.items())
    if not kept:
        top = max(counts.values())
        kept = {c for c, k in counts.items() if k == top}
        tie = True
    resolved = frozenset(kept)
    agreement = sum(choice == resolved for choice in choices) / n
    return resolved, tie, agreement


def resolve_background(choices: list[str]) -> tuple[str | None, bool, float]:
    """Majority vote over single choices → ``(background, tie, agreement)``; ties go to the first in BACKGROUNDS."""
    if not choices:
        return None, False, 0.0
    counts = Counter(choices)
    top = max(counts.values())
    winners = [b for b in BACKGROUNDS if counts.get(b, 0) == top]
    return winners[0], len(winners) > 1, top / len(choices)


def resolve_categories(votes: list[Vote], manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per manifest image with its resolved categories (see module docstring)."""
    by_image: dict[str, list[Vote]] = {}
    for vote in votes:
        by_image.setdefault(vote.image_id, []).append(vote)
    rows = []
    for image in manifest.itertuples(index=False):
        image_votes = by_image.get(image.image_id, [])
        live = [v for v in image_votes if not v.cancelled]
        defects, defect_tie, defect_agreement = resolve_defects([v.defect_categories for v in live])
        background, background_tie, background_agreement = resolve_background(
            [v.background for v in live if v.background is not None]
        )
        rows.append(
            {
                "image_id": image.image_id,
                "product": image.product,
                "label": image.label,
                "defect_categories": join_categories(defects),
                "background": background or "",
                "background_source": "annotation" if background else "",
                "label_source": label_source(live),
                "notes": " | ".join(f"{v.annotator}: {v.note}" for v in live if v.note),
                "n_annotators": len(live),
                "n_cancelled": len(image_votes) - len(live),
                "defect_agreement": round(defect_agreement, 6),
                "background_agreement": round(background_agreement, 6),
                "defect_tie": defect_tie,
                "background_tie": background_tie,
                "task_id": image_votes[0].task_id if image_votes else "",
                **{f"votes_{c}": sum(c in v.defect_categories for v in live) for c in DEFECT_CATEGORIES},
                **{f"votes_background_{b}": sum(v.background == b for v in live) for b in BACKGROUNDS},
            }
        )
    table = pd.DataFrame(rows, columns=CATEGORY_COLUMNS)
    for product, group in table.groupby("product"):
        annotated = group.loc[group["background_source"] == "annotation", "background"]
        if annotated.empty:
            continue
        majority, _, _ = resolve_background(list(annotated))
        missing = (table["product"] == product) & (table["background"] == "")
        table.loc[missing, "background"] = majority
        table.loc[missing, "background_source"] = "product_majority"
    return table.sort_values("image_id", kind="stable").reset_index(drop=True)
