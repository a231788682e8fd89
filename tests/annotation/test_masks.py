"""Regions drawn in Label Studio become masks: the SDK's RLE both ways, the bad regions, provenance, nothing written on
any error (a recorded-export fake, no server)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iadbench.annotation import client as c
from iadbench.annotation.masks import (
    PREFILL_PREFIX,
    agreement,
    combine,
    decode_region,
    mask_regions,
    prefill_masks,
    region_result,
)
from iadbench.data.categories import parse_export
from iadbench.data.drawn import drawn_masks
from iadbench.errors import IadbenchError, InputError
from tests.annotation.test_pull import FakeClient

W, H = 40, 30
ROOT = "data/raw/tile"
A, B, S = "nut/test/crack/000.png", "nut/test/crack/001.png", "nut/test/crack/002.png"  # S ships a mask


def _mask(*boxes: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros((H, W), bool)
    for y0, y1, x0, x1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


def _region(mask: np.ndarray, label: str = "surface", rid: str = "r") -> dict:
    """A region as an annotator submits it: RLE made by the SDK."""
    result = region_result(mask, label, rid)
    result["origin"] = "manual"
    return result


def _ann(ann_id: int, who: int, *regions: dict, prediction: dict | None = None) -> dict:
    background = {"from_name": "background", "to_name": "image", "type": "choices", "value": {"choices": ["with"]}}
    out = {"id": ann_id, "completed_by": who, "result": [*regions, background], "was_cancelled": False}
    if prediction is not None:
        out["prediction"] = prediction
    return out


def _task(task_id: int, image_id: str, *annotations: dict, predictions: list | None = None) -> dict:
    return {"id": task_id, "data": {"image": f"/data/local-files/?d={ROOT}/{image_id}", "image_id": image_id},
            "annotations": list(annotations), "predictions": predictions or []}  # fmt: skip


@pytest.fixture
def dataset(tmp_path, monkeypatch) -> dict[str, tuple[Path, Path | None]]:
    """Three anomalous test images of 40×30 under data/raw/tile; 002 ships a mask."""
    monkeypatch.chdir(tmp_path)
    images = {}
    for image_id in (A, B, S):
        path = Path(ROOT) / image_id
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(path)
        images[image_id] = (path, None)
    shipped = Path(ROOT) / "nut/ground_truth/crack/002_mask.png"
    shipped.parent.mkdir(parents=True)
    Image.fromarray(_mask((2, 6, 2, 6)).astype(np.uint8) * 255).save(shipped)
    images[S] = (images[S][0], shipped)
    Path("annotation/exports").mkdir(parents=True)
    Path("annotation/exports/tile.json").write_text("[]\n")
    return images


def _pull(export: list, images: dict, **kw) -> dict:
    title = c.project_title("tile", kw.get("sandbox", False))
    return c.pull(FakeClient(export, title), "tile", set(images), track=False, images=images, **kw)


def test_the_sdk_codec_round_trips_a_mask():
    mask = _mask((3, 9, 4, 20), (20, 25, 30, 38))
    regions = mask_regions(mask, (), "x")
    assert len(regions) == 2 and all(r["value"]["format"] == "rle" for r in regions)
    decoded = [decode_region(r, (W, H)) for r in regions]
    assert np.array_equal(decoded[0] | decoded[1], mask) and not (decoded[0] & decoded[1]).any()


def test_majority_and_agreement():
    a, b, c3 = _mask((0, 10, 0, 10)), _mask((0, 10, 5, 15)), _mask((0, 10, 0, 10))
    assert np.array_equal(combine([a]), a)
    assert np.array_equal(combine([a, b]), a | b)  # two annotators: a tie counts as defect (≥ n/2)
    assert np.array_equal(combine([a, b, c3]), a)  # two of three
    assert agreement([a]) is None and agreement([a, c3]) == 1.0
    assert agreement([a, b]) == pytest.approx(50 / 150)


def test_pulled_regions_become_masks_pixel_for_pixel_with_provenance(dataset):
    drawn_a1, drawn_a2 = _mask((1, 8, 1, 12)), _mask((5, 14, 8, 20))
    pre = _mask((10, 20, 10, 30))
    prediction = {"model_version": f"{PREFILL_PREFIX} padim good_fpr t=0.5",
                  "result": [region_result(pre, "surface", "prefill-0")]}  # fmt: skip
    corrected = _mask((2, 6, 2, 9))  # the shipped 2:6 × 2:6 made wider
    export = [
        _task(1, A, _ann(1, 5, _region(drawn_a1, "structural")), _ann(2, 6, _region(drawn_a2, "contamination"))),
        _task(2, B, _ann(3, 5, _region(pre, "surface", "prefill-0"), prediction=prediction)),
        _task(3, S, _ann(4, 5, _region(corrected))),
    ]
    result = _pull(export, dataset)
    assert result["masks"] == 3 and result["mask_sources"] == {"drawn": 1, "prefill_accepted": 1,
                                                               "shipped_corrected": 1}  # fmt: skip
    found = drawn_masks(Path("annotation/masks/tile"))
    with Image.open(found[A][0]) as im:
        assert im.mode == "L" and im.size == (W, H)
        assert set(np.unique(np.asarray(im)).tolist()) == {0, 255}
        assert np.array_equal(np.asarray(im) > 0, drawn_a1 | drawn_a2)
    provenance = json.loads(Path("annotation/masks/tile/masks.json").read_text())["images"]
    assert provenance[A]["annotators"] == ["5", "6"]
    assert provenance[A]["agreement_iou"] == pytest.approx(agreement([drawn_a1, drawn_a2]), abs=1e-6)
    assert provenance[B]["mask_source"] == "prefill_accepted" and provenance[B]["prefill_iou"] == 1.0
    assert provenance[B]["prefill_version"].startswith(PREFILL_PREFIX)
    # categories follow from each annotator's regions (one category each here; two on one annotation: combined)
    votes = {
        (v.image_id, v.annotator): v.defect_categories for v in parse_export(Path(result["path"]), ROOT, set(dataset))
    }
    assert votes[(A, "5")] == {"structural"} and votes[(A, "6")] == {"contamination"}


def test_an_edited_prefill_and_an_unchanged_shipped_mask(dataset):
    pre = _mask((10, 20, 10, 30))
    prediction = {"model_version": f"{PREFILL_PREFIX} padim good_fpr t=0.5",
                  "result": [region_result(pre, "surface", "prefill-0")]}  # fmt: skip
    edited = _mask((10, 20, 10, 25))
    shipped = _mask((2, 6, 2, 6))
    export = [_task(2, B, _ann(3, 5, _region(edited)), predictions=[prediction]),
              _task(3, S, _ann(4, 5, _region(shipped)))]  # fmt: skip
    result = _pull(export, dataset)
    assert result["mask_sources"] == {"prefill_edited": 1} and result["unchanged_shipped"] == 1
    record = json.loads(Path("annotation/masks/tile/masks.json").read_text())["images"][B]
    assert record["prefill_iou"] == pytest.approx(150 / 200)


def _bad_rle() -> dict:
    region = _region(_mask((1, 5, 1, 5)))
    region["value"]["rle"] = region["value"]["rle"][:6]  # truncated
    return region


def _huge_header() -> dict:
    region = _region(_mask((1, 5, 1, 5)))
    region["value"]["rle"] = [255, 255, 255, 255, *region["value"]["rle"][4:]]  # 4 G values: refused, not allocated
    return region


def _other_size() -> dict:
    region = region_result(np.ones((10, 10), bool), "surface", "r")
    return region


@pytest.mark.parametrize(
    ("region", "image", "message"),
    [
        (_other_size(), A, "drawn on an image of 10x10, the task's image is 40x30"),
        (_region(np.zeros((H, W), bool)), A, "it is empty"),
        (_bad_rle(), A, "its RLE does not decode"),
        (_huge_header(), A, "its RLE holds 4294967295 values"),
        (_region(_mask((1, 5, 1, 5)), "combined"), A, "a region must carry one category"),
        (_region(_mask((1, 5, 1, 5))), "nut/test/crack/404.png", "image does not exist in the manifest"),
    ],
)
def test_a_bad_region_writes_nothing(dataset, region, image, message):
    before = Path("annotation/exports/tile.json").read_bytes()
    with pytest.raises(IadbenchError, match="nothing was written") as caught:
        _pull([_task(1, image, _ann(1, 5, region))], dataset)
    assert message in str(caught.value) and "task 1" in str(caught.value)
    assert Path("annotation/exports/tile.json").read_bytes() == before
    assert not Path("annotation/masks").exists() and not list(Path("annotation").rglob(".*pulling"))


def test_a_bad_region_keeps_the_previous_masks(dataset):
    _pull([_task(1, A, _ann(1, 5, _region(_mask((1, 5, 1, 5)))))], dataset)
    before = {p: p.read_bytes() for p in Path("annotation/masks").rglob("*") if p.is_file()}
    with pytest.raises(IadbenchError, match="it is empty"):
        _pull([_task(1, A, _ann(1, 5, _region(np.zeros((H, W), bool))))], dataset, replace=True)
    assert {p: p.read_bytes() for p in Path("annotation/masks").rglob("*") if p.is_file()} == before


def test_the_sandbox_is_apart_from_the_pipeline(dataset):
    result = _pull([_task(1, A, _ann(1, 5, _region(_mask((1, 5, 1, 5)))))], dataset, sandbox=True)
    assert result["path"] == "annotation/sandbox/tile/export.json"
    assert Path("annotation/sandbox/tile/masks/masks.json").is_file()
    assert Path("annotation/exports/tile.json").read_text() == "[]\n" and not Path("annotation/masks").exists()
    assert c.project_title("synthetic", sandbox=True) == "iadbench synthetic (sandbox)"


def test_push_allows_the_synthetic_data_only_in_a_sandbox():
    import pandas as pd

    assignment = pd.DataFrame({"dataset": ["magnetic_tile"], "split": ["test"], "label": ["anomalous"]})
    with pytest.raises(InputError, match="Try the interface on it with --sandbox"):
        c.push(None, "synthetic", assignment, pd.DataFrame())
    with pytest.raises(InputError, match="dataset 'synthetic' is not in the run's assignment"):
        c.push(None, "synthetic", assignment, pd.DataFrame(), sandbox=True)  # past the synthetic refusal


def _cell(tmp_path, maps: bool = True, pixel_rules: dict | None = None) -> None:
    from iadbench.evaluation.cells import maps_path, thresholds_path

    path = maps_path("padim", "nut")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"image_id": np.array(["nut/test/crack/000.png"]), "split": np.array(["test"]),
              "scores": np.array([1.0], np.float32)}  # fmt: skip
    if maps:
        ramp = np.linspace(0, 1, 16 * 16, dtype=np.float32).reshape(16, 16)
        arrays["maps"] = ramp[None].astype(np.float16)
    np.savez(path, **arrays)
    record = {"kind": "thresholds", "model": "padim", "product": "nut", "dataset": "tile", "split_fingerprint": "x",
              "validation": {}, "image": {}, "image_notes": [], "pixel_notes": [],
              "pixel": pixel_rules if pixel_rules is not None else {"good_fpr": {"threshold": 0.75}}}  # fmt: skip
    thresholds_path("padim", "nut").parent.mkdir(parents=True, exist_ok=True)
    thresholds_path("padim", "nut").write_text(json.dumps(record))


def test_prefill_uses_the_stored_map_at_a_normal_only_threshold(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _cell(tmp_path)
    masks, t, version = prefill_masks("padim", "nut", "good_fpr", ["nut/test/crack/000.png"])
    ramp = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16).astype(np.float16)
    assert t == 0.75 and version == f"{PREFILL_PREFIX} padim good_fpr t=0.75"
    assert np.array_equal(masks["nut/test/crack/000.png"], ramp >= 0.75)


@pytest.mark.parametrize(
    ("setup", "model", "rule", "message"),
    [
        ({}, "stfpm", "good_fpr", "no trained cell stfpm/nut to pre-draw with"),
        ({"maps": False}, "padim", "good_fpr", "writes image scores only: it has no anomaly map"),
        ({}, "padim", "iou", "needs anomalous masks to fit"),
        ({}, "padim", "sharp", "is not a threshold rule"),
        ({"pixel_rules": {}}, "padim", "good_fpr", "no pixel threshold of rule 'good_fpr'"),
    ],
)
def test_prefill_refuses_what_cannot_pre_draw(tmp_path, monkeypatch, setup, model, rule, message):
    monkeypatch.chdir(tmp_path)
    _cell(tmp_path, **setup)
    with pytest.raises(IadbenchError, match=message):
        prefill_masks(model, "nut", rule, ["nut/test/crack/000.png"])


def test_regions_of_two_categories_make_the_image_combined_and_regions_decide_over_choices(dataset):
    choice = {"from_name": "defect_category", "to_name": "image", "type": "choices", "value": {"choices": ["surface"]}}
    two = _ann(1, 5, _region(_mask((1, 5, 1, 5)), "structural", "a"), _region(_mask((9, 12, 9, 12)), "surface", "b"))
    same = _ann(2, 6, _region(_mask((1, 5, 1, 5)), "surface", "a"), _region(_mask((9, 12, 9, 12)), "surface", "b"))
    same["result"].append(choice | {"value": {"choices": ["structural"]}})  # a choice beside regions: regions win
    pre = _mask((1, 5, 1, 5))
    background = {"from_name": "background", "to_name": "image", "type": "choices", "value": {"choices": ["with"]}}
    regions = [region_result(pre, "surface", "prefill-0"), background]  # as push sends it: regions and the background
    prediction = {"model_version": f"{PREFILL_PREFIX} padim good_fpr t=0.5", "result": regions}
    accepted = _ann(3, 5, _region(pre, "surface", "prefill-0"))
    export = [_task(1, A, two, same), _task(2, B, accepted, predictions=[prediction])]
    result = _pull(export, dataset)
    votes = {(v.image_id, v.annotator): v for v in parse_export(Path(result["path"]), ROOT, set(dataset))}
    assert votes[(A, "5")].defect_categories == {"combined"} and votes[(A, "6")].defect_categories == {"surface"}
    assert votes[(B, "5")].source == "suggestion"  # the pre-drawn regions submitted unchanged


def test_a_shipped_mask_in_a_prefilled_push_is_not_taken_for_a_prefill(dataset):
    """One push versions every task alike: the region ids tell a shipped mask's regions from a detector's."""
    shipped = _mask((2, 6, 2, 6))
    regions = mask_regions(shipped, (), "region-")
    prediction = {"model_version": f"{PREFILL_PREFIX} padim good_fpr t=0.5", "result": regions}
    result = _pull([_task(3, S, _ann(4, 5, _region(_mask((2, 6, 2, 9)))), predictions=[prediction])], dataset)
    assert result["mask_sources"] == {"shipped_corrected": 1}


def test_a_person_counts_once_with_their_latest_regions(dataset):
    """Two annotations of one person on a task (a redo on the server): their latest is their mask, and the
    majority is over people, not annotations."""
    first, redo, other = _mask((1, 5, 1, 5)), _mask((1, 9, 1, 9)), _mask((20, 25, 20, 25))
    export = [_task(1, A, _ann(7, 5, _region(first)), _ann(9, 5, _region(redo)), _ann(8, 6, _region(other)))]
    result = _pull(export, dataset)
    with Image.open(Path("annotation/masks/tile") / A) as im:
        assert np.array_equal(np.asarray(im) > 0, redo | other)  # two people: the union of their latest masks
    record = json.loads(Path("annotation/masks/tile/masks.json").read_text())["images"][A]
    assert record["annotators"] == ["5", "6"] and result["masks"] == 1
