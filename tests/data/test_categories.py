import json
from pathlib import Path

import pytest

from iadbench.data.categories import (
    image_reference_to_path,
    parse_export,
    resolve_background,
    resolve_categories,
    resolve_defects,
)
from iadbench.data.manifest import scan
from iadbench.errors import InputError, InputErrors
from iadbench.gates.categories import categories_gate
from iadbench.labelstudio import choices_result, local_file_url

ROOT = "data/raw/synthetic"
EXPORT = Path("annotation/exports/synthetic.json")


def _task(task_id, image_id, *annotations, root=ROOT):
    return {
        "id": task_id,
        "data": {"image": local_file_url(f"{root}/{image_id}")},
        "annotations": [
            {
                "id": task_id * 10 + k,
                "completed_by": k + 1,
                "was_cancelled": cancelled,
                "result": [choices_result("defect_category", cats, "d"), choices_result("background", [bg], "b")],
            }
            for k, (cats, bg, cancelled) in enumerate(annotations)
        ],
    }


def _write(tasks) -> Path:
    EXPORT.write_text(json.dumps(tasks))
    return EXPORT


def _manifest():
    return scan(Path(ROOT), "synthetic", progress=False)[0]


# ------------------------------------------------------------------------------------------ pure functions
def test_resolve_defects_majority_ties_and_agreement():
    s, u, c = frozenset({"structural"}), frozenset({"surface"}), frozenset({"contamination"})
    assert resolve_defects([s, s, s]) == (s, False, 1.0)
    assert resolve_defects([s, s, u]) == (s, False, pytest.approx(2 / 3))
    assert resolve_defects([s, u]) == (s | u, True, 0.0)  # exact half each: both kept, flagged
    assert resolve_defects([s, u, c]) == (s | u | c, True, 0.0)  # nobody reaches half: plurality, flagged
    assert resolve_defects([s | u, s | u, s]) == (s | u, False, pytest.approx(2 / 3))
    assert resolve_defects([]) == (frozenset(), False, 0.0)


def test_resolve_background_tie_goes_to_first_and_is_flagged():
    assert resolve_background(["without", "without", "with"]) == ("without", False, pytest.approx(2 / 3))
    assert resolve_background(["without", "with"]) == ("with", True, 0.5)
    assert resolve_background([]) == (None, False, 0.0)


@pytest.mark.parametrize(
    ("reference", "path"),
    [
        ("/data/local-files/?d=data/raw/x/a/test/b/1.png", "data/raw/x/a/test/b/1.png"),
        ("/data/local-files/?d=data%2Fraw%2Fx%2Fa%20b.png", "data/raw/x/a b.png"),
        ("http://localhost:8080/data/local-files/?d=data/raw/x/1.png", "data/raw/x/1.png"),
        ("data/raw/x/./a/../1.png", "data/raw/x/1.png"),
    ],
)
def test_image_reference_to_path(reference, path):
    assert image_reference_to_path(reference) == path


@pytest.mark.parametrize("reference", ["/data/upload/3/abc.png", "https://example.com/x.png", "s3://bucket/x.png"])
def test_unsupported_references(reference):
    with pytest.raises(ValueError):
        image_reference_to_path(reference)


# ------------------------------------------------------------------------------------------ stage on files
def test_generated_export_resolves_every_image(tiny_repo):
    manifest = _manifest()
    votes = parse_export(EXPORT, ROOT, set(manifest["image_id"]))
    table = resolve_categories(votes, manifest)
    assert len(table) == len(manifest)
    anomalous = table[table["label"] == "anomalous"]
    assert (anomalous["defect_categories"] != "").all() and (anomalous["n_annotators"] == 3).all()
    good = table[table["label"] == "good"]
    assert (good["background_source"] == "product_majority").all() and (good["defect_categories"] == "").all()
    assert set(table.loc[table["product"] == "nut", "background"]) == {"with"}
    assert categories_gate(table, manifest, {"categories": str(EXPORT)}).success


