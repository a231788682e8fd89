"""The study registry and runner's pure parts: grids, names, params, bad conditions, mean ± std, the tables."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iadbench.cli import main
from iadbench.studies import NAMES
from iadbench.studies.dvc import head
from iadbench.studies.grids import STUDIES, StudyError, experiment_name, get_study, grid
from iadbench.studies.summary import cell, mean_std, render_markdown, segad_pairs


def test_every_study_of_the_issue_is_registered():
    assert list(STUDIES) == ["seeds", "drift", "noise", "size", "validation", "unified", "segad", "fewshot", "cells"]
    assert list(NAMES) == list(STUDIES)  # the CLI's help lists them without importing the registry


def test_grid_names_conditions_and_seeds():
    points = grid(get_study("drift"), None, 3)
    assert [p[0] for p in points] == [f"drift-{c}-s{s}" for c in ("clean", "drift") for s in range(3)]
    name, condition, seed, params = points[4]
    assert (name, condition, seed) == ("drift-drift-s1", "drift", 1)
    assert params["train.seed"] == params["drift.seed"] == 1
    assert set(params["drift.transforms"]) == {"blur", "noise", "jitter", "shadow", "rotate", "crop", "perspective"}
    assert get_study("drift").params("clean", 0)["drift.transforms"] == []
    assert get_study("noise").params("0.04", 2) == {"split.train_noise": 0.04, "train.seed": 2, "split.seed": 2}
    assert get_study("size").params("256", 0) == {"data.image_size": 256, "train.seed": 0}
    assert get_study("validation").params("early_stopping", 0)["train.validation"] == "early_stopping"
    assert get_study("unified").params("unified", 0)["train.unified"] is True
    assert experiment_name("noise", "0.04", 0) == "noise-0.04-s0"
    assert experiment_name("x", "a b/c", 1) == "x-a_b_c-s1"


def test_the_cells_study_is_the_benchmark_one_cell_per_experiment(tmp_path, monkeypatch):
    """Its conditions are params.yaml's cells, once each whatever --seeds (no seed varies); a cell outside the
    benchmark, or SegAD's split on, is refused before anything runs."""
    from pathlib import Path

    import yaml

    from iadbench.studies.run import _precheck
    from tests.conftest import TINY

    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(
        yaml.safe_dump(
            {
                **TINY,
                "models": ["ae", "padim"],
                "data": {**TINY["data"], "datasets": ["synthetic", "btad"], "products": ["synthetic/nut", "btad/01"]},
            }
        )
    )
    study = get_study("cells")
    points = grid(study, None, 3)
    assert [p[0] for p in points] == ["cells-ae_synthetic_nut-s0", "cells-ae_btad_01-s0",
                                      "cells-padim_synthetic_nut-s0", "cells-padim_btad_01-s0"]  # fmt: skip
    assert points[1][3] == {"models": ["ae"], "data.products": ["btad/01"], "export.cells": []}
    with pytest.raises(StudyError, match="condition must be MODEL@PRODUCT"):
        grid(study, ["padim"], 1)
    with pytest.raises(StudyError, match="model stfpm is not in models"):
        _precheck(study, grid(study, ["stfpm@btad/01"], 1))
    Path("params.yaml").write_text(yaml.safe_dump({**TINY, "segad": {**TINY["segad"], "detectors": ["padim"]}}))
    with pytest.raises(StudyError, match="segad.detectors is set"):
        _precheck(study, grid(study, ["padim@nut"], 1))


@pytest.mark.parametrize(
    ("study", "conditions", "message"),
    [
        ("drift", ["fog"], "study drift: unknown condition 'fog'"),
        ("noise", ["1.5"], r"study noise: the noise fraction must be in \[0, 1\)"),
        ("noise", ["lots"], "study noise: condition must be a fraction"),
        ("size", ["20"], r"study size: condition must be an image size in \[32, 1024\]"),
        ("validation", ["best_on_test"], "study validation: unknown condition 'best_on_test'"),
        ("unified", ["clean", "clean"], "a condition is listed twice"),
        ("fewshot", ["-1"], r"study fewshot: condition must be a number of anomalous validation images"),
        ("fewshot", ["few"], r"study fewshot: condition must be a number of anomalous validation images"),
    ],
)
def test_bad_conditions_are_refused_before_anything_runs(study, conditions, message):
    with pytest.raises(StudyError, match=message):
        grid(get_study(study), conditions, 1)


