"""The report's Studies section: one table per study from reports/studies/*.json."""

from __future__ import annotations

import json
from pathlib import Path

from iadbench.evaluation.report import study_sections
from iadbench.studies.summary import mean_std


def test_each_study_json_becomes_one_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert study_sections() == []  # no studies run yet: no section
    folder = Path("reports/studies")
    folder.mkdir(parents=True)
    by = {"clean": mean_std([0.9, 0.7]), "drift": mean_std([0.6, 0.5])}
    doc = {
        "study": "drift", "question": "q?", "conditions": ["clean", "drift"], "baseline": "a1b2c3d" + "0" * 33,
        "seeds": {"clean": [0, 1], "drift": [0, 1]}, "models": ["padim"],
        "metrics": {"image_auroc": {"padim": by}, "mean_iou": {"padim": by}},
    }  # fmt: skip
    (folder / "drift.json").write_text(json.dumps(doc))
    [(title, header, body, provenance)] = study_sections()
    assert title.startswith("Studies — drift: q? (mean ± std over seeds [0, 1]")
    assert "reports/studies/drift.md" in title
    assert provenance.startswith("Experiments derived from commit a1b2c3d (`iadbench study drift`)")
    assert header == ["model", "image AUROC · clean", "image AUROC · drift", "mean IoU at the headline rule · clean",
                      "mean IoU at the headline rule · drift"]  # fmt: skip
    assert body == [["padim", "0.800 ± 0.141", "0.550 ± 0.071", "0.800 ± 0.141", "0.550 ± 0.071"]]


def test_a_segad_study_adds_its_table_2_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = Path("reports/studies")
    folder.mkdir(parents=True)
    by = {"0": mean_std([0.9, 0.7])}
    models = ["padim", "padim+segad"]
    doc = {
        "study": "segad", "question": "q?", "conditions": ["0"], "seeds": {"0": [0, 1]}, "models": models,
        "baseline": "f" * 40,
        "metrics": {k: {m: by for m in models} for k in ("image_auroc", "fpr_at_95tpr")},
        "metric_titles": [["image_auroc", "image AUROC"], ["fpr_at_95tpr", "FPR@95TPR (image)"]],
    }  # fmt: skip
    (folder / "segad.json").write_text(json.dumps(doc))
    sections = study_sections()
    assert len(sections) == 2
    assert sections[0][1] == ["model", "image AUROC · 0", "FPR@95TPR (image) · 0"]  # its own metrics, no mean IoU
    title, header, body, *_ = sections[1]
    assert "detector vs detector + SegAD" in title and header[1:3] == ["AUROC · 0: detector", "AUROC · 0: + SegAD"]
    assert body == [["padim", "0.800 ± 0.141", "0.800 ± 0.141", "0.800 ± 0.141", "0.800 ± 0.141"]]


def test_the_code_note_says_whether_the_code_behind_a_study_changed_since_its_commit():
    from iadbench.evaluation.report import code_note

    now = {"split": "a", "train": "b", "metrics": "c"}
    assert code_note(dict(now), now, "drift").startswith("The code behind these numbers is unchanged since")
    note = code_note({**now, "train": "old", "metrics": "old"}, now, "drift")
    assert note.startswith("The code behind these numbers changed since that commit (stages train, metrics)")
    assert "`iadbench study drift`" in note
    assert code_note(None, now, "seeds").startswith("Its code fingerprint was not recorded")
    assert "(every stage that shapes them)" in code_note({v: "old" for v in now}, now, "seeds")
