"""The report's "Training length" section: epochs per model, the rule that chose them, and the under-trained note."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iadbench.errors import InputError
from iadbench.evaluation.report import training_section


def _record(model: str, product: str, **doc) -> None:
    path = Path("reports/predict") / model / f"{product}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": model, "product": product, **doc}))


def test_epochs_rule_and_full_length_per_model_and_who_is_under_trained(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for product in ("nut", "weave"):
        _record("stfpm", product, epochs=10, epochs_rule="profile demo", epochs_full=100)
        _record("padim", product, epochs=1, epochs_rule="one pass", epochs_full=1)
        _record("padim+segad", product, epochs=10)  # a SegAD setup: XGBoost rounds, not epochs; left out
    _record("ae", "nut", epochs=7, epochs_rule="profile full", epochs_full=200)  # early stopping: a range
    _record("ae", "weave", epochs=200, epochs_rule="profile full", epochs_full=200)
    title, header, rows, note = training_section(["stfpm", "padim", "padim+segad", "ae"], ["nut", "weave"])
    assert title == "Training length (epochs per model)"
    assert header == ["model", "epochs", "chosen by", "full profile"]
    assert rows == [["stfpm", "10", "profile demo", "100"], ["padim", "1", "one pass", "1"],
                    ["ae", "7–200", "profile full", "200"]]  # fmt: skip
    assert note.startswith("Under-trained: stfpm (10 of 100) trained fewer epochs than their full length")


def test_no_note_of_under_training_when_every_model_ran_its_full_length(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _record("cflow", "nut", epochs=50, epochs_rule="profile full", epochs_full=50)
    _record("patchcore", "nut", epochs=1, epochs_rule="one pass", epochs_full=1)
    assert training_section(["cflow", "patchcore"], ["nut"])[3] == "Every trained model ran its full length."


def test_a_missing_predict_record_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _record("cflow", "nut", epochs=50, epochs_rule="profile full", epochs_full=50)
    with pytest.raises(InputError, match=r"reports/predict/cflow/weave.json: predict record not found"):
        training_section(["cflow"], ["nut", "weave"])