def test_unknown_study_and_bad_seeds():
    with pytest.raises(
        StudyError, match="unknown study 'fog'; valid: seeds, drift, noise, size, validation, unified, segad, fewshot"
    ):
        get_study("fog")
    with pytest.raises(StudyError, match="--seeds must be >= 1"):
        grid(get_study("size"), None, 0)


def test_cli_unknown_study_exits_2_and_says_which_exist(capsys):
    assert main(["study", "fog", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert (
        "iadbench study: error: unknown study 'fog'; valid: seeds, drift, noise, size, validation, unified, segad"
        in err
    )


def test_mean_std_uses_the_sample_std_and_skips_missing_values():
    stats = mean_std([0.5, 0.7, None, float("nan"), 0.9])
    assert stats["n"] == 3 and stats["mean"] == pytest.approx(0.7)
    assert stats["std"] == pytest.approx(math.sqrt(((0.2**2) * 2) / 2))
    assert mean_std([0.4])["std"] is None and mean_std([])["mean"] is None
    assert cell(mean_std([0.5, 0.7])) == "0.600 ± 0.141"
    assert cell(mean_std([0.5])) == "0.500" and cell(mean_std([])) == "–"


def test_markdown_has_one_table_per_metric_and_lists_failures():
    by = {"clean": mean_std([0.9, 0.8]), "drift": mean_std([0.7])}
    summary = {
        "study": "drift", "question": "q?", "reference": "ref", "conditions": ["clean", "drift"],
        "params": {"clean": {"drift.transforms": []}, "drift": {"drift.transforms": ["blur"]}},
        "seed_keys": ["train.seed"], "seeds": {"clean": [0, 1], "drift": [0]}, "models": ["padim"],
        "experiments": {"drift-clean-s0": "a", "drift-clean-s1": "b", "drift-drift-s0": "c"},
        "failed": {"drift-drift-s1": "ERROR boom"}, "wall_seconds": 120.0, "cpu_count": 2,
        "metrics": {k: {"padim": by} for k in ("image_auroc", "pixel_aupro", "pg2", "pb2", "mean_iou")},
        "per_product": {"image_auroc": {"padim / nut": by}},
    }  # fmt: skip
    md = render_markdown(summary)
    assert md.count("| model | clean | drift |") == 5
    assert "| padim | 0.850 ± 0.071 | 0.700 |" in md
    assert "## Per product: image AUROC" in md and "| padim / nut |" in md
    assert "## Failed (kept out of the means)" in md and "ERROR boom" in md
    assert "2.0 min on 2 CPU core(s)" in md and "`drift.transforms=[blur]`" in md


def test_an_existing_experiment_with_other_params_is_an_error(monkeypatch):
    from iadbench.studies import run as studies

    existing = {"size-64-s0": {"rev": "abc", "params": {"data": {"image_size": 128}, "train": {"seed": 0}}}}
    monkeypatch.setattr(studies, "experiments", lambda rev=None: existing)
    with pytest.raises(
        StudyError, match=r"experiment size-64-s0 exists with other params: data.image_size=128 \(asked 64\)"
    ):
        studies.run_study("size", seeds=1, conditions=["64"], dry_run=True, echo=lambda _: None)
    existing["size-64-s0"]["params"]["data"]["image_size"] = 64
    lines: list[str] = []
    plan = studies.run_study("size", seeds=2, conditions=["64"], dry_run=True, echo=lines.append)
    assert plan == {"study": "size", "planned": ["size-64-s1"], "done": 1}
    assert "skip size-64-s0: done already with the same params" in lines


def test_fewshot_grid_runs_seedless_conditions_once():
    """0 (normal-only rules) and all (every anomalous image) draw nothing: one experiment each, whatever --seeds."""
    points = grid(get_study("fewshot"), None, 3)
    assert [p[0] for p in points] == ["fewshot-0-s0", *(f"fewshot-{c}-s{s}" for c in ("1", "2", "4", "8")
                                                        for s in range(3)), "fewshot-all-s0"]  # fmt: skip
    assert points[1][3] == {"threshold.anomalous_images": 1, "threshold.seed": 0}
    assert points[-1][3] == {"threshold.anomalous_images": "all", "threshold.seed": 0}


def test_fewshot_refuses_more_anomalous_images_than_a_product_has(tmp_path, monkeypatch):
    from iadbench.studies import run as studies

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("data: {datasets: [synthetic], products: [nut, weave], image_size: 64}\n")
    (tmp_path / "data").mkdir()
    rows = ["image_id,dataset,product,split,label,defect_type,image_path,mask_path,sha256"]
    rows += [f"{p}/{k},synthetic,{p},validation,anomalous,scratch,x.png,m.png,0" for p, n in (("nut", 5), ("weave", 2))
             for k in range(n)]  # fmt: skip
    (tmp_path / "data/assignment.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(studies, "experiments", lambda rev=None: {})
    with pytest.raises(StudyError, match=r"condition '4': 4 anomalous validation images per product asked, but "
                                         r"weave has 2"):  # fmt: skip
        studies.run_study("fewshot", seeds=1, conditions=["1", "4"], dry_run=True, echo=lambda _: None)


def test_size_refuses_a_size_a_selected_model_cannot_take(tmp_path, monkeypatch):
    from iadbench.studies import run as studies

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("models: [padim, ae]\n")
    monkeypatch.setattr(studies, "experiments", lambda rev=None: {})
    with pytest.raises(
        StudyError, match=r"condition '48': ae does not accept data.image_size=48: needs a multiple of 32"
    ):
        studies.run_study("size", seeds=1, conditions=["48"], dry_run=True, echo=lambda _: None)


def test_wall_time_comes_from_the_recorded_runs_of_that_commit(tmp_path, monkeypatch):
    import json

    from iadbench.studies import summary as studies

    monkeypatch.chdir(tmp_path)
    studies.RUNS.parent.mkdir(parents=True)
    runs = [{"study": "drift", "baseline": "a" * 40, "wall_seconds": 60.0},
            {"study": "drift", "baseline": "b" * 40, "wall_seconds": 5.0},
            {"study": "drift", "baseline": "a" * 40, "wall_seconds": 30.0},  # a resumed run: both parts count
            {"study": "noise", "baseline": "a" * 40, "wall_seconds": 7.0}]  # fmt: skip
    studies.RUNS.write_text("".join(json.dumps(r) + "\n" for r in runs))
    assert [r["wall_seconds"] for r in studies.run_records("drift", "a" * 40)] == [60.0, 30.0]
    assert studies.run_records("size", "a" * 40) == []


def test_collect_names_a_commit_that_does_not_exist():
    with pytest.raises(StudyError, match="nope: not a commit of this repository"):
        head("nope")


def test_segad_study_runs_segad_on_every_model_with_maps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("models: [padim, dfkde, ae]\n")  # dfkde: image scores only
    assert get_study("segad").params("8", 1) == {
        "segad.detectors": ["padim", "ae"], "segad.ensembles": ["all"], "segad.shots": 8,
        "train.seed": 1, "segad.seed": 1,
    }  # fmt: skip
    (tmp_path / "params.yaml").write_text("models: [padim]\n")
    assert get_study("segad").params("0", 0)["segad.ensembles"] == []  # all+segad needs two detectors
    with pytest.raises(StudyError, match=r"condition must be a number of shots in \[0, 64\]"):
        grid(get_study("segad"), ["some"], 1)
    (tmp_path / "params.yaml").write_text("models: [dfkde]\n")
    with pytest.raises(StudyError, match="no model of params.yaml writes anomaly maps"):
        get_study("segad").params("0", 0)


def test_segad_markdown_pairs_each_detector_with_its_setup():

    def by(*values):
        return {"0": mean_std(list(values)), "8": mean_std(list(values))}

    metrics = {
        "image_auroc": {"padim": by(0.9, 0.8), "ae": by(0.6), "padim+segad": by(0.7), "ae+segad": by(0.65),
                        "all+segad": by(0.95)},
        "fpr_at_95tpr": {m: by(0.5) for m in ("padim", "ae", "padim+segad", "ae+segad", "all+segad")},
        "pg2": {m: by(0.1) for m in ("padim", "ae", "padim+segad", "ae+segad", "all+segad")},
    }  # fmt: skip
    summary = {
        "study": "segad", "question": "q?", "reference": "ref", "conditions": ["0", "8"],
        "params": {}, "seed_keys": ["train.seed"], "seeds": {"0": [0, 1], "8": [0, 1]},
        "models": ["padim", "ae", "padim+segad", "ae+segad", "all+segad"], "experiments": {}, "failed": {},
        "metric_titles": [["image_auroc", "image AUROC"], ["fpr_at_95tpr", "FPR@95TPR"], ["pg2", "PG2"]],
        "metrics": metrics, "per_product": {},
    }  # fmt: skip
    md = render_markdown(summary)
    assert segad_pairs({**summary, "models": ["padim", "ae"]}) is None
    assert "## Table 2 layout: detector vs detector + SegAD" in md
    assert "| padim | 0.850 ± 0.071 | 0.700 | 0.500 | 0.500 | 0.850 ± 0.071 | 0.700 |" in md
    assert "| all (padim, ae; detector columns: best single) | 0.850 ± 0.071 | 0.950 |" in md
    assert "## FPR@95TPR" in md and "## pixel AUPRO" not in md


def test_dvc_runs_with_the_interpreters_bin_first_on_path(monkeypatch):
    # DVC's queue worker starts `dvc`, the stages `iadbench`: a study run from an unactivated venv must find both
    import os
    import sys
    from pathlib import Path

    from iadbench.studies.dvc import dvc_env

    monkeypatch.setenv("PATH", "/usr/bin")
    assert dvc_env()["PATH"].split(os.pathsep) == [str(Path(sys.executable).parent), "/usr/bin"]


def test_queue_state_reads_dvcs_queue_in_process(tmp_path, monkeypatch):
    """What `dvc queue status` prints (experiment -> status, workers), asked through DVC's API: a real queue."""
    from iadbench.studies.dvc import queue_state

    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "DVC_NO_ANALYTICS": "1"}  # fmt: skip
    Path("params.yaml").write_text("x: 1\n")
    Path("dvc.yaml").write_text("stages:\n  s:\n    cmd: echo ${x} > out\n    params: [x]\n    outs: [out]\n")
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "i"],
                ["dvc", "exp", "run", "--queue", "-n", "drift-clean-s0", "-S", "x=2"]):  # fmt: skip
        subprocess.run([sys.executable, "-m", *cmd] if cmd[0] == "dvc" else cmd, check=True, env=env,
                       capture_output=True)  # fmt: skip
    assert queue_state() == ({"drift-clean-s0": "Queued"}, 0)


