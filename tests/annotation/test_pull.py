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
    target.write_text("previous export\n")
    return target


def test_good_export_is_written_in_a_stable_order(exports):
    export = [_task(5, "nut/test/crack/001.png", _ann(2, 1, ["surface"])),
              _task(4, "nut/test/crack/000.png", _ann(9, 2, ["structural"]), _ann(1, 1, ["structural"]))]  # fmt: skip
    result = c.pull(FakeClient(export), "tile", IDS, track=False)
    written = json.loads(exports.read_text())
    assert [t["data"]["image_id"] for t in written] == sorted(IDS)
    assert [a["id"] for a in written[0]["annotations"]] == [1, 9]
    assert result == {"path": str(exports), "tasks": 2, "votes": 3, "unlabelled_tasks": 0}
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
    assert exports.read_text() == "previous export\n"
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
