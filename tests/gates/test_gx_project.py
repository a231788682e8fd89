"""The Great Expectations project ``gx/``: suites as files, a checkpoint per gate, results and Data Docs offline."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from iadbench import gates
from iadbench.datadocs import build
from iadbench.gates.categories import categories_gate
from tests.conftest import REPO, copy_gx, tree_digest

GX = REPO / "gx"


def _suite(name: str) -> dict:
    gate, table = name.split(".", 1)
    return json.loads((GX / "expectations" / gate / f"{table}.json").read_text())


def _checkpoints() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((GX / "checkpoints").glob("*.json"))}


def test_every_gate_has_one_checkpoint_whose_suites_say_what_a_user_reads():
    checkpoints = _checkpoints()
    assert sorted(checkpoints) == gates.available()
    for gate, checkpoint in checkpoints.items():
        names = [vd["name"] for vd in checkpoint["validation_definitions"]]
        assert names and all(n.startswith(f"{gate}.") for n in names)
        for name in names:
            definition = json.loads((GX / "validation_definitions" / f"{name}.json").read_text())
            assert definition["suite"]["name"] == name and definition["data"]["asset"]["name"] == name
            suite = _suite(name)
            assert suite["expectations"], name
            for expectation in suite["expectations"]:
                meta = expectation["meta"]
                assert meta["rule"].strip(), (name, expectation["type"])
                assert expectation["severity"] in ("critical", "warning")
                assert set(meta) <= {"rule", "file_column", "detail_columns"}


def test_no_suite_checks_a_boolean_the_gate_computed():
    """What remains of ``in_set([True])``/``[False]`` checks reads a fact a stage recorded in its table (the image
    decodes, its mask exists, is binary, is empty; annotators tied), never a comparison made in the gate."""
    from iadbench.data.categories import CATEGORY_COLUMNS
    from iadbench.data.manifest import IMAGE_COLUMNS, MASK_COLUMNS, SEGMENT_COLUMNS

    recorded = {*IMAGE_COLUMNS, *MASK_COLUMNS, *SEGMENT_COLUMNS, *CATEGORY_COLUMNS}
    checked = set()
    for path in sorted((GX / "expectations").rglob("*.json")):
        for expectation in json.loads(path.read_text())["expectations"]:
            values = expectation["kwargs"].get("value_set") or []
            if len(values) == 1 and isinstance(values[0], bool):
                assert expectation["kwargs"]["column"] in recorded, (path, expectation["kwargs"])
                checked.add(expectation["kwargs"]["column"])
    assert len(checked) <= 10  # the maps gate's and the products' checks are native comparisons now


def test_suites_agree_with_the_code_they_stand_for():
    from iadbench.metrics.rules import level_rules
    from iadbench.params import DataParams, Range

    columns = {e["kwargs"]["column"] for e in _suite("evaluate.pixels")["expectations"] if "column" in e["kwargs"]}
    assert columns == {f"iou_{r}" for r in level_rules("pixel")} | {"aupimo"}  # every rule's IoU is checked, and AUPIMO
    for name in ("maps.maps", "thresholds.thresholds"):  # "finite" means gates.FINITE wherever a suite says it
        bounds = [e["kwargs"].get("max_value") for e in _suite(name)["expectations"]]
        assert gates.FINITE in bounds and all(b in (None, 1, gates.FINITE) or isinstance(b, dict) for b in bounds)
    ranges = [
        m.func for m in DataParams.model_fields["image_size"].metadata if isinstance(getattr(m, "func", 0), Range)
    ]
    side = [e for e in _suite("manifest.images")["expectations"] if e["kwargs"].get("column") == "width"][0]
    assert [r.low for r in ranges] == [side["kwargs"]["min_value"]]  # the smallest image = the smallest input size


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    copy_gx(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _categories(bad: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    manifest = pd.DataFrame({"image_id": ["a", "b"], "split_folder": ["test", "test"],
                             "image_path": ["d/a.png", "d/b.png"]})  # fmt: skip
    categories = pd.DataFrame({"image_id": ["a", "b"], "label": ["anomalous", "good"],
                               "defect_categories": ["" if bad else "surface", ""], "background": ["with", "without"],
                               "defect_tie": [False, False], "background_tie": [False, False], "task_id": ["1", "2"],
                               "n_annotators": [1, 1], "defect_agreement": [1.0, 1.0]})  # fmt: skip
    return categories, manifest


def test_a_gate_run_writes_facts_and_results_and_leaves_the_project_untouched(project):
    before = tree_digest(project / "gx")
    categories, manifest = _categories(bad=True)
    result = categories_gate(categories, manifest, {"categories": "data/categories.csv"})
    assert [str(v) for v in result.errors] == [
        "ERROR d/a.png: rule: every anomalous test image has at least one known defect category "
        "(task_id=1, n_annotators=1)"
    ]
    after = {k: v for k, v in tree_digest(project / "gx").items() if not k.startswith("uncommitted/")}
    assert after == before  # suites, checkpoints and data source are read, never rewritten
    facts = pd.read_csv(project / "reports/gates/facts/categories/categories.csv")
    assert list(facts["image_path"]) == ["d/a.png", "d/b.png"]
    first = (project / "reports/gates/results/categories.json").read_bytes()
    categories_gate(categories, manifest, {"categories": "data/categories.csv"})
    assert (project / "reports/gates/results/categories.json").read_bytes() == first  # same data: same bytes


def test_a_suite_parameter_comes_from_the_data(project):
    categories, manifest = _categories()
    result = categories_gate(categories.iloc[:1], manifest, {"categories": "data/categories.csv"})
    assert [str(v) for v in result.errors] == [
        "ERROR data/categories.csv: rule: one row per manifest image (2 in data/manifest.csv) (observed 1)"
    ]


def test_a_broken_suite_names_its_file(project):
    path = project / "gx/expectations/categories/categories.json"
    suite = json.loads(path.read_text())
    suite["expectations"][1]["kwargs"]["column"] = "no_such_column"
    path.write_text(json.dumps(suite))
    categories, manifest = _categories()
    with pytest.raises(RuntimeError, match=r"gx/expectations/categories/categories\.json: expect_column_values_to"):
        categories_gate(categories, manifest, {"categories": "data/categories.csv"})


def test_a_missing_project_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    categories, manifest = _categories()
    with pytest.raises(FileNotFoundError, match=r"gx/great_expectations\.yml: no Great Expectations project"):
        categories_gate(categories, manifest, {"categories": "data/categories.csv"})


def test_data_docs_render_offline_and_the_same_twice(project):
    categories, manifest = _categories(bad=True)
    categories_gate(categories, manifest, {"categories": "data/categories.csv"})
    index = build()
    pages = sorted(index.parent.rglob("*.html"))
    assert any("validations" in p.parts for p in pages) and any("expectations" in p.parts for p in pages)
    for page in pages:
        text = page.read_text()
        assert "http://" not in text and "https://" not in text, page  # nothing to fetch offline
    validation = next(p for p in pages if "validations" in p.parts).read_text()
    assert (
        "every anomalous test image has at least one known defect category" in validation
        or "n_categories" in validation
    )
    listed = index.read_text()  # GX fills its index with JavaScript from a CDN: here the lists are plain HTML
    assert 'href="validations/categories/categories/' in listed and 'href="expectations/maps/maps.html"' in listed
    first = tree_digest(index.parent)
    build()
    assert tree_digest(index.parent) == first


def test_data_docs_without_results_say_what_to_run(project):
    with pytest.raises(FileNotFoundError, match="no gate results"):
        build()
