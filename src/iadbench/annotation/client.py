"""push and pull: the project on a Label Studio server and the versioned export file.

The server URL and token come from the environment (``LABEL_STUDIO_URL``, default ``http://127.0.0.1:8080``, and
``LABEL_STUDIO_API_KEY``); nothing about the server is written to the repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from iadbench.annotation.config import label_config
from iadbench.annotation.tasks import build_tasks
from iadbench.data.categories import parse_export
from iadbench.errors import IadbenchError, InputError
from iadbench.paths import dataset_root, export_path

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "LABEL_STUDIO_URL"
TOKEN_ENV = "LABEL_STUDIO_API_KEY"


def project_title(dataset: str) -> str:
    """The title that identifies a dataset's project (push finds it again by this title)."""
    return f"iadbench {dataset}"


def connect(url: str | None = None, token: str | None = None) -> Any:
    """A checked SDK client: unreachable server and rejected token are one-line errors, not tracebacks."""
    import httpx
    from label_studio_sdk import LabelStudio
    from label_studio_sdk.core.api_error import ApiError

    url = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    token = token or os.environ.get(TOKEN_ENV)
    if not token:
        raise IadbenchError(f"no Label Studio token: set {TOKEN_ENV} (Account & Settings → Access Token in the UI)")
    client = LabelStudio(base_url=url, api_key=token, timeout=60)
    try:
        client.users.whoami()
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise IadbenchError(
            f"cannot reach Label Studio at {url} ({exc.__class__.__name__}); start it with `iadbench annotate serve` "
            f"or set {URL_ENV}"
        ) from None
    except ApiError as exc:
        if exc.status_code in (401, 403):
            raise IadbenchError(
                f"Label Studio at {url} rejected the token (HTTP {exc.status_code}); set {TOKEN_ENV} to your access "
                "token (Account & Settings in the UI)"
            ) from None
        raise IadbenchError(f"Label Studio at {url} answered HTTP {exc.status_code}: {exc.body}") from None
    return client


def find_project(client: Any, dataset: str) -> Any | None:
    """The dataset's project, or None."""
    title = project_title(dataset)
    matches = [p for p in client.projects.list() if p.title == title]
    return min(matches, key=lambda p: p.id) if matches else None


def _existing_image_ids(client: Any, project_id: int) -> dict[str, int]:
    return {t.data.get("image_id"): t.id for t in client.tasks.list(project=project_id, fields="all")}


def push(client: Any, dataset: str, assignment: pd.DataFrame, categories: pd.DataFrame) -> dict[str, Any]:
    """Create or update the project and import the tasks it lacks (re-running imports nothing twice)."""
    root = dataset_root(dataset)
    if not root.is_dir():
        raise InputError(root, "dataset not found", f"import it first: iadbench import PATH --name {dataset}")
    tasks = build_tasks(assignment[assignment["dataset"] == dataset], categories, dataset)
    if not tasks:
        raise InputError("data/assignment.csv", f"no anomalous validation/test image of dataset {dataset!r} to label")
    project = find_project(client, dataset)
    created = project is None
    if created:
        project = client.projects.create(
            title=project_title(dataset), label_config=label_config(),
            description=f"Defect and background categories of {dataset} (iadbench; see annotation/README.md)",
        )  # fmt: skip
    elif project.label_config != label_config():
        client.projects.update(id=project.id, label_config=label_config())
    storages = client.import_storage.local.list(project=project.id)
    path = str(root.resolve())
    if not any(getattr(s, "path", None) == path for s in storages):
        # serving /data/local-files needs a local storage that covers the files; tasks are imported below, not synced
        client.import_storage.local.create(project=project.id, path=path, title=f"{dataset} images",
                                           use_blob_urls=False)  # fmt: skip
    existing = _existing_image_ids(client, project.id)
    new = [t for t in tasks if t["data"]["image_id"] not in existing]
    if new:
        client.projects.import_tasks(id=project.id, request=new, commit_to_project=True)
    return {"project_id": project.id, "created": created, "imported": len(new), "already_there": len(existing),
            "tasks": len(tasks)}  # fmt: skip


def _order(value: object) -> tuple:
    """Sort key: integers numerically (9 before 10), then anything else as text."""
    return (0, value, "") if isinstance(value, int) and not isinstance(value, bool) else (1, 0, str(value))


def stable_export(tasks: list[dict]) -> str:
    """The export as text in a stable order: tasks by image id, annotations by id, keys sorted."""
    for task in tasks:
        for key in ("annotations", "predictions"):  # entries are objects, or bare ids in some export versions
            if isinstance(task.get(key), list):
                task[key] = sorted(task[key], key=lambda a: _order(a.get("id") if isinstance(a, dict) else a))
    ordered = sorted(tasks, key=lambda t: (str((t.get("data") or {}).get("image_id", "")), _order(t.get("id"))))
    return json.dumps(ordered, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def pull(client: Any, dataset: str, manifest_ids: set[str], track: bool = True) -> dict[str, Any]:
    """Export the project, validate it like the categories stage will, then replace the export file atomically."""
    target = export_path(dataset)
    if dataset == "synthetic":
        raise InputError(target, "the synthetic export is written by the synthesize stage", "pull a real dataset")
    project = find_project(client, dataset)
    if project is None:
        title = project_title(dataset)
        raise IadbenchError(f"Label Studio has no project {title!r}: run `iadbench annotate push` first")
    raw = b"".join(client.projects.exports.download_sync(id=project.id, export_type="JSON", download_all_tasks=True))
    try:
        tasks = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise IadbenchError(f"Label Studio's export of project {project.id} is not JSON: {exc}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.pulling")
    staging.write_text(stable_export(tasks) if isinstance(tasks, list) else json.dumps(tasks))
    try:
        votes = parse_export(staging, dataset_root(dataset).as_posix(), manifest_ids)
    except IadbenchError as exc:
        staging.unlink()
        raise IadbenchError(f"the export was not written ({target} is unchanged): {exc}") from None
    unlabelled = sum(1 for t in tasks if not [a for a in t.get("annotations") or [] if not a.get("was_cancelled")])
    os.replace(staging, target)
    if track:
        _dvc_add(target)
    return {"path": str(target), "tasks": len(tasks), "votes": len(votes), "unlabelled_tasks": unlabelled}


def _dvc_add(path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", "add", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise IadbenchError(f"`dvc add {path}` failed:\n{proc.stderr.strip() or proc.stdout.strip()}")
