"""Gates on what the evaluation side writes (thresholds, per-image evaluation, tables): a wrong number stops the
pipeline before the report. Each gate passes on a correct chain and names the file and rule of each fault.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from iadbench.cli import main
from iadbench.gates import evaluate as evaluate_gate
from iadbench.gates import tables as tables_gate
from iadbench.gates import thresholds as thresholds_gate
from tests.evaluation.test_stages import repo, run_all  # noqa: F401 - the fixture

CELL = Path("reports/thresholds/good/nut.json")
ROWS = Path("reports/evaluate/good/nut.csv")


def _errors(result) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for v in result.errors:
        out.setdefault(v.rule, set()).add(v.file)
    return out


def test_the_three_gates_pass_on_a_correct_chain(repo, capsys):  # noqa: F811
    run_all(repo)
    for gate in ("thresholds", "evaluate", "tables"):
        assert main(["gate", gate]) == 0, capsys.readouterr().err
        doc = json.loads(Path(f"reports/gates/{gate}.json").read_text())
        assert doc["success"] and doc["rules"] and all(r["success"] for r in doc["rules"])


def test_thresholds_gate_names_a_missing_an_infinite_and_a_stale_threshold(repo, capsys):  # noqa: F811
    run_all(repo)
    doc = json.loads(CELL.read_text())
    del doc["pixel"]["roc"]
    doc["image"]["pr"]["threshold"] = float("inf")
    doc["validation"]["images"] += 1
    CELL.write_text(json.dumps(doc))
    errors = _errors(thresholds_gate.run(repo))
    assert errors["every rule whose validation samples exist is fitted"] == {f"{CELL}#pixel.roc"}
    assert errors["every fitted threshold is finite"] == {f"{CELL}#image.pr"}
    assert errors["the file's validation count is the split's"] == {str(CELL)}
    assert main(["gate", "thresholds"]) == 1
    assert (
        f"ERROR {CELL}#pixel.roc: rule: every rule whose validation samples exist is fitted" in capsys.readouterr().err
    )


def test_evaluate_gate_names_a_doubled_a_lost_and_an_impossible_row(repo):  # noqa: F811
    run_all(repo)
    rows = pd.read_csv(ROWS)
    anomalous = rows.index[rows["has_mask"]].tolist()
    lost, bad_iou, bad_count = (rows.loc[i, "image_id"] for i in anomalous[:3])
    doubled = rows.loc[~rows["has_mask"], "image_id"].iloc[0]
    rows.loc[rows["image_id"] == bad_iou, "iou_iou"] = 1.5
    rows.loc[rows["image_id"] == bad_count, "pix_roc_tp"] += 1
    rows = pd.concat([rows[rows["image_id"] != lost], rows[rows["image_id"] == doubled]])
    rows.to_csv(ROWS, index=False)
    errors = _errors(evaluate_gate.run(repo))
    assert errors["every test image of the split is evaluated exactly once per cell"] == {
        f"{ROWS}#{doubled}", f"{ROWS}#{lost}"}  # fmt: skip
    assert f"{ROWS}#{bad_iou}" in errors["per-image IoU at iou lies in [0, 1]"]
    assert errors["TP + FN at roc = the mask's defect pixels"] == {f"{ROWS}#{bad_count}"}


def test_tables_gate_recounts_the_split(repo):  # noqa: F811
    run_all(repo)
    table = Path("reports/tables/categories.csv")
    cats = pd.read_csv(table, dtype={"dataset": str})
    row = cats.index[(cats["model"] == "noisy") & (cats["group"] == "surface") & (cats["rule"] == "pr")][0]
    cats.loc[row, "n_images"] += 1
    cats.to_csv(table, index=False)
    errors = _errors(tables_gate.run(repo))
    rule = "n images per defect category, background and dataset = the split's test images"
    assert errors == {rule: {f"{table}#noisy/pr/{cats.loc[row, 'dataset']}/surface"}}
