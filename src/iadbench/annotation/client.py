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
from iadbench.data.categories import annotator_of, image_reference_to_path, parse_export
from iadbench.errors import IadbenchError, InputError
from iadbench.labelstudio import IMPORT_ANNOTATOR
from iadbench.paths import ASSIGNMENT, dataset_root, export_path

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "LABEL_STUDIO_URL"
TOKEN_ENV = "LABEL_STUDIO_API_KEY"


SANDBOX_ROOT = Path("annotation/sandbox")  # git-ignored: a sandbox pull's export and masks, never a pipeline input


def project_title(dataset: str, sandbox: bool = False) -> str:
    """The title that identifies a dataset's project (push finds it again by this title); a sandbox is its own."""
    return f"iadbench {dataset}" + (" (sandbox)" if sandbox else "")


def pull_targets(dataset: str, sandbox: bool = False) -> tuple[Path, Path]:
    """Where a pull writes (export file, mask folder): the versioned inputs of the pipeline, or for a sandbox
    ``annotation/sandbox/<dataset>/``, which no stage reads.
    """
    from iadbench.data.drawn import drawn_root

    if sandbox:
        return SANDBOX_ROOT / dataset / "export.json", SANDBOX_ROOT / dataset / "masks"
    return export_path(dataset), drawn_root(dataset)


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


def find_project(client: Any, dataset: str, sandbox: bool = False) -> Any | None:
    """The dataset's project (or its sandbox), or None."""
    title = project_title(dataset, sandbox)
    matches = [p for p in client.projects.list() if p.title == title]
    return min(matches, key=lambda p: p.id) if matches else None


def _existing_image_ids(client: Any, project_id: int) -> dict[str, int]:
    return {t.data.get("image_id"): t.id for t in client.tasks.list(project=project_id, fields="all")}


def push(
    client: Any,
    dataset: str,
    assignment: pd.DataFrame,
    categories: pd.DataFrame,
    prefill: str | None = None,
    prefill_rule: str = "good_quantile",
    sandbox: bool = False,
    products: list[str] | None = None,
) -> dict[str, Any]:
    """Create or update the project and import the tasks it lacks (re-running imports nothing twice).

    ``assignment``: the split's rows with their masks (``data/assignment.csv`` joined with ``data/masks.csv``).
    ``prefill``: a model whose trained cells pre-draw regions on the images without a mask, at the normal-only
    pixel threshold ``prefill_rule``, for the run's ``products`` (None: every product of the dataset; a product
    outside the run has no trained cell, so its images get no regions, said in the result). ``sandbox``: a separate
    project (``iadbench NAME (sandbox)``) whose pulls go to ``annotation/sandbox/``, never to the pipeline's inputs:
    to learn the interface, on the synthetic data too (where ``prefill`` then pre-draws every image).

    Refused: the synthetic dataset outside a sandbox (its export is the synthesize stage's output, written by
    simulated annotators: a pull could never bring labels back), and a dataset whose images are not in
    ``data/assignment.csv`` (pushing another dataset's images under this dataset's project title is how labels end
    up on the wrong images).
    """
    if dataset == "synthetic" and not sandbox:
        raise InputError(
            export_path(dataset), "the synthetic dataset is not labelled in Label Studio",
            "its categories come from simulated annotators in the synthesize stage, whose output this file is; a "
            "pull could never replace it. Try the interface on it with --sandbox, or import a real dataset "
            "(iadbench import) and push that",
        )  # fmt: skip
    in_run = sorted(set(assignment["dataset"].astype(str)))
    if dataset not in in_run:
        raise InputError(
            ASSIGNMENT, f"dataset {dataset!r} is not in the run's assignment (it holds {in_run})",
            f"set data.datasets to include {dataset} and dvc repro first, so that the tasks are its images",
        )  # fmt: skip
    root = dataset_root(dataset)
    if not root.is_dir():
        raise InputError(root, "dataset not found", f"import it first: iadbench import PATH --name {dataset}")
    rows = assignment[assignment["dataset"] == dataset]
    masks, version, skipped = _prefill(rows, prefill, prefill_rule, sandbox, products) if prefill else ({}, "", [])
    tasks = build_tasks(rows, categories, dataset, masks, version)
    if not tasks:
        raise InputError(ASSIGNMENT, f"no anomalous validation/test image of dataset {dataset!r} to label")
    project = find_project(client, dataset, sandbox)
    created = project is None
    if created:
        project = client.projects.create(
            title=project_title(dataset, sandbox), label_config=label_config(),
            description=f"Defect regions and background categories of {dataset} (iadbench; see annotation/README.md)"
            + (": a sandbox, whose labels never reach the pipeline" if sandbox else ""),
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
            "tasks": len(tasks), "prefilled": len(masks), "prefill_version": version,
            "prefill_skipped_products": skipped}  # fmt: skip


