"""Two datasets in one run, end to end with DVC: the synthetic default and a second tiny dataset imported from the
BTAD layout (with the shipped BTAD category map), Table 1 with a row per category × dataset, a product added to one
dataset reruns only its cells, and the default DVC remote restores everything in a fresh clone.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from iadbench.deploy.bundle import read_bundle
from iadbench.synth.generate import generate
from tests.conftest import TINY, make_repo, tiny_synth
from tests.conftest import run_in as _run
from tests.test_pipeline_e2e import _set_params, _stages_run

pytestmark = pytest.mark.slow(seconds=99)


def btad_layout(tmp: Path) -> Path:
    """A synthetic dataset (another seed) rewritten as BTAD ships: train/ok, test/ok|ko, ground_truth/ko/<stem>.png,
    product 01 with BMP images; products 01 and 02 are BTAD's names, so the shipped BTAD map applies.
    """
    generated = tmp / "generated"
    with contextlib.chdir(tmp):  # the generator writes paths relative to the working directory
        generate(tiny_synth(seed=7, products=["weave", "tiles"]), Path("generated"), Path("gen.json"), progress=False)
    out = tmp / "BTech_Dataset_transformed"
    for product, name in (("weave", "01"), ("tiles", "02")):
        src, dst = generated / product, out / name
        ext = ".bmp" if name == "01" else ".png"
        for split, folder in (("train", "ok"), ("test", "ok")):
            for image in sorted((src / split / "good").iterdir()):
                (dst / split / folder).mkdir(parents=True, exist_ok=True)
                Image.open(image).save(dst / split / folder / f"{image.stem}{ext}")
        for type_dir in sorted(p for p in (src / "test").iterdir() if p.name != "good"):
            for image in sorted(type_dir.iterdir()):
                stem = f"{type_dir.name}_{image.stem}"
                (dst / "test/ko").mkdir(parents=True, exist_ok=True)
                (dst / "ground_truth/ko").mkdir(parents=True, exist_ok=True)
                Image.open(image).save(dst / "test/ko" / f"{stem}{ext}")
                mask = src / "ground_truth" / type_dir.name / f"{image.stem}_mask.png"
                shutil.copy(mask, dst / "ground_truth/ko" / f"{stem}.png")
    return out


EXPORT = {"model": "padim", "product": "btad/01", "rule": "iou", "format": "torch"}  # the export stage, once in CI


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    params = {**TINY, "models": ["padim"], "export": {"cells": [EXPORT]}}
    params["data"] = {"datasets": ["synthetic", "btad"], "products": ["synthetic/nut", "btad/01"], "image_size": 64}
    tmp = tmp_path_factory.mktemp("multi")
    root, env = make_repo(tmp / "iadbench", params)
    out = _run(["iadbench", "--quiet", "import", str(btad_layout(tmp)), "--name", "btad"], root, env)
    assert "imported (btad format" in out.stdout and "dvc push" in out.stdout
    _run(["dvc", "push", "-q"], root, env)  # the default remote: ../iadbench-dvc-remote beside the repository
    assert (tmp / "iadbench-dvc-remote").is_dir()
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "import btad"], root, env)
    return root, env


@pytest.fixture(scope="module")
def first_build(repo):
    """The first `dvc repro`, committed: every test depends on it, so each passes when run alone."""
    root, env = repo
    out = _run(["dvc", "repro"], root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "built"], root, env)
    return out


def test_two_datasets_give_table1_rows_per_dataset(repo, first_build):
    root, env = repo
    out = first_build
    ran = _stages_run(out.stdout)
    assert {"train@padim-synthetic/nut", "train@padim-btad/01", "evaluate@padim-btad/01", "export@0"} <= ran
    exported = read_bundle(root / "exports/padim/btad/01/iou-torch")  # a <dataset>/<product> cell: nested folders
    assert (exported.manifest["product"], exported.manifest["dataset"], exported.thresholds["rule"]) == (
        "btad/01", "btad", "iou")  # fmt: skip
    assert (root / "models/padim/btad/01/model.pt").is_file() and (root / "data/maps/padim/synthetic/nut.npz").is_file()
    categories = pd.read_csv(root / "reports/tables/categories.csv", dtype={"dataset": str})
    assert list(dict.fromkeys(categories["dataset"])) == ["synthetic", "btad", "all"]
    btad = categories[(categories["dataset"] == "btad") & (categories["rule"] == "iou")].set_index("group")
    assert btad.loc["surface", "n_images"] > 0 and btad.loc["structural", "n_images"] == 0  # the shipped BTAD map
    every = categories[(categories["kind"] == "all") & (categories["rule"] == "iou")].set_index("dataset")["n_images"]
    assert every["all"] == every["synthetic"] + every["btad"]
    report = (root / "reports/report.md").read_text()
    table1 = report[report.index("## Table 1") :].split("\n\n")[1]  # the section, not its line in the contents
    assert "| surface | btad |" in table1 and "| surface | synthetic |" in table1 and "| all images | all |" in table1
    products = pd.read_csv(root / "reports/tables/products.csv", dtype=str)
    assert set(zip(products["product"], products["dataset"], strict=True)) == {
        ("synthetic/nut", "synthetic"), ("btad/01", "btad")}  # fmt: skip


def test_a_product_added_to_one_dataset_reruns_only_its_cells(repo, first_build):
    root, env = repo
    _set_params(root, data={"products": ["synthetic/nut", "btad/01", "btad/02"]})
    out = _run(["dvc", "repro"], root, env)
    ran = _stages_run(out.stdout)
    assert {"train@padim-btad/02", "predict@padim-btad/02"} <= ran
    assert not {"train@padim-synthetic/nut", "train@padim-btad/01", "split"} & ran, ran
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "btad/02"], root, env)


def test_the_default_remote_restores_a_fresh_clone(repo, first_build):
    root, env = repo
    _run(["dvc", "push", "-q"], root, env)
    clone = root.parent / "clone"
    _run(["git", "clone", "-q", str(root), str(clone)], root.parent, env)
    _run(["dvc", "pull", "-q"], clone, env)
    status = _run(["dvc", "status"], clone, env)
    assert "Data and pipelines are up to date" in status.stdout, status.stdout
    assert (clone / "data/raw/btad/01/train/good").is_dir() and (clone / "reports/report.html").is_file()


def test_data_datasets_naming_a_missing_dataset_is_a_clear_error(repo, first_build):
    root, env = repo
    _set_params(root, data={"datasets": ["synthetic", "visa"], "products": ["synthetic/nut", "visa/candle"]})
    out = _run(["dvc", "repro", "manifest"], root, env, check=False)
    assert out.returncode != 0
    assert "data/raw/visa: data.datasets names 'visa' but the folder does not exist" in out.stderr
    _run(["git", "checkout", "--", "params.yaml"], root, env)
