"""Volatile measurements: written apart from the artifacts, read back only by the costs stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iadbench import resources
from iadbench.models.weights import portable_path


def test_records_are_per_stage_and_cell_and_summed_per_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    resources.record("train", "padim", "nut", fit_seconds=2.0, epochs=1)
    resources.record("train", "padim", "btad/01", fit_seconds=3.0, epochs=1)  # a cell of a run of several datasets
    resources.record("predict", "padim", "nut", predict_seconds=1.0, n_images=10, images_per_second=10.0)
    resources.record("predict", "padim", "btad/01", predict_seconds=3.0, n_images=50, images_per_second=16.7)
    resources.record("segad_features", "padim", "nut", detector_seconds=0.5, feature_seconds=0.25)
    resources.record("segad", "padim+segad", "nut", fit_seconds=0.75, score_seconds=0.25, n_images=10)
    assert Path("reports/resources/train/padim/btad/01.json").is_file()
    doc = resources.read("train", "padim", "nut")
    assert doc["fit_seconds"] == 2.0 and doc["peak_rss_mb"] > 0 and doc["host"]["cpu_count"] >= 1
    assert resources.read("train", "ae", "nut") == {}
    rows = resources.collect()
    assert {(r["stage"], r["model"], r["product"]) for r in rows} >= {("train", "padim", "btad/01")}
    table = resources.costs(rows, ["padim", "padim+segad", "ae"])
    assert list(table) == ["padim", "padim+segad"]  # in the run's order; a model with no record is left out
    assert table["padim"]["fit_seconds"] == 5.0 and table["padim"]["predict_seconds"] == 4.0
    assert table["padim"]["images_per_second"] == 15.0  # 60 images / 4 s, not the mean of the per-cell rates
    assert table["padim+segad"] == {**table["padim+segad"], "fit_seconds": 0.75, "feature_seconds": 0.75,
                                    "predict_seconds": 0.25}  # fmt: skip
    md = resources.costs_markdown(table, rows)
    assert "| padim | 5.0 | – | 4.0 | 15.0 |" in md and "| padim+segad | 0.8 | 0.8 | 0.2 |" in md


def test_write_costs_is_the_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    resources.record("train", "ae", "nut", fit_seconds=1.5, epochs=3)
    table = resources.write_costs(["ae"])
    assert json.loads(Path("reports/costs.json").read_text()) == table
    assert "seconds and peak memory" in Path("reports/costs.md").read_text().lower()


def test_an_unknown_stage_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="unknown stage 'fit': one of train, predict"):
        resources.record("fit", "ae", "nut", seconds=1.0)


def test_weights_paths_in_metadata_do_not_name_this_machine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    site = tmp_path / "venv/lib/python3.11/site-packages/pkg/w.pth"
    assert portable_path(str(site)) == "pkg/w.pth"
    (tmp_path / "weights").mkdir()
    assert portable_path(str(tmp_path / "weights/b.pth")) == "weights/b.pth"
    assert portable_path("/elsewhere/b.pth") == "/elsewhere/b.pth" and portable_path("") == ""
