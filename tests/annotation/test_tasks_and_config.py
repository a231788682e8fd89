"""Label config, task building and the suggestion heuristic (no server)."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from iadbench.annotation.client import stable_export
from iadbench.annotation.config import CONFIG_PATH, label_config, write_examples
from iadbench.annotation.masks import components, decode_region, suggest_region
from iadbench.annotation.tasks import build_tasks
from iadbench.cli import main
from iadbench.data.categories import result_choices
from iadbench.evaluation.cells import read_split_with_masks
from iadbench.taxonomy import BACKGROUNDS, DEFECT_CATEGORIES
from tests.conftest import TINY

PROJECT = Path(__file__).resolve().parents[2]


def test_committed_label_config_is_the_generated_one():
    assert (PROJECT / CONFIG_PATH).read_text() == label_config(), "run `iadbench annotate config`"


def test_label_config_offers_the_taxonomy_with_hints():
    root = ET.fromstring(label_config())
    choices = {c.get("name"): c for c in root.iter("Choices")}
    assert choices["defect_category"].get("choice") == "multiple"
    assert [c.get("value") for c in choices["defect_category"]] == list(DEFECT_CATEGORIES)
    assert all(c.get("hint") for c in choices["defect_category"])
    assert choices["defect_category"].get("required") is None  # regions decide; choices only without a region
    assert [c.get("value") for c in choices["background"]] == list(BACKGROUNDS)
    assert {i.get("name") for i in root.iter("Image")} == {"image", "reference"}  # the mask is drawn on the image
    (brush,) = root.iter("BrushLabels")
    assert brush.get("name") == "defect_region" and brush.get("toName") == "image"
    assert [label.get("value") for label in brush] == ["structural", "surface", "contamination"]
    assert all(label.get("hint") for label in brush)
    assert [t.get("name") for t in root.iter("TextArea")] == ["note"]


def test_region_suggestions_from_the_mask():
    one = np.zeros((50, 50), bool)
    one[10:12, 10:12] = True
    assert suggest_region(one) == "surface"
    big = np.zeros((50, 50), bool)
    big[5:30, 5:30] = True
    assert suggest_region(big) == "structural"
    assert suggest_region(big, ("contamination",)) == "contamination"
    assert suggest_region(big, ("combined",)) == "structural"  # combined is never one region's category
    two = one.copy()
    two[40:42, 40:42] = True
    assert len(components(two)) == 2
    assert len(components(np.eye(6, dtype=bool))) == 1  # 8-connected: one component


def test_tasks_cover_anomalous_validation_and_test_images_once(tiny_repo):
    Path("params.yaml").write_text(yaml.safe_dump(TINY))
    for verb in (["--quiet", "manifest"], ["categories"], ["split"]):
        assert main(verb) == 0
    assignment = read_split_with_masks()
    categories = pd.read_csv("data/categories.csv", keep_default_na=False)
    tasks = build_tasks(assignment, categories, "synthetic")
    wanted = assignment[(assignment["label"] == "anomalous") & (assignment["split"] != "train")]
    assert [t["data"]["image_id"] for t in tasks] == sorted(wanted["image_id"])
    first = tasks[0]
    assert first["data"]["image"].startswith("/data/local-files/?d=data/raw/synthetic/")
    assert first["data"]["mask"].endswith("_mask.png") and "/train/good/" in first["data"]["reference"]
    result = first["predictions"][0]["result"]
    assert {r["from_name"] for r in result} == {"defect_region", "background"}
    # the shipped mask, shown as regions on the image: their union is the mask, pixel for pixel
    with Image.open(assignment.set_index("image_id").loc[first["data"]["image_id"], "mask_path"]) as m:
        shipped = np.asarray(m.convert("L")) > 0
    regions = [decode_region(r, shipped.shape[::-1]) for r in result if r["type"] == "brushlabels"]
    assert np.array_equal(np.logical_or.reduce(regions), shipped)
    current = categories.set_index("image_id").loc[first["data"]["image_id"], "defect_categories"]
    assert result_choices(result)[0] == (frozenset({current}) if current != "combined" else result_choices(result)[0])
    examples = write_examples(Path("data/split.csv"), Path("examples"))
    assert examples and all(p.stat().st_size > 1000 for p in examples)
    assert {p.stem for p in examples} <= set(DEFECT_CATEGORIES)


def test_stable_export_orders_tasks_and_annotations():
    tasks = [
        {"id": 2, "data": {"image_id": "b"}, "annotations": [{"id": 9}, {"id": 3}]},
        {"id": 1, "data": {"image_id": "a"}, "annotations": []},
    ]
    text = stable_export(tasks)
    parsed = json.loads(text)
    assert [t["data"]["image_id"] for t in parsed] == ["a", "b"]
    assert [a["id"] for a in parsed[1]["annotations"]] == [3, 9]
    assert stable_export(json.loads(text)) == text


def test_stable_export_accepts_bare_prediction_ids():
    text = stable_export([{"id": 10, "data": {"image_id": "a"}, "annotations": [{"id": 10}, {"id": 9}],
                           "predictions": [12, 3]}])  # fmt: skip
    task = json.loads(text)[0]
    assert task["predictions"] == [3, 12] and [a["id"] for a in task["annotations"]] == [9, 10]
