"""pull against a recorded-export fake: every bad export leaves annotation/exports/ untouched."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from iadbench.annotation import client as c
from iadbench.data.categories import parse_export, resolve_categories
from iadbench.errors import IadbenchError

IDS = {"nut/test/crack/000.png", "nut/test/crack/001.png"}


def _task(task_id: int, image_id: str, *annotations: dict, root: str = "data/raw/tile") -> dict:
    return {"id": task_id, "data": {"image": f"/data/local-files/?d={root}/{image_id}", "image_id": image_id},
            "annotations": list(annotations), "predictions": []}  # fmt: skip


def _ann(ann_id: int, who: int, defects: list[str], background: str = "without", cancelled: bool = False) -> dict:
    result = [
        {"from_name": "defect_category", "to_name": "image", "type": "choices", "value": {"choices": defects}},
        {"from_name": "background", "to_name": "image", "type": "choices", "value": {"choices": [background]}},
        {"from_name": "note", "to_name": "image", "type": "textarea", "value": {"text": ["looks like glue"]}},
    ]
    return {"id": ann_id, "completed_by": who, "result": result, "was_cancelled": cancelled}


class FakeClient:
    """The three SDK calls pull makes, answering with a recorded export."""

    def __init__(self, export: object, title: str = "iadbench tile") -> None:
        payload = export if isinstance(export, bytes) else json.dumps(export).encode()
        self.projects = SimpleNamespace(
            list=lambda: [SimpleNamespace(id=7, title=title)],
            exports=SimpleNamespace(download_sync=lambda **kw: iter([payload[:10], payload[10:]])),
        )


@pytest.fixture
def exports(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    target = Path("annotation/exports/tile.json")
    target.parent.mkdir(parents=True)
    target.write_text("[]\n")  # the previous export: nothing labelled yet
    return target


def test_good_export_is_written_in_a_stable_order(exports):
    export = [_task(5, "nut/test/crack/001.png", _ann(2, 1, ["surface"])),
              _task(4, "nut/test/crack/000.png", _ann(9, 2, ["structural"]), _ann(1, 1, ["structural"]))]  # fmt: skip
    result = c.pull(FakeClient(export), "tile", IDS, track=False)
    written = json.loads(exports.read_text())
    assert [t["data"]["image_id"] for t in written] == sorted(IDS)
    assert [a["id"] for a in written[0]["annotations"]] == [1, 9]
    assert result == {"path": str(exports), "tasks": 2, "votes": 3, "unlabelled_tasks": 0, "merged": True,
                      "labelled_now": 2, "kept_previous": 0, "only_previous": 0, "masks_path": "", "masks": 0,
                      "mask_sources": {}, "with_regions": 0, "unchanged_shipped": 0, "without_regions": 2,
                      "mean_agreement_iou": None}  # fmt: skip
    assert not Path("annotation/masks").exists()  # categories only: no mask export
    assert not list(exports.parent.glob(".*pulling"))


def test_cancelled_annotations_are_skipped_and_counted(exports):
    export = [_task(4, "nut/test/crack/000.png", _ann(1, 1, ["structural"]), _ann(2, 2, ["surface"], cancelled=True)),
              _task(5, "nut/test/crack/001.png")]  # fmt: skip
    result = c.pull(FakeClient(export), "tile", IDS, track=False)
    assert result["unlabelled_tasks"] == 1
    votes = parse_export(exports, "data/raw/tile", IDS)
    manifest = pd.DataFrame({"image_id": sorted(IDS), "product": "nut", "label": "anomalous"})
    row = resolve_categories(votes, manifest).set_index("image_id").loc["nut/test/crack/000.png"]
    assert row["defect_categories"] == "structural" and row["n_cancelled"] == 1 and row["n_annotators"] == 1


@pytest.mark.parametrize(
    ("export", "message"),
    [
        ([_task(4, "nut/test/crack/000.png", _ann(1, 1, ["scratchy"]))], "unknown defect category"),
        ([_task(4, "nut/test/crack/000.png", _ann(1, 1, ["surface"], background="maybe"))], "background must be one"),
        ([_task(4, "nut/test/crack/999.png", _ann(1, 1, ["surface"]))], "image does not exist in the manifest"),
        ([_task(4, "nut/test/crack/000.png", root="data/raw/other")], "image lies outside the dataset root"),
        ([_task(4, "../../etc/passwd", root="data/raw/tile")], "image lies outside the dataset root"),
        ([_task(4, "nut/test/crack/000.png"), _task(5, "nut/test/crack/000.png")], "duplicate task for one image"),
        ([_task(4, "nut/test/crack/000.png"), _task(4, "nut/test/crack/001.png")], "duplicate task id"),
        ([], "export holds no task"),
        ({"detail": "not a list"}, "must be a list of tasks"),
        (b"<html>proxy error</html>", "is not JSON"),
    ],
    ids=["unknown-choice", "bad-background", "not-in-manifest", "other-dataset", "path-escape", "duplicate-image",
         "duplicate-id", "empty", "not-a-list", "not-json"],
)  # fmt: skip
def test_bad_export_leaves_the_export_untouched(exports, export, message):
    with pytest.raises(IadbenchError, match=message):
        c.pull(FakeClient(export), "tile", IDS, track=False)
    assert exports.read_text() == "[]\n"
    assert not list(exports.parent.glob(".*pulling"))


def test_synthetic_export_belongs_to_its_stage(exports):
    with pytest.raises(IadbenchError, match="written by the synthesize stage"):
        c.pull(FakeClient([]), "synthetic", IDS, track=False)


def test_missing_project_says_push_first(exports):
    with pytest.raises(IadbenchError, match="run `iadbench annotate push` first"):
        c.pull(FakeClient([], title="someone else's"), "tile", IDS, track=False)


def test_missing_token_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(IadbenchError, match="set LABEL_STUDIO_API_KEY"):
        c.connect("http://127.0.0.1:9")


def test_unreachable_server_is_one_line(monkeypatch, capsys):
    from iadbench.cli import main

    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "x" * 40)
    assert main(["annotate", "pull", "--dataset", "tile"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach Label Studio at http://127.0.0.1:9" in err and "Traceback" not in err


def _import_vote(ann_id: int, defects: list[str]) -> dict:
    return {**_ann(ann_id, 0, defects), "completed_by": "iadbench-import"}


A, B = sorted(IDS)


def test_pull_merges_per_image_and_annotator(exports):
    """A sitting labels image A only: A takes the people's labels (the import map's vote goes), B keeps its
    provisional label instead of losing it; a later sitting by another person adds to A, replacing nobody else's.
    """
    exports.write_text(json.dumps([_task(1, A, _import_vote(1, ["structural"])),
                                   _task(2, B, _import_vote(2, ["structural"]))]))  # fmt: skip
    server = [_task(11, A, _ann(101, 5, ["surface"])), _task(12, B, _ann(102, 6, ["surface"], cancelled=True))]
    result = c.pull(FakeClient(server), "tile", IDS, track=False)
    assert (result["merged"], result["labelled_now"], result["kept_previous"]) == (True, 1, 1)
    votes = parse_export(exports, "data/raw/tile", IDS)
    by_image = {i: sorted((v.annotator, v.cancelled) for v in votes if v.image_id == i) for i in IDS}
    assert by_image[A] == [("5", False)]
    assert by_image[B] == [("6", True), ("iadbench-import", False)]  # the skip is counted, the label kept
    table = resolve_categories(votes, pd.DataFrame({"image_id": [A, B], "product": ["nut", "nut"],
                                                    "label": ["anomalous", "anomalous"]}))  # fmt: skip
    assert list(table["label_source"]) == ["person", "import_map"]
    assert list(table["defect_categories"]) == ["surface", "structural"]

    server[0]["annotations"].append(_ann(103, 7, ["surface"]))  # the server still holds every earlier annotation
    c.pull(FakeClient(server), "tile", IDS, track=False)
    votes = parse_export(exports, "data/raw/tile", IDS)
    assert sorted(v.annotator for v in votes if v.image_id == A) == ["5", "7"]
    assert sorted(v.annotator for v in votes if v.image_id == B) == ["6", "iadbench-import"]  # no duplicate


def test_pull_replace_keeps_the_old_behaviour(exports):
    exports.write_text(json.dumps([_task(1, B, _import_vote(1, ["structural"]))]))
    result = c.pull(FakeClient([_task(11, A, _ann(101, 5, ["surface"]))]), "tile", IDS, track=False, replace=True)
    assert not result["merged"] and [v.image_id for v in parse_export(exports, "data/raw/tile", IDS)] == [A]


def test_merge_renumbers_previous_only_tasks_whose_id_collides():
    merged, counts = c.merge_exports([_task(11, B, _import_vote(1, ["structural"]))], [_task(11, A)])
    assert sorted(t["id"] for t in merged) == [11, 12] and counts["only_previous"] == 1


def test_a_suggestion_accepted_unchanged_is_told_apart_from_a_change(exports):
    suggestion = {"result": _ann(0, 0, ["surface"])["result"]}
    accepted = {**_task(1, A, _ann(101, 5, ["surface"])), "predictions": [suggestion]}
    changed = {**_task(2, B, _ann(102, 5, ["structural"])), "predictions": [suggestion]}
    path = Path("export.json")
    path.write_text(json.dumps([accepted, changed]))
    votes = parse_export(path, "data/raw/tile", IDS)
    assert {v.image_id: v.source for v in votes} == {A: "suggestion", B: "person"}


def test_status_counts_labelled_tasks_people_and_disagreements():
    tasks = [_task(1, A, _ann(1, 5, ["surface"]), _ann(2, 6, ["structural"])), _task(2, B, _ann(3, 5, ["surface"])),
             _task(3, "x", _ann(4, 5, ["surface"], cancelled=True))]  # fmt: skip
    status = c.labelling_status(tasks)
    assert status == {"tasks": 3, "labelled": 2, "annotators": 2, "by_annotators": {"0": 1, "1": 1, "2": 1},
                      "disagreements": 1, "cancelled": 1, "with_regions": 0}  # fmt: skip
    assert c.status(FakeClient(tasks), "tile")["labelled"] == 2


def test_push_refuses_synthetic_and_a_dataset_not_in_the_run():
    from iadbench.errors import InputError

    assignment = pd.DataFrame({"dataset": ["magnetic_tile"], "split": ["test"], "label": ["anomalous"]})
    with pytest.raises(InputError, match="the synthetic dataset is not labelled in Label Studio"):
        c.push(None, "synthetic", assignment, pd.DataFrame())
    with pytest.raises(
        InputError, match=r"dataset 'tile' is not in the run's assignment \(it holds \['magnetic_tile'\]"
    ):
        c.push(None, "tile", assignment, pd.DataFrame())


def test_a_previous_export_that_is_not_json_is_not_merged_into(exports):
    exports.write_text("not json\n")
    with pytest.raises(IadbenchError, match="not JSON, so a pull cannot merge into it.*--replace"):
        c.pull(FakeClient([_task(11, A, _ann(101, 5, ["surface"]))]), "tile", IDS, track=False)
    assert exports.read_text() == "not json\n"


def test_notes_reach_the_categories_table_and_the_report(exports):
    from iadbench.evaluation.report import annotation_sections

    path = Path("export.json")
    path.write_text(json.dumps([_task(1, A, _ann(101, 5, ["surface"])), _task(2, B, _import_vote(2, ["surface"]))]))
    votes = parse_export(path, "data/raw/tile", IDS)
    table = resolve_categories(votes, pd.DataFrame({"image_id": [A, B], "product": "nut", "label": "anomalous"}))
    assert table.set_index("image_id").loc[A, "notes"] == "5: looks like glue"
    (who, header, body), (notes_title, _, notes) = annotation_sections(table)
    surface = next(row for row in body if row[0] == "surface")
    assert surface[1:5] == ["2", "0.500", "0.000", "0.500"]  # half confirmed by a person, half still provisional
    assert notes_title == "Annotators' notes" and notes[0][0] == A


def test_the_suggestion_an_annotation_started_from_is_read_from_the_annotation(exports):
    """Label Studio's export: task predictions are ids; the annotation carries the prediction it started from."""
    suggestion = {"id": 1, "result": _ann(0, 0, ["surface"])["result"]}
    accepted = {**_task(1, A, {**_ann(101, 5, ["surface"]), "prediction": suggestion}), "predictions": [1]}
    changed = {**_task(2, B, {**_ann(102, 5, ["structural"]), "prediction": suggestion}), "predictions": [1]}
    path = Path("export.json")
    path.write_text(json.dumps([accepted, changed]))
    votes = parse_export(path, "data/raw/tile", IDS)
    assert {v.image_id: v.source for v in votes} == {A: "suggestion", B: "person"}
