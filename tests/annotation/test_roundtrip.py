"""The annotation round trip against a real Label Studio server on 127.0.0.1 (its own venv, telemetry off).

A fresh copy of this repository imports a tiny dataset whose half of the anomalous images ship no mask
(``--missing-masks annotate``: pending), builds the DAG, then: push with regions pre-drawn by the trained PaDiM cell
→ annotators answer through the API (categories first, then regions whose RLE the SDK makes) → status → pull →
`dvc repro` reruns what reads categories or masks, nothing upstream of them (no model retrains), and the categories
table, the masks on disk and the evaluation say what the annotators said. The server's environment is created on
first use (annotation/.label-studio/venv, a few minutes) and reused afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from iadbench.annotation import server
from iadbench.synth.generate import generate
from tests.conftest import TINY, make_repo, tiny_synth, tree_digest

pytestmark = pytest.mark.slow(seconds=204)
PROJECT = Path(__file__).resolve().parents[2]
TOKEN = "0123456789abcdef0123456789abcdef01234567"
DEFECT_MAP = (
    "missing_part=structural,crack=structural,scratch=surface,dent=surface,glue=contamination,combined=combined,"
    "chip=structural,dirt=contamination,stain=surface,bend=structural,discolour=surface,fluff=contamination,"
    "hole=structural,snag=structural"
)


def choose(defects: list[str], background: str) -> list[dict]:
    return [
        {"from_name": "defect_category", "to_name": "image", "type": "choices", "value": {"choices": defects}},
        {"from_name": "background", "to_name": "image", "type": "choices", "value": {"choices": [background]}},
    ]


def _annotators(client) -> list:
    existing = {u.email: u for u in client.users.list()}
    return [
        existing.get(f"annotator{i}@iadbench.invalid")
        or client.users.create(
            email=f"annotator{i}@iadbench.invalid", password="annotator-pass-1", username=f"annotator{i}"
        )
        for i in (1, 2)
    ]


def _run(cmd: list[str], repo: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def server_venv_cache(lock: Path) -> Path:
    """The Label Studio server environment the tests use, kept across clones and runs under the user's cache and
    keyed by the lock's content (``~/.cache/iadbench/label-studio-<sha256[:16]>``): a fresh clone on a machine that
    ran the suite before does not reinstall it (a few minutes); another lock gets its own."""
    import hashlib

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "iadbench"
    return cache / f"label-studio-{hashlib.sha256(lock.read_bytes()).hexdigest()[:16]}"


def test_the_server_environment_is_keyed_by_its_lock(tmp_path):
    a, b = tmp_path / "a.lock", tmp_path / "b.lock"
    a.write_text("label-studio==1.0\n")
    b.write_text("label-studio==1.1\n")
    assert server_venv_cache(a) != server_venv_cache(b) and server_venv_cache(a).parent.name == "iadbench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(repo, env, client, url): a repo on the imported tiny dataset 'tinyreal', built, and a running server."""
    base = tmp_path_factory.mktemp("roundtrip")
    params = {**TINY, "data": {**TINY["data"], "datasets": ["tinyreal"]}, "models": ["padim"]}
    repo, env = make_repo(base / "iadbench", params)
    source = base / "source"
    images = source / "data/raw/synthetic"  # export paths are relative to `source`, as to a repository root
    generate(tiny_synth(), images, source / "export.json", source, progress=False)
    for mask in sorted(images.glob("*/ground_truth/*/*_mask.png"))[::2]:  # a new product: half its masks not drawn
        mask.unlink()
    # before anyone labels: the provisional per-type map (annotator "iadbench-import"), as a new user starts
    _run(["iadbench", "import", str(images), "--name", "tinyreal", "--background", "with", "--defect-map", DEFECT_MAP,
          "--missing-masks", "annotate"], repo, env)  # fmt: skip
    _run(["dvc", "repro"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "built"], repo, env)

    venv = server_venv_cache(PROJECT / server.LOCK)
    server.ensure_environment(venv, PROJECT / server.LOCK)
    binary = server.server_binary(venv)
    log = (base / "server.log").open("w")
    with pytest.MonkeyPatch.context() as patch:  # the credentials leave os.environ with the module
        patch.setenv("LABEL_STUDIO_USERNAME", "admin@iadbench.invalid")
        patch.setenv("LABEL_STUDIO_PASSWORD", "roundtrip-pass-1")
        patch.setenv("LABEL_STUDIO_API_KEY", TOKEN)
        for attempt in range(3):  # a free port can be taken between the probe and the server's bind: retry
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            process = server.start("127.0.0.1", port, base / f"ls-data-{attempt}", repo, binary=binary, stdout=log,
                                   stderr=subprocess.STDOUT, cwd=base)  # fmt: skip
            try:
                server.wait_until_up(url, timeout=600, process=process)
                break
            except Exception:
                process.terminate()
                process.wait(timeout=60)
                if attempt == 2:
                    raise
        try:
            from iadbench.annotation.client import connect

            env.update(LABEL_STUDIO_URL=url, LABEL_STUDIO_API_KEY=TOKEN)
            yield repo, env, connect(url, TOKEN), url
        finally:
            process.terminate()
            process.wait(timeout=60)
            log.close()