def test_cancelled_annotations_are_skipped(tiny_repo):
    image = "nut/test/crack/000.png"
    _write([_task(1, image, (["structural"], "with", False), (["surface"], "with", True))])
    manifest = _manifest()
    row = (
        resolve_categories(parse_export(EXPORT, ROOT, set(manifest["image_id"])), manifest)
        .set_index("image_id")
        .loc[image]
    )
    assert (row["defect_categories"], row["n_annotators"], row["n_cancelled"]) == ("structural", 1, 1)


@pytest.mark.parametrize(
    ("tasks", "rule"),
    [
        (
            [_task(1, "nut/test/crack/000.png", (["broken"], "with", False))],
            "task 1: unknown defect category ['broken']",
        ),
        ([_task(1, "nut/test/crack/000.png", (["surface"], "outside", False))], "task 1: background must be one of"),
        (
            [_task(4, "nut/test/crack/999.png", (["surface"], "with", False))],
            "task 4: image does not exist in the manifest",
        ),
        (
            [_task(2, "../../../etc/passwd", (["surface"], "with", False))],
            "task 2: image lies outside the dataset root data/raw/synthetic/",
        ),
        (
            [_task(2, "x.png", (["surface"], "with", False), root="data/raw/other")],
            "task 2: image lies outside the dataset root",
        ),
        (
            [
                _task(1, "nut/test/crack/000.png", (["surface"], "with", False)),
                _task(2, "nut/test/crack/000.png", (["surface"], "with", False)),
            ],
            "task 2: duplicate task for one image",
        ),
        (
            [
                _task(1, "nut/test/crack/000.png", (["surface"], "with", False)),
                _task(1, "nut/test/dent/000.png", (["surface"], "with", False)),
            ],
            "task 1: duplicate task id",
        ),
    ],
)
def test_bad_exports_name_file_task_and_rule(tiny_repo, tasks, rule):
    _write(tasks)
    with pytest.raises(InputErrors) as err:
        parse_export(EXPORT, ROOT, set(_manifest()["image_id"]))
    assert f"{EXPORT}: {rule}" in str(err.value)


@pytest.mark.parametrize(
    ("content", "rule"), [("[]", "export holds no task"), ("{}", "must be a list"), ("{", "not valid JSON")]
)
def test_empty_or_malformed_export(tiny_repo, content, rule):
    EXPORT.write_text(content)
    with pytest.raises(InputError, match=rule):
        parse_export(EXPORT, ROOT, set())


def test_missing_export_says_how_to_make_one(tiny_repo):
    with pytest.raises(InputError, match="annotation export not found"):
        parse_export(Path("annotation/exports/nothing.json"), ROOT, set())


def test_good_image_labelled_anomalous_fails_the_gate(tiny_repo):
    tasks = json.loads(EXPORT.read_text())
    tasks.append(_task(999, "weave/train/good/000.png", (["surface"], "without", False)))
    _write(tasks)
    manifest = _manifest()
    table = resolve_categories(parse_export(EXPORT, ROOT, set(manifest["image_id"])), manifest)
    result = categories_gate(table, manifest, {"categories": "data/categories.csv"})
    assert not result.success
    [violation] = result.errors
    assert violation.file == "data/raw/synthetic/weave/train/good/000.png"
    assert "a good image carries no defect category" in violation.rule


def test_unlabelled_anomalous_image_and_product_without_background_fail(tiny_repo):
    tasks = [t for t in json.loads(EXPORT.read_text()) if "/tiles/" not in t["data"]["image"]]
    tasks = [t for t in tasks if not t["data"]["image"].endswith("nut/test/dent/000.png")]
    _write(tasks)
    manifest = _manifest()
    table = resolve_categories(parse_export(EXPORT, ROOT, set(manifest["image_id"])), manifest)
    result = categories_gate(table, manifest, {"categories": "data/categories.csv"})
    missing = {v.file for v in result.errors if "at least one known defect category" in v.rule}
    assert "data/raw/synthetic/nut/test/dent/000.png" in missing
    assert all("/tiles/" in f for f in missing - {"data/raw/synthetic/nut/test/dent/000.png"})
    no_background = {v.file for v in result.errors if "background category" in v.rule}
    assert no_background and all("/tiles/" in f for f in no_background)
