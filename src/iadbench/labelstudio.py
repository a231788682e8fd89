"""The Label Studio JSON export shape iadbench reads and writes.

An export is a list of tasks; each task has ``data`` (our label config uses ``$image``, ``$mask`` and
``$reference``) and ``annotations``, each with ``result`` entries such as::

    {"from_name": "defect_category", "to_name": "image", "type": "choices",
     "value": {"choices": ["structural"]}}

Images are referenced through Label Studio's local-file storage, ``/data/local-files/?d=<path>``, where
``<path>`` is relative to the repository root (the server's ``LOCAL_FILES_DOCUMENT_ROOT``).
"""

from __future__ import annotations

from urllib.parse import quote

DEFECT_FIELD = "defect_category"
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


IMPORT_ANNOTATOR = "iadbench-import"  # the provisional per-type map written by `iadbench import`
SIMULATED_PREFIX = "simulated-"  # the synthesize stage's simulated annotators (never mistaken for a person)
