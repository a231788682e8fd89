import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from iadbench.data.importer import import_dataset, parse_defect_map
from iadbench.errors import IadbenchError, InputError, InputErrors
from tests.conftest import tree_digest

NUT_MAP = "missing_part=structural,crack=structural,scratch=surface,dent=surface,glue=contamination,combined=combined"


@pytest.fixture
def source(tiny_dataset_template, tmp_path) -> Path:
    """A folder outside the repository holding one MVTec-layout product (nut)."""
    src = tmp_path / "outside" / "nut_dataset"
    shutil.copytree(tiny_dataset_template / "data/raw/synthetic/nut", src / "nut")
    return src


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    monkeypatch.chdir(root)
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], check=True)
    return root


def test_import_copies_tracks_and_never_touches_the_source(repo, source):
    before = tree_digest(source)
    added = import_dataset(source, "nuts", defect_map=parse_defect_map(NUT_MAP), background="with").added
    assert added == [Path("data/raw/nuts"), Path("annotation/exports/nuts.json")]
    assert tree_digest(source) == before
    copied = tree_digest(Path("data/raw/nuts"))
    assert json.loads(Path("data/raw/nuts/import.json").read_text())["format"] == "mvtec"
    assert {k: v for k, v in copied.items() if k != "import.json"} == before
    assert Path("data/raw/nuts.dvc").is_file() and Path("annotation/exports/nuts.json.dvc").is_file()
    tasks = json.loads(Path("annotation/exports/nuts.json").read_text())
    assert len(tasks) == len(list((source / "nut/ground_truth").rglob("*.png")))
    assert tasks[0]["annotations"][0]["completed_by"] == "iadbench-import"
    assert tasks[0]["data"]["image"].startswith("/data/local-files/?d=data/raw/nuts/nut/test/")


def test_import_refuses_an_existing_dataset(repo, source):
    import_dataset(source, "nuts", track=False)
    before = tree_digest(Path("data/raw/nuts"))
    with pytest.raises(InputError, match="data/raw/nuts: dataset already imported"):
        import_dataset(source, "nuts", track=False)
    assert tree_digest(Path("data/raw/nuts")) == before


def test_bad_layout_copies_nothing(repo, source):
    shutil.rmtree(source / "nut/train")
    with pytest.raises(InputError, match="no known dataset format found: looked for mvtec: <product>/train/good"):
        import_dataset(source, "nuts", track=False)
    with pytest.raises(InputError, match=r"not in the mvtec layout .*folder\(s\) \['nut'\] do not match"):
        import_dataset(source, "nuts", track=False, fmt="mvtec")
    assert not Path("data/raw/nuts").exists() and not list(Path(".").glob("data/raw/.*"))


def test_unmapped_defect_type_copies_nothing(repo, source):
    with pytest.raises(IadbenchError, match=r"does not cover defect type\(s\) \['glue'\]"):
        import_dataset(
            source, "nuts", defect_map=parse_defect_map(NUT_MAP.replace(",glue=contamination", "")), background="with"
        )
    assert not Path("data/raw/nuts").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "../escape"}, "--name must be a plain folder name"),
        ({"name": "ok", "background": "maybe"}, "--background must be one of"),
        ({"name": "ok", "defect_map": {"crack": "structural"}}, "--defect-map needs --background"),
    ],
)
def test_bad_arguments(repo, source, kwargs, message):
    with pytest.raises(IadbenchError, match=message):
        import_dataset(source, track=False, **kwargs)


def test_bad_defect_map_text():
    with pytest.raises(IadbenchError, match="unknown category 'cosmetic'"):
        parse_defect_map("crack=cosmetic")
    with pytest.raises(IadbenchError, match="expected defect_type=category"):
        parse_defect_map("crack")


def test_export_that_is_not_json_copies_nothing(repo, source, tmp_path):
    bad = tmp_path / "export.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="export is not a readable JSON file"):
        import_dataset(source, "nuts", export=bad, track=False)
    assert not Path("data/raw/nuts").exists()


def test_bad_segmentation_image_copies_nothing(repo, source):
    from PIL import Image

    labels = np.zeros((48, 48), dtype=np.uint8)
    labels[:, 24:] = 3  # labels 0 and 3
    Image.fromarray(labels).save(source / "nut/segments.png")
    with pytest.raises(InputErrors, match=r"nut/segments.png: segments.png labels must be 0..L-1.*found 0 3"):
        import_dataset(source, "nuts", track=False)
    assert not Path("data/raw/nuts").exists()
    labels[:, 24:] = 1
    Image.fromarray(labels[:, :40]).save(source / "nut/segments.png")
    with pytest.raises(InputErrors, match=r"must have the size of every image of its product: segments 40x48"):
        import_dataset(source, "nuts", track=False)
    Image.fromarray(labels).save(source / "nut/segments.png")
    import_dataset(source, "nuts", track=False)  # a good one is accepted and copied
    assert Path("data/raw/nuts/nut/segments.png").is_file()
