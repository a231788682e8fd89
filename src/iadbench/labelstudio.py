"""The Label Studio JSON export shape iadbench reads and writes.

An export is a list of tasks; each task has ``data`` (our label config uses ``$image`` and ``$reference``; ``$mask``
names the shipped mask, if any) and ``annotations``, each with ``result`` entries such as::

    {"from_name": "defect_region", "to_name": "image", "type": "brushlabels", "original_width": 900,
     "original_height": 900, "value": {"format": "rle", "rle": [...], "brushlabels": ["surface"]}}
    {"from_name": "background", "to_name": "image", "type": "choices", "value": {"choices": ["with"]}}

(older exports, the import map and the synthetic annotators choose ``defect_category`` instead of drawing regions).

Images are referenced through Label Studio's local-file storage, ``/data/local-files/?d=<path>``, where
``<path>`` is relative to the repository root (the server's ``LOCAL_FILES_DOCUMENT_ROOT``).
"""

from __future__ import annotations

from urllib.parse import quote

DEFECT_FIELD = "defect_category"  # defect categories chosen without a region (a defect nobody can outline)
REGION_FIELD = "defect_region"  # brush regions, each labelled with one region category
REGION_CATEGORIES: tuple[str, ...] = ("structural", "surface", "contamination")  # "combined" is never one region
BACKGROUND_FIELD = "background"
NOTE_FIELD = "note"  # the annotator's free-text note (a TextArea)
IMAGE_FIELD = "image"
LOCAL_FILES_PREFIX = "/data/local-files/?d="


def local_file_url(repo_relative_path: str) -> str:
    """Label Studio local-files URL of a repository-relative path (slashes kept readable)."""
    return LOCAL_FILES_PREFIX + quote(repo_relative_path, safe="/")


def choices_result(from_name: str, choices: list[str], result_id: str) -> dict:
    """One ``choices`` result entry as Label Studio exports it."""
    return {
        "id": result_id,
        "from_name": from_name,
        "to_name": IMAGE_FIELD,
        "type": "choices",
        "origin": "manual",
        "value": {"choices": list(choices)},
    }


def region_defects(labels: set[str] | frozenset[str]) -> frozenset[str]:
    """An image's defect categories from its regions' labels: the one category of its regions, or ``combined`` when
    its regions carry different categories (several defects at once, in several components: [Rethinking]'s
    definition of combined).
    """
    labels = frozenset(labels)
    return frozenset({"combined"}) if len(labels) > 1 else labels


IMPORT_ANNOTATOR = "iadbench-import"  # the provisional per-type map written by `iadbench import`
SIMULATED_PREFIX = "simulated-"  # the synthesize stage's simulated annotators (never mistaken for a person)
