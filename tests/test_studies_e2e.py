"""Every study end to end through DVC's queue on a tiny configuration (1 seed, 1–2 conditions, the AE model).

One repository for the module: built with `dvc repro` and committed (queued experiments run from a commit), then
each study is queued, run and summarised by `iadbench study`, and its tables are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from iadbench.depsclosure import code_fingerprints
from tests.conftest import TINY, make_repo
from tests.conftest import run_in as _run

pytestmark = pytest.mark.slow(seconds=409)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    params = {**TINY, "models": ["ae"], "train": {**TINY["train"], "epochs": 2}}
    params["synthesize"] = {**TINY["synthesize"], "n_train": 8}  # 8 train images: a noise fraction can fail
    root, env = make_repo(tmp_path_factory.mktemp("studies") / "iadbench", params)
    for done in (root / "reports/studies").iterdir():  # start as a fresh project: no study has run yet
        if done.name != "README.md":
            done.unlink()
    _run(["dvc", "repro"], root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "built"], root, env)
    return root, env


def _study(repo, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    root, env = repo
    return _run(["iadbench", "study", *args, "--seeds", "1"], root, env, check=check)


def _git_show(repo, rev: str, path: str) -> str:
    root, env = repo
    return _run(["git", "show", f"{rev}:{path}"], root, env).stdout


def _dvc_read(repo, rev: str, path: str) -> str:
    """A DVC-tracked file as an experiment wrote it (from the cache, through its dvc.lock)."""
    root, env = repo
    code = f"import dvc.api, sys; sys.stdout.write(dvc.api.read({path!r}, rev={rev!r}))"
    return _run([sys.executable, "-c", code], root, env).stdout


def _dvc_read_npz(repo, rev: str, path: str) -> dict:
    root, env = repo
    out = root.parent / "read.npz"
    read = f"dvc.api.read({path!r}, rev={rev!r}, mode='rb')"
    code = f"import dvc.api, pathlib; pathlib.Path({str(out)!r}).write_bytes({read})"
    _run([sys.executable, "-c", code], root, env)
    return dict(np.load(out))


def _summary(repo, name: str) -> tuple[dict, str]:
    root, _ = repo
    return json.loads((root / f"reports/studies/{name}.json").read_text()), (
        root / f"reports/studies/{name}.md"
    ).read_text()


def test_drift_study_queues_runs_and_tabulates(repo):
    root, env = repo
    dry = _study(repo, "drift", "--dry-run")
    assert "would queue drift-clean-s0" in dry.stdout and "would queue drift-drift-s0" in dry.stdout
    assert not (root / "reports/studies/drift.json").exists()
    out = _study(repo, "drift")
    assert "study drift: 2/2 done, 0 failed" in out.stdout
    doc, md = _summary(repo, "drift")
    assert doc["conditions"] == ["clean", "drift"] and doc["models"] == ["ae"] and not doc["failed"]
    for condition in ("clean", "drift"):  # each cell of the table is what its experiment measured (one seed)
        measured = json.loads(_git_show(repo, doc["experiments"][f"drift-{condition}-s0"], "reports/metrics.json"))
        for key in ("image_auroc", "pixel_aupro", "pg2", "pb2", "mean_iou"):
            stats = doc["metrics"][key]["ae"][condition]
            assert stats["n"] == 1 and stats["mean"] == pytest.approx(measured["ae"][key], abs=1e-12), (key, condition)
    clean = json.loads((root / "reports/metrics.json").read_text())["ae"]
    assert doc["metrics"]["image_auroc"]["ae"]["clean"]["mean"] == pytest.approx(clean["image_auroc"])
    assert doc["metrics"]["pixel_aupro"]["ae"]["drift"]["mean"] != doc["metrics"]["pixel_aupro"]["ae"]["clean"]["mean"]
    assert "| model | clean | drift |" in md and "## mean IoU at the headline rule" in md
    # the baseline commit's code fingerprints, which the report compares with the workspace's (unchanged here)
    assert doc["code"] == code_fingerprints(lambda p: (root / p).read_text() if (root / p).is_file() else None)
    report = _run(["git", "show", f"{doc['experiments']['drift-drift-s0']}:reports/report.md"], root, env).stdout
    assert "Test-time drift (rotate, crop, perspective, jitter, shadow, blur, noise; seed 0)" in report
    again = _study(repo, "drift")  # resumable: nothing queued twice
    assert "skip drift-clean-s0" in again.stdout and "skip drift-drift-s0" in again.stdout
    assert "queue drift" not in again.stdout
    collected = _run(["iadbench", "study", "drift", "--collect"], root, env)
    assert "wrote reports/studies/drift.json" in collected.stdout
    assert _summary(repo, "drift")[0]["metrics"] == doc["metrics"]


def test_fewshot_study_refits_thresholds_only_and_tabulates_every_rule(repo):
    """0 and 1 anomalous validation images: the anomalous-sample rules are not applicable at 0, the normal-only
    rules are the same in both conditions, each cell is its experiment's categories table, nothing retrained."""
    import io

    import pandas as pd

    root, env = repo
    out = _study(repo, "fewshot", "--conditions", "0,1")
    assert "study fewshot: 2/2 done, 0 failed" in out.stdout
    doc, md = _summary(repo, "fewshot")
    assert doc["conditions"] == ["0", "1"] and not doc["failed"]
    table = doc["by_rule"]["mean_iou"]
    for rule in ("roc", "iou", "pr"):
        assert table[f"ae · {rule}"]["0"]["n"] == 0 and table[f"ae · {rule}"]["1"]["n"] == 1
    for rule in ("good_fpr", "good_ksigma", "good_max", "good_quantile"):
        assert table[f"ae · {rule}"]["0"]["values"] == table[f"ae · {rule}"]["1"]["values"]
    for condition in ("0", "1"):
        rev = doc["experiments"][f"fewshot-{condition}-s0"]
        cats = pd.read_csv(io.StringIO(_git_show(repo, rev, "reports/tables/categories.csv")))
        row = cats[(cats["rule"] == "good_ksigma") & (cats["group"] == "all")].iloc[0]
        assert table["ae · good_ksigma"][condition]["mean"] == pytest.approx(row["mean_iou"])
        fitted = json.loads(_dvc_read(repo, rev, "reports/thresholds/ae/nut.json"))
        assert fitted["validation"]["anomalous"] == int(condition)
        assert _dvc_read(repo, rev, "models/ae/nut/meta.json") == (root / "models/ae/nut/meta.json").read_text()
    assert "## Per threshold rule" in md and "| ae · iou | – |" in md
    assert (root / "reports/studies/fewshot.png").stat().st_size > 10_000