def _prefill(
    rows: pd.DataFrame, model: str, rule: str, everywhere: bool = False, products: list[str] | None = None
) -> tuple[dict[str, Any], str, list[str]]:
    """The detector's regions for every anomalous validation/test image without a mask (``everywhere``, a sandbox:
    every one, so that the pre-drawn regions can be tried on data that ships masks), per product of the run (its
    cell); the products left out because the run does not hold them.
    """
    from iadbench.annotation.masks import prefill_masks

    candidates = rows["split"].isin(["validation", "test"]) & (rows["label"] == "anomalous")
    wanted = rows[candidates & ((rows["mask_path"] == "") | everywhere)]
    if wanted.empty:
        raise IadbenchError(f"--prefill {model}: every anomalous validation/test image already has a mask; nothing to "
                            "pre-draw (the tasks show the masks themselves)")  # fmt: skip
    skipped = sorted(set(wanted["product"]) - set(products)) if products is not None else []
    wanted = wanted[~wanted["product"].isin(skipped)]
    if wanted.empty:
        raise IadbenchError(f"--prefill {model}: the images without a mask belong to {skipped}, none of which is in "
                            "data.products: no trained cell can pre-draw them")  # fmt: skip
    masks: dict[str, Any] = {}
    versions = set()
    for product, group in wanted.groupby("product", sort=True):
        found, _, version = prefill_masks(model, str(product), rule, sorted(group["image_id"]))
        masks.update(found)
        versions.add(version)
    return masks, "; ".join(sorted(versions)), skipped


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


def _image_key(task: dict) -> str:
    reference = (task.get("data") or {}).get("image", "")
    try:
        return image_reference_to_path(reference)
    except ValueError:
        return str(reference)


