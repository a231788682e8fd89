import json

import numpy as np
from PIL import Image

from iadbench.synth.generate import generate
from iadbench.synth.products import PRODUCTS
from tests.conftest import tiny_synth, tree_digest


def test_layout_counts_and_masks(tiny_dataset_template):
    root = tiny_dataset_template / "data/raw/synthetic"
    params = tiny_synth()
    for name in params.products:
        spec = PRODUCTS[name]
        assert len(list((root / name / "train/good").iterdir())) == params.n_train
        assert len(list((root / name / "test/good").iterdir())) == params.n_test_good
        for defect in spec.defect_types:
            images = sorted((root / name / "test" / defect).iterdir())
            assert len(images) == params.n_test_per_defect
            for image in images:
                mask = np.asarray(Image.open(root / name / "ground_truth" / defect / f"{image.stem}_mask.png"))
                assert set(np.unique(mask)) <= {0, 255} and mask.any()
                with Image.open(image) as im:
                    assert im.size == mask.shape[::-1]
                    assert im.mode == spec.mode


def test_export_has_one_task_per_anomalous_image(tiny_dataset_template):
    tasks = json.loads((tiny_dataset_template / "annotation/exports/synthetic.json").read_text())
    n_anomalous = sum(len(PRODUCTS[p].defect_types) for p in tiny_synth().products)
    assert len(tasks) == n_anomalous
    task = tasks[0]
    assert task["data"]["image"].startswith("/data/local-files/?d=data/raw/synthetic/")
    assert len(task["annotations"]) == 3
    names = {r["from_name"] for r in task["annotations"][0]["result"]}
    assert names == {"defect_category", "background"}


def test_same_seed_writes_identical_files(tmp_path):
    params = tiny_synth(products=["tiles", "nut"])
    for run in ("a", "b"):
        generate(
            params, tmp_path / run / "data/raw/synthetic", tmp_path / run / "e.json", tmp_path / run, progress=False
        )
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b")
    generate(
        tiny_synth(products=["tiles", "nut"], seed=1),
        tmp_path / "c/data/raw/synthetic",
        tmp_path / "c/e.json",
        tmp_path / "c",
        progress=False,
    )
    assert tree_digest(tmp_path / "a") != tree_digest(tmp_path / "c")