def test_a_queue_without_worker_is_an_error_not_a_hang(monkeypatch):
    from iadbench.studies import run as studies

    monkeypatch.setattr(studies, "queue_state", lambda: ({"segad-0-s0": "Queued"}, 0))
    monkeypatch.setattr(studies, "WORKER_GRACE_SECONDS", 0.0)
    monkeypatch.setattr(studies, "POLL_SECONDS", 0.01)
    with pytest.raises(StudyError, match="queued but no queue worker runs"):
        studies.follow("segad", ["segad-0-s0"], 0.0, lambda _: None)


def test_a_running_experiment_without_worker_fails_instead_of_hanging(monkeypatch):
    """Seen in a suite run: DVC's worker shut down "due to empty queue" with the task it had taken, and `dvc queue
    status` reported it Running with no worker until the test's 600 s timeout."""
    from iadbench.studies import run as studies

    monkeypatch.setattr(studies, "queue_state", lambda: ({"size-32-s0": "Running", "size-64-s0": "Success"}, 0))
    monkeypatch.setattr(studies, "WORKER_GRACE_SECONDS", 0.0)
    monkeypatch.setattr(studies, "POLL_SECONDS", 0.01)
    failed = studies.follow("size", ["size-32-s0", "size-64-s0"], 0.0, lambda _: None)
    assert list(failed) == ["size-32-s0"] and "no queue worker runs" in failed["size-32-s0"]