@pytest.fixture(scope="module")
def pushed(world) -> str:
    """The first push of the module (what every test that needs tasks on the server depends on)."""
    repo, env, _, _ = world
    # good_fpr: the lowest normal-only threshold, so that the tiny 64-px PaDiM pre-draws on several images
    push = ["iadbench", "annotate", "push", "--dataset", "tinyreal", "--prefill", "padim", "--prefill-rule", "good_fpr"]
    return _run(push, repo, env).stdout


def _stages_run(output: str) -> set[str]:
    import re

    return set(re.findall(r"Running stage '([^']+)'", output))


def test_push_is_idempotent(world, pushed):
    repo, env, _, _ = world
    assignment = pd.read_csv(repo / "data/assignment.csv")
    expected = int(((assignment["label"] == "anomalous") & (assignment["split"] != "train")).sum())
    first = pushed
    assert "created project" in first and f"imported {expected} new task(s)" in first
    pending_masks = json.loads((repo / "data/raw/tinyreal/import.json").read_text())["pending_masks"]
    pending = sum(p.startswith("nut/") for p in pending_masks)  # the run's product: the others have no cell
    assert pending and f"pre-drawn regions on {pending} image(s) without a mask" in first
    assert "(iadbench-prefill padim good_fpr t=" in first
    assert "no pre-drawn regions for product(s) ['tiles', 'weave']: not in data.products" in first
    again = _run(["iadbench", "annotate", "push", "--dataset", "tinyreal"], repo, env).stdout
    assert "imported 0 new task(s)" in again


def _tasks(client):
    from iadbench.annotation.client import find_project

    project = find_project(client, "tinyreal")
    return sorted(client.tasks.list(project=project.id, fields="all"), key=lambda t: t.data["image_id"])


@pytest.fixture(scope="module")
def first_sitting(world, pushed) -> dict:
    """Two people label the second half of the tasks as contamination; status, pull, `dvc repro`, commit."""
    repo, env, client, _ = world
    tasks = _tasks(client)
    subset = tasks[len(tasks) // 2 :]
    for user in _annotators(client):
        for task in subset:
            client.annotations.create(id=task.id, result=choose(["contamination"], "with"), completed_by=user.id)
    status = _run(["iadbench", "annotate", "status", "--dataset", "tinyreal"], repo, env).stdout
    pulled = _run(["iadbench", "annotate", "pull", "--dataset", "tinyreal"], repo, env).stdout
    _run(["dvc", "repro"], repo, env)  # the categories gate passes: nobody's labels were lost
    found = {
        "tasks": tasks, "subset": subset, "status": status, "pulled": pulled,
        "categories": pd.read_csv(repo / "data/categories.csv", keep_default_na=False).set_index("image_id"),
        "summary": json.loads((repo / "reports/data_summary.json").read_text())["annotation"]["label_source"],
    }  # fmt: skip
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "first sitting"], repo, env)
    return found


