"""The report's Studies section: one table per study from reports/studies/*.json."""

from __future__ import annotations

import json
from pathlib import Path

from iadbench.evaluation.report import study_sections
from iadbench.studies import mean_std


def test_each_study_json_becomes_one_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert study_sections() == []  # no studies run yet: no section
    folder = Path("reports/studies")
    folder.mkdir(parents=True)
    by = {"clean": mean_std([0.9, 0.7]), "drift": mean_std([0.6, 0.5])}
    doc = {
        "study": "drift", "question": "q?", "conditions": ["clean", "drift"],
        "seeds": {"clean": [0, 1], "drift": [0, 1]}, "models": ["padim"],
        "metrics": {"image_auroc": {"padim": by}, "mean_iou": {"padim": by}},
    }  # fmt: skip
    (folder / "drift.json").write_text(json.dumps(doc))
    [(title, header, body)] = study_sections()
    assert title.startswith("Studies — drift: q? (mean ± std over seeds [0, 1]")
    assert "reports/studies/drift.md" in title
    assert header == ["model", "image AUROC · clean", "image AUROC · drift", "mean IoU at the headline rule · clean",
                      "mean IoU at the headline rule · drift"]  # fmt: skip
    assert body == [["padim", "0.800 ± 0.141", "0.550 ± 0.071", "0.800 ± 0.141", "0.550 ± 0.071"]]