def test_unfinished_experiments_are_not_read(monkeypatch):
    import json

    from iadbench.studies import dvc as studies

    def rev(name, value):
        return {"name": name, "rev": name + "-rev", "data": {"params": {}, "metrics": {
            "reports/metrics.json": {"data": {"padim": {"image_auroc": value}}}}}}  # fmt: skip

    shown = [{"experiments": [
        {"executor": {"state": "running"}, "name": "segad-0-s2", "revs": [rev("segad-0-s2", 0.5)]},
        {"executor": {"state": "success"}, "name": "segad-0-s1", "revs": [rev("segad-0-s1", 0.9)]},
        {"executor": None, "name": "segad-0-s0", "revs": [rev("segad-0-s0", 0.8)]},
    ]}]  # fmt: skip
    monkeypatch.setattr(studies, "dvc", lambda *a, **k: type("P", (), {"stdout": json.dumps(shown), "returncode": 0})())
    assert sorted(studies.experiments("abc")) == ["segad-0-s0", "segad-0-s1"]


def test_experiments_are_grouped_by_condition_and_seed_from_their_names():
    from iadbench.studies.summary import _runs_of

    done = {"metrics": {"reports/headline.json": {"ae": {}}}}
    found = {
        "drift-clean-s0": done, "drift-clean-s1": done, "drift-drift-s10": done,
        "drift-drift-s2": {"metrics": {}},  # failed before its metrics: left out
        "noise-0.04-s0": done, "drift-clean": done, "drift-clean-sx": done,  # another study, not a grid name
    }  # fmt: skip
    runs = _runs_of(get_study("drift"), found)
    assert {c: sorted(v) for c, v in runs.items()} == {"clean": [0, 1], "drift": [10]}
    assert runs["drift"][10]["name"] == "drift-drift-s10"