def test_a_first_sitting_labels_a_subset_and_the_pipeline_still_runs(first_sitting):
    """Two people label half the tasks; the pull merges, so the other half keeps its provisional labels, the
    categories gate passes and the summary says how many categories a person confirmed.
    """
    tasks, subset, status = first_sitting["tasks"], first_sitting["subset"], first_sitting["status"]
    assert f"{len(subset)} of {len(tasks)} task(s) labelled by 2 person(s)" in status and "0 disagreement(s)" in status
    assert f"merged with the previous export: {len(subset)} image(s) labelled on the server" in first_sitting["pulled"]
    cats = first_sitting["categories"]
    labelled = [t.data["image_id"] for t in subset]
    rest = [t.data["image_id"] for t in tasks[: len(tasks) // 2]]
    sources = cats.loc[labelled, "label_source"]  # 'suggestion' where the suggested answer was contamination too
    assert set(sources) <= {"person", "suggestion"} and (sources == "person").any()
    assert (cats.loc[labelled, "defect_categories"] == "contamination").all()
    assert (cats.loc[rest, "label_source"] == "import_map").all() and (cats.loc[rest, "n_annotators"] == 1).all()
    summary = first_sitting["summary"]
    assert summary["person"] + summary["suggestion"] == len(labelled) and summary["import_map"] == len(rest)


def test_annotate_pull_repro_changes_only_categories_and_tables(world, first_sitting):
    """The second sitting labels the rest: the first task with a disagreement, the others as contamination."""
    repo, env, client, url = world
    tasks = _tasks(client)
    shipped = [t for t in tasks if t.data["mask_source"] == "shipped"]
    assert shipped and all(t.data["mask"].startswith("/data/local-files/?d=data/raw/tinyreal/") for t in shipped)
    annotators = _annotators(client)
    for i, task in enumerate(tasks[: len(tasks) // 2]):
        if i == 0:  # the annotators disagree: kept as multi-label and flagged as a tie
            answers = [(["structural"], "with"), (["surface"], "with")]
        else:  # both relabel the image as contamination
            answers = [(["contamination"], "with"), (["contamination"], "with")]
        for user, (defects, background) in zip(annotators, answers, strict=True):
            client.annotations.create(id=task.id, result=choose(defects, background), completed_by=user.id)
    client.annotations.create(id=tasks[-1].id, result=choose(["surface"], "without"), was_cancelled=True)

    cache_before = tree_digest(repo / ".dvc/cache")
    raw_before = tree_digest(repo / "data/raw/tinyreal")
    assignment_before = (repo / "data/assignment.csv").read_bytes()
    out = _run(["iadbench", "annotate", "pull", "--dataset", "tinyreal"], repo, env).stdout
    assert "annotation/exports/tinyreal.json" in out
    export = json.loads((repo / "annotation/exports/tinyreal.json").read_text())
    assert [t["data"]["image_id"] for t in export] == [t.data["image_id"] for t in tasks]
    assert "tinyreal.json" in _run(["git", "status", "--short"], repo, env).stdout  # the .dvc file changed

    ran = _stages_run(_run(["dvc", "repro"], repo, env).stdout)
    assert {"categories", "gate_categories", "metrics", "report"} <= ran
    assert not any(s.startswith(("train@", "predict@", "thresholds@", "evaluate@")) for s in ran), ran
    # figures: the overlays pick the best and worst image per category, so new categories redraw them
    assert ran <= {"categories", "gate_categories", "split", "gate_split", "summary", "metrics", "gate_tables",
                   "figures", "report", "gate_docs"}  # fmt: skip
    assert (repo / "data/assignment.csv").read_bytes() == assignment_before
    assert tree_digest(repo / "data/raw/tinyreal") == raw_before
    cache_after = tree_digest(repo / ".dvc/cache")
    assert all(cache_after.get(k) == v for k, v in cache_before.items())

    cats = pd.read_csv(repo / "data/categories.csv", keep_default_na=False).set_index("image_id")
    tie, rest = tasks[0].data["image_id"], [t.data["image_id"] for t in tasks[1:]]
    assert cats.loc[tie, "defect_categories"] == "structural|surface" and bool(cats.loc[tie, "defect_tie"])
    assert (cats.loc[rest, "defect_categories"] == "contamination").all()
    assert int(cats.loc[rest[-1], "n_cancelled"]) == 1
    table = pd.read_csv(repo / "reports/tables/categories.csv")
    contamination = table[(table["group"] == "contamination") & (table["rule"] == "iou")]
    evaluated = pd.read_csv(repo / "data/assignment.csv").query("split == 'test' and product == 'nut'")
    assert int(contamination["n_images"].iloc[0]) == len(set(rest) & set(evaluated["image_id"]))
    summary = json.loads((repo / "reports/data_summary.json").read_text())
    assert "contamination" in summary["annotation"]["fleiss_kappa"]


def _prefill_regions(client, task) -> list[dict]:
    """The regions the detector pre-drew on a task (its iadbench-prefill prediction)."""
    for prediction in client.predictions.list(task=task.id):
        if str(prediction.model_version).startswith("iadbench-prefill"):
            return [dict(r) for r in prediction.result if str(dict(r).get("id", "")).startswith("prefill-")]
    return []


def _submit(client, task, user, result: list[dict]) -> None:
    """The annotator's answer on the task: their earlier annotation updated, or a new one."""
    mine = [a for a in client.annotations.list(id=task.id) if a.completed_by == user.id]
    if mine:
        client.annotations.update(id=mine[0].id, result=result)
    else:
        client.annotations.create(id=task.id, result=result, completed_by=user.id)


def _decode(result: list[dict], size: tuple[int, int]):
    import numpy as np

    from iadbench.annotation.masks import decode_region

    return np.logical_or.reduce([decode_region(r, size) for r in result if r["type"] == "brushlabels"])


@pytest.fixture(scope="module")
def mask_sitting(world, pushed) -> dict:
    """Two people draw regions on two pending test images: on one both submit the pre-drawn regions unchanged, on the
    other one adds a region to them and the other draws only that region. Status, pull, `dvc repro`."""
    import numpy as np
    from PIL import Image

    from iadbench.annotation.masks import region_result

    repo, env, client, _ = world
    split = pd.read_csv(repo / "data/split.csv", keep_default_na=False).set_index("image_id")
    tasks = [t for t in _tasks(client) if t.data["mask_source"] == "pending"]
    drawn = [
        (t, r) for t in tasks if split.loc[t.data["image_id"], "split"] == "test" and (r := _prefill_regions(client, t))
    ]
    assert len(drawn) >= 2, "the tiny PaDiM pre-drew regions on fewer than two pending test images"
    (accepted, accepted_regions), (edited, edited_regions) = drawn[:2]
    before = {k: json.loads((repo / "reports/evaluate/padim/nut.json").read_text())["test"][k]
              for k in ("anomalous_with_mask", "mask_sources")}  # fmt: skip
    raw_before, cache_before = tree_digest(repo / "data/raw/tinyreal"), tree_digest(repo / ".dvc/cache")
    background = choose([], "with")[1:]
    annotators = _annotators(client)
    expected = {}
    for task, regions, extra in ((accepted, accepted_regions, False), (edited, edited_regions, True)):
        size = (regions[0]["original_width"], regions[0]["original_height"])
        box = np.zeros(size[::-1], bool)
        box[: size[1] // 4, : size[0] // 4] = True  # a corner the detector did not pre-draw (checked below)
        added = region_result(box, "contamination", "added")
        answers = [regions + [added], [added]] if extra else [regions, regions]
        masks = []
        for user, answer in zip(annotators, answers, strict=True):
            result = [{**r, "origin": "manual"} for r in answer] + background
            _submit(client, task, user, result)
            masks.append(_decode(result, size))
        expected[task.data["image_id"]] = 2 * np.stack(masks).astype(int).sum(axis=0) >= len(masks)
        if extra:
            assert not (_decode(regions, size) >= box).all()
    status = _run(["iadbench", "annotate", "status", "--dataset", "tinyreal"], repo, env).stdout
    pulled = _run(["iadbench", "annotate", "pull", "--dataset", "tinyreal"], repo, env).stdout
    on_disk = {}
    for image_id in expected:
        with Image.open(repo / "annotation/masks/tinyreal" / image_id) as im:
            on_disk[image_id] = (im.mode, np.asarray(im))
    repro = _run(["dvc", "repro"], repo, env).stdout
    found = {
        "accepted": accepted.data["image_id"], "edited": edited.data["image_id"], "expected": expected,
        "on_disk": on_disk, "status": status, "pulled": pulled, "ran": _stages_run(repro), "before": before,
        "raw_before": raw_before, "cache_before": cache_before,
        "masks": pd.read_csv(repo / "data/masks.csv", keep_default_na=False).set_index("image_id"),
        "evaluate": json.loads((repo / "reports/evaluate/padim/nut.json").read_text()),
        "report": (repo / "reports/report.md").read_text(),
    }  # fmt: skip
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["exclude_prefill_accepted"] = False
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # the cell's evaluation and what it needs (thresholds, gates): the tables and report are not asked here
    found["ran_counted"] = _stages_run(_run(["dvc", "repro", "evaluate@padim-nut"], repo, env).stdout)
    found["evaluate_counted"] = json.loads((repo / "reports/evaluate/padim/nut.json").read_text())
    return found


def test_regions_drawn_on_pending_images_become_the_masks_the_evaluation_reads(world, mask_sitting):
    """Pre-drawn, corrected, pulled: the masks on disk equal the submitted regions (pixel majority of two people),
    their provenance is counted, `dvc repro` retrains nothing, and data/raw and the DVC cache stay as they were."""
    import numpy as np

    repo, *_ = world
    found = mask_sitting
    assert "regions drawn on 2 task(s)" in found["status"]
    assert "2 mask(s) (1 prefill_accepted, 1 prefill_edited)" in found["pulled"]
    for image_id, mask in found["expected"].items():
        mode, pixels = found["on_disk"][image_id]
        assert mode == "L" and set(np.unique(pixels).tolist()) <= {0, 255}
        assert np.array_equal(pixels > 0, mask), image_id
    masks = found["masks"]
    assert masks.loc[found["accepted"], "mask_source"] == "prefill_accepted"
    assert masks.loc[found["edited"], "mask_source"] == "prefill_edited"
    assert masks.loc[found["edited"], "mask_path"] == f"annotation/masks/tinyreal/{found['edited']}"
    ran = found["ran"]
    assert {"manifest", "split", "thresholds@padim-nut", "evaluate@padim-nut", "report"} <= ran, ran
    assert not any(s.startswith(("train@", "predict@")) for s in ran), ran
    assert tree_digest(repo / "data/raw/tinyreal") == found["raw_before"]
    cache_after = tree_digest(repo / ".dvc/cache")
    assert all(cache_after.get(k) == v for k, v in found["cache_before"].items())
    # pending before; now the edited mask counts in pixel figures and the accepted one is left out (the default)
    before, test = found["before"], found["evaluate"]["test"]
    assert before["mask_sources"]["pending"] >= 2
    assert test["mask_sources"]["prefill_accepted"] == 1 and test["mask_sources"]["prefill_edited"] == 1
    assert test["mask_sources"].get("pending", 0) == before["mask_sources"]["pending"] - 2
    assert test["anomalous_with_mask"] == before["anomalous_with_mask"] + 1
    assert test["mask_sources_excluded"] == ["prefill_accepted"]
    assert "1 mask(s) accepted unchanged from a detector's pre-drawn regions: left out of pixel" in found["report"]


def test_the_bias_param_puts_accepted_prefills_back_into_pixel_figures(mask_sitting):
    ran, counted = mask_sitting["ran_counted"], mask_sitting["evaluate_counted"]["test"]
    assert "evaluate@padim-nut" in ran and not any(s.startswith(("train@", "predict@")) for s in ran), ran
    assert counted["mask_sources_excluded"] == []
    assert counted["anomalous_with_mask"] == mask_sitting["evaluate"]["test"]["anomalous_with_mask"] + 1


def test_the_server_command_line_holds_no_secret(world):
    """What `ps` shows every user of the machine: the running server's arguments (Linux /proc)."""
    repo, env, _, url = world
    port = url.rsplit(":", 1)[1]
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "label-studio" in line and port in line:
            lines.append(line)
    assert lines, "the server process was not found"
    for line in lines:
        assert "roundtrip-pass-1" not in line and TOKEN not in line and "--password" not in line


def test_wrong_token_is_a_clear_error(world):
    repo, env, _, url = world
    proc = _run(["iadbench", "annotate", "push", "--dataset", "tinyreal"], repo,
                {**env, "LABEL_STUDIO_API_KEY": "f" * 40}, check=False)  # fmt: skip
    assert proc.returncode == 2
    assert f"Label Studio at {url} rejected the token (HTTP 401)" in proc.stderr and "Traceback" not in proc.stderr


def test_local_files_are_served_only_with_a_token(world):
    import urllib.error
    import urllib.request

    repo, _, client, url = world
    image = pd.read_csv(repo / "data/assignment.csv").query("label == 'anomalous'")["image_path"].iloc[0]
    request = urllib.request.Request(f"{url}/data/local-files/?d={image}", headers={"Authorization": f"Token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local server
        assert response.status == 200 and response.read(8).startswith(b"\x89PNG")
    try:  # without a token: refused, or redirected to the login page, never the image
        with urllib.request.urlopen(f"{url}/data/local-files/?d={image}", timeout=30) as response:  # noqa: S310
            assert not response.read(8).startswith(b"\x89PNG")
    except urllib.error.HTTPError as exc:
        assert exc.code in (401, 403, 404)