def test_noise_study_keeps_completed_experiments_when_one_fails(repo):
    out = _study(repo, "noise", "--conditions", "0.25,0.67", check=False)
    assert out.returncode != 0
    assert "FAILED noise-0.67-s0" in out.stdout
    assert "study noise: 1 experiment(s) failed (noise-0.67-s0)" in out.stderr
    doc, md = _summary(repo, "noise")
    assert doc["conditions"] == ["0.25"] and list(doc["failed"]) == ["noise-0.67-s0"]
    assert "split.train_noise needs anomalous images" in doc["failed"]["noise-0.67-s0"]
    assert "## Failed (kept out of the means)" in md and "noise-0.67-s0" in md
    assert doc["metrics"]["image_auroc"]["ae"]["0.25"]["n"] == 1


def test_size_study(repo):
    _study(repo, "size", "--conditions", "32")  # AE needs a multiple of 32
    doc, _ = _summary(repo, "size")
    assert doc["params"] == {"32": {"data.image_size": 32}} and doc["metrics"]["mean_iou"]["ae"]["32"]["n"] == 1
    maps = _dvc_read_npz(repo, doc["experiments"]["size-32-s0"], "data/maps/ae/nut.npz")
    assert maps["maps"].shape[1:] == (32, 32)  # the experiment's maps are 32 px (the workspace's are 64)
    measured = json.loads(_git_show(repo, doc["experiments"]["size-32-s0"], "reports/metrics.json"))
    assert doc["metrics"]["mean_iou"]["ae"]["32"]["mean"] == pytest.approx(measured["ae"]["mean_iou"], abs=1e-12)


def test_validation_study_reports_epochs(repo):
    _study(repo, "validation", "--conditions", "early_stopping")
    doc, md = _summary(repo, "validation")
    epochs = doc["metrics"]["epochs"]["ae"]["early_stopping"]["mean"]
    record = json.loads(
        _dvc_read(repo, doc["experiments"]["validation-early_stopping-s0"], "reports/predict/ae/nut.json")
    )
    assert epochs == record["best_epoch"]  # the epoch early stopping kept in that experiment (when it stops: the
    assert (
        "## epochs kept (mean over products)" in md
    )  # stopping rule itself is tested in tests/models/test_validation)


def test_unified_study_has_per_product_tables(repo):
    root, env = repo
    _study(repo, "unified", "--conditions", "unified")
    doc, md = _summary(repo, "unified")
    assert "ae / nut" in doc["per_product"]["image_auroc"] and "## Per product: image AUROC" in md
    rev = doc["experiments"]["unified-unified-s0"]
    # a cached DVC output of the experiment (so that the run-cache can restore predict): read through DVC
    read = ["python", "-c", f"import dvc.api; print(dvc.api.read('reports/predict/ae/nut.json', rev='{rev}'))"]
    predict = json.loads(_run(read, root, env).stdout)
    assert predict["regime"] == "unified"
    params = yaml.safe_load(_run(["git", "show", f"{rev}:params.yaml"], root, env).stdout)
    assert params["train"]["unified"] is True


def test_seeds_study_gives_the_headline_spread(repo):
    """The README's headline numbers come with mean ± std over training seeds: seed 0 is the committed build."""
    root, env = repo
    out = _run(["iadbench", "study", "seeds", "--seeds", "2"], root, env)
    assert "study seeds: 2/2 done, 0 failed" in out.stdout
    doc, md = _summary(repo, "seeds")
    auroc = doc["metrics"]["image_auroc"]["ae"]["default"]
    built = json.loads((root / "reports/metrics.json").read_text())["ae"]["image_auroc"]
    assert auroc["n"] == 2 and auroc["std"] is not None and built in auroc["values"]
    assert doc["params"] == {"default": {"train.seed": 0}} and "| model | default |" in md