def test_exp_show_waits_out_dvcs_finishing_experiment_and_nothing_else(monkeypatch):
    """DVC lists a just-finished queued experiment as active and reads its removed info file: retried; any other
    failure of `dvc exp show` is an error at once."""
    import subprocess

    from iadbench.studies import dvc as studies_dvc

    finishing = "ERROR: unexpected error - [Errno 2] No such file or directory: '/r/.dvc/tmp/exps/run/ab12/ab12.run'"
    answers = [(255, finishing), (255, finishing), (0, "")]
    calls = []

    def fake(*args, check=True):
        calls.append(args)
        code, err = answers.pop(0)
        return subprocess.CompletedProcess(args, code, stdout="[]" if code == 0 else "", stderr=err)

    monkeypatch.setattr(studies_dvc, "dvc", fake)
    monkeypatch.setattr(studies_dvc.time, "sleep", lambda s: None)
    assert studies_dvc.experiments("abc") == {} and len(calls) == 3
    assert calls[0] == ("exp", "show", "--json", "--rev", "abc")
    answers[:] = [(255, "ERROR: unexpected error - [Errno 2] No such file or directory: 'params.yaml'")]
    with pytest.raises(StudyError, match=r"dvc exp show --json failed \(255\)"):
        studies_dvc.experiments()
    monkeypatch.setattr(studies_dvc, "EXP_SHOW_RETRIES", 2)
    answers[:] = [(255, finishing)] * 2
    with pytest.raises(StudyError, match="exps/run/ab12"):  # it gives up, naming DVC's error
        studies_dvc.experiments()