def merge_exports(previous: list[dict], current: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """Merge the server's export (``current``) into the versioned one (``previous``), per image and annotator.

    On an image someone labelled on the server (a non-cancelled annotation), the server's annotations win: they
    replace that annotator's earlier ones and the provisional import-map vote; earlier labels of *other* people (an
    imported export, say) stay. An image nobody has labelled on the server keeps its previous annotations (the
    server's cancellations are added, so that skips are still counted). Images only in ``previous`` stay as they
    were, renumbered past the server's task ids if their id collides. Returns the merged tasks and counts.
    """
    before = {_image_key(t): t for t in previous if isinstance(t, dict)}
    merged, counts = [], {"labelled_now": 0, "kept_previous": 0, "only_previous": 0}
    seen: set[str] = set()
    for task in current:
        key = _image_key(task)
        seen.add(key)
        old = before.get(key)
        now = [a for a in task.get("annotations") or [] if isinstance(a, dict)]
        live = {annotator_of(a) for a in now if not a.get("was_cancelled")}
        on_server = {(a.get("id"), annotator_of(a)) for a in now}  # the server still holds these: not twice
        earlier = [a for a in (old or {}).get("annotations") or []
                   if isinstance(a, dict) and (a.get("id"), annotator_of(a)) not in on_server]  # fmt: skip
        if live:
            kept = [a for a in earlier if annotator_of(a) not in live | {IMPORT_ANNOTATOR}]
            counts["labelled_now"] += 1
        else:
            kept = earlier
            counts["kept_previous"] += bool(kept)
        merged.append({**task, "annotations": [*now, *kept]})
    taken = {t.get("id") for t in merged}
    next_id = max([i for i in taken if isinstance(i, int)], default=0) + 1
    for key, task in before.items():
        if key in seen:
            continue
        if task.get("id") in taken:
            task = {**task, "id": next_id}
            next_id += 1
        taken.add(task.get("id"))
        merged.append(task)
        counts["only_previous"] += 1
    return merged, counts


def _download(client: Any, dataset: str, sandbox: bool = False) -> tuple[Any, object]:
    """The dataset's project and its whole export (every task, labelled or not), parsed."""
    project = find_project(client, dataset, sandbox)
    if project is None:
        title = project_title(dataset, sandbox)
        flag = " --sandbox" if sandbox else ""
        raise IadbenchError(f"Label Studio has no project {title!r}: run `iadbench annotate push{flag}` first")
    raw = b"".join(client.projects.exports.download_sync(id=project.id, export_type="JSON", download_all_tasks=True))
    try:
        tasks = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise IadbenchError(f"Label Studio's export of project {project.id} is not JSON: {exc}") from None
    return project, _with_predictions(client, project.id, tasks)


def _with_predictions(client: Any, project_id: int, tasks: object) -> object:
    """The export with every task's predictions as objects (model version, result), not the bare ids Label Studio's
    JSON export lists: the pre-drawn regions a mask's provenance is measured against then live in the versioned
    export itself, whether or not an annotator started from them in the interface.
    """
    if not isinstance(tasks, list) or not any(
        not isinstance(p, dict) for t in tasks if isinstance(t, dict) for p in t.get("predictions") or []
    ):
        return tasks
    by_task: dict[object, list[dict[str, Any]]] = {}
    for p in client.predictions.list(project=project_id):
        by_task.setdefault(p.task, []).append({"id": p.id, "model_version": p.model_version, "result": p.result})
    for task in tasks:
        if isinstance(task, dict) and task.get("predictions"):
            task["predictions"] = sorted(by_task.get(task.get("id"), []), key=lambda p: p["id"])
    return tasks


def pull(
    client: Any,
    dataset: str,
    manifest_ids: set[str],
    track: bool = True,
    replace: bool = False,
    images: dict[str, tuple[Path, Path | None]] | None = None,
    sandbox: bool = False,
) -> dict[str, Any]:
    """Export the project, merge it into the versioned export (``replace``: overwrite it instead), validate the
    result like the categories stage will, turn its regions into masks (:func:`iadbench.annotation.masks.build_masks`,
    ``images``: image id -> (image, shipped mask) of the dataset's anomalous validation/test images), then replace
    the export file and the mask folder atomically. Any problem: nothing is written. ``sandbox``: the sandbox
    project, written to ``annotation/sandbox/<dataset>/`` and never tracked.
    """
    from iadbench.annotation.masks import build_masks, write_masks

    target, masks_root = pull_targets(dataset, sandbox)
    if dataset == "synthetic" and not sandbox:
        raise InputError(target, "the synthetic export is written by the synthesize stage",
                         "pull a real dataset, or the synthetic sandbox with --sandbox")  # fmt: skip
    _, tasks = _download(client, dataset, sandbox)
    counts: dict[str, int] = {}
    if not replace and isinstance(tasks, list) and target.is_file():
        try:
            previous = json.loads(target.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(target, "the versioned export is not JSON, so a pull cannot merge into it",
                             f"{exc}; pull with --replace to overwrite it") from None  # fmt: skip
        if isinstance(previous, list):
            tasks, counts = merge_exports(previous, tasks)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.pulling")
    staging.write_text(stable_export(tasks) if isinstance(tasks, list) else json.dumps(tasks))
    try:
        votes = parse_export(staging, dataset_root(dataset).as_posix(), manifest_ids)
        drawn, mask_counts = build_masks(target, tasks if isinstance(tasks, list) else [], images or {})
    except IadbenchError as exc:
        staging.unlink()
        raise IadbenchError(f"nothing was written ({target} and {masks_root} are unchanged): {exc}") from None
    unlabelled = sum(1 for t in tasks if not [a for a in t.get("annotations") or [] if not a.get("was_cancelled")])
    os.replace(staging, target)
    wrote_masks = bool(drawn) or masks_root.exists()
    if wrote_masks:
        write_masks(masks_root, drawn, dataset)
    if track and not sandbox:
        _dvc_add(target, *([masks_root] if wrote_masks else []))
    sources: dict[str, int] = {}
    for m in drawn:
        sources[m.source] = sources.get(m.source, 0) + 1
    agreements = [m.agreement_iou for m in drawn if m.agreement_iou is not None]
    return {"path": str(target), "tasks": len(tasks), "votes": len(votes), "unlabelled_tasks": unlabelled,
            "merged": not replace and bool(counts), **counts, "masks_path": str(masks_root) if wrote_masks else "",
            "masks": len(drawn), "mask_sources": dict(sorted(sources.items())), **mask_counts,
            "mean_agreement_iou": round(sum(agreements) / len(agreements), 4) if agreements else None}  # fmt: skip


def labelling_status(tasks: list[dict]) -> dict[str, Any]:
    """Progress of a project from its export: tasks, labelled ones, annotators per task, disagreements (tasks whose
    people chose different defect categories or backgrounds), cancellations, the people who labelled, and the tasks
    with drawn regions (masks on the next pull).
    """
    from iadbench.data.categories import result_choices
    from iadbench.labelstudio import REGION_FIELD

    per_task, disagree, cancelled, people, regions = [], 0, 0, set(), 0
    for task in tasks:
        live = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
        cancelled += sum(1 for a in task.get("annotations") or [] if isinstance(a, dict) and a.get("was_cancelled"))
        per_task.append(len({annotator_of(a) for a in live}))
        people |= {annotator_of(a) for a in live}
        if len({result_choices(a.get("result") or []) for a in live}) > 1:
            disagree += 1
        regions += any(r.get("from_name") == REGION_FIELD for a in live for r in a.get("result") or [])
    by_count: dict[str, int] = {}
    for n in per_task:
        by_count[str(n)] = by_count.get(str(n), 0) + 1
    return {"tasks": len(tasks), "labelled": sum(n > 0 for n in per_task), "annotators": len(people),
            "by_annotators": dict(sorted(by_count.items())), "disagreements": disagree,
            "cancelled": cancelled, "with_regions": regions}  # fmt: skip


def status(client: Any, dataset: str, sandbox: bool = False) -> dict[str, Any]:
    """:func:`labelling_status` of the dataset's project, read from the server (nothing is written)."""
    project, tasks = _download(client, dataset, sandbox)
    return {"project_id": project.id, **labelling_status(tasks if isinstance(tasks, list) else [])}


def _dvc_add(*paths: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "dvc", "add", *map(str, paths)], capture_output=True, text=True)
    if proc.returncode != 0:
        names = " ".join(map(str, paths))
        raise IadbenchError(f"`dvc add {names}` failed:\n{proc.stderr.strip() or proc.stdout.strip()}")
