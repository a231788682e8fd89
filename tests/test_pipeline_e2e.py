"""The whole DAG with DVC on the tiny synthetic configuration, in a fresh copy of this repository.

Tests in this module run in order against one repository: build, no-op rebuild, byte-identical rebuild,
`dvc exp run` (a split param reruns exactly the split and later), parameter-scoped reruns, then a bad dataset that
must stop at its gate.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from iadbench.metrics.rules import fitted_rules
from tests.conftest import TINY, chromium_screenshot, drawn_share, make_repo, tree_digest
from tests.conftest import run_in as _run

pytestmark = pytest.mark.slow(seconds=374)
PROJECT = Path(__file__).resolve().parents[1]


def _stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _cells(*stages: str) -> set[str]:
    return {f"{stage}@{model}-nut" for stage in stages for model in ("padim", "ae")}


def _set_params(repo: Path, **sections) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> tuple[Path, dict]:
    return make_repo(tmp_path_factory.mktemp("e2e") / "iadbench", TINY)


def warm_up(root: Path, env: dict) -> None:
    """Start the warm worker of the train/predict stages' environment (their cmd sets MALLOC_MMAP_THRESHOLD_ and
    HF_HUB_OFFLINE) and wait until it listens, so that those stages run in it whatever the machine's speed."""
    stage_env = {**env, "MALLOC_MMAP_THRESHOLD_": "4194304", "HF_HUB_OFFLINE": "1"}
    probe = "from iadbench.warm import key, socket_dir; print(socket_dir() / f'{key()}.sock')"
    sock = Path(_run([sys.executable, "-c", probe], root, stage_env).stdout.strip())
    _run(["iadbench", "--version"], root, stage_env)  # no worker yet: runs here and starts one
    for _ in range(600):
        if sock.exists():
            return
        time.sleep(0.5)
    raise AssertionError(f"the warm worker did not listen at {sock} within 300 s")


@pytest.fixture(scope="module")
def first_build(repo) -> subprocess.CompletedProcess:
    """The first `dvc repro` of the module's repository: every test depends on it, so each passes when run alone.
    Its train and predict stages run in the warm worker (started first), the clean rebuild in fresh processes."""
    root, env = repo
    warm_up(root, env)
    return _run(["dvc", "repro"], root, env)


def _restore(root: Path, env: dict) -> None:
    """Back to the built default: committed params, the workspace's outputs checked out and up to date."""
    _run(["git", "checkout", "--", "params.yaml"], root, env)
    _run(["dvc", "checkout", "-q"], root, env, check=False)
    _run(["dvc", "repro"], root, env)


def test_repro_builds_every_stage(repo, first_build):
    root, env = repo
    out = first_build
    assert _stages_run(out.stdout) == {
        "check_params", "synthesize", "manifest", "gate_manifest", "categories", "gate_categories", "split",
        "gate_split", "summary", "gate_maps", "metrics", "report", "costs", "figures", "gate_thresholds",
        "gate_evaluate", "gate_tables", "gate_docs", *_cells("train", "predict", "thresholds", "evaluate"),
    }  # fmt: skip
    assert json.loads((root / "reports/gates/maps.json").read_text())["success"]
    docs = (root / "reports/gates/docs/index.html").read_text()
    assert "manifest.images" in docs and "https://" not in docs  # GX Data Docs, offline
    assert "reports/gates/docs" not in (root / "reports/report.html").read_text()  # linked relative to the report
    assert "gates/docs/index.html" in (root / "reports/report.html").read_text()
    meta = json.loads((root / "models/padim/nut/meta.json").read_text())
    assert meta["weights_source"] == "package" and meta["backbone"] == "tf_efficientnet_lite0"
    for gate in ("manifest", "categories", "split"):
        assert json.loads((root / f"reports/gates/{gate}.json").read_text())["success"]
    summary = json.loads((root / "reports/data_summary.json").read_text())
    assert summary["images"]["total"] == 3 * (3 + 3 + 6)
    assert summary["images"]["train"] == 9
    metrics = _run(["dvc", "metrics", "show", "--json"], root, env).stdout
    assert '"total": 36' in metrics.replace(" ", "").replace('"total":36', '"total": 36')
    headline = json.loads((root / "reports/metrics.json").read_text())
    assert set(headline) == {"padim", "ae"}
    for model, block in headline.items():  # recomputed from the per-image rows with scikit-learn and pandas
        rows = pd.read_csv(root / f"reports/evaluate/{model}/nut.csv")
        anomalous = rows["label"].eq("anomalous")
        reference = roc_auc_score(anomalous, rows["score"])
        cell = json.loads((root / f"reports/evaluate/{model}/nut.json").read_text())
        assert cell["image"]["auroc"] == pytest.approx(reference, abs=1e-9)
        assert block["image_auroc"] == pytest.approx(reference, abs=1e-9)  # one product: the pooled value is its own
        with_mask = rows[anomalous & rows["has_mask"].astype(bool)]
        for rule in ("roc", "iou", "pr"):
            assert block["mean_iou_by_rule"][rule] == pytest.approx(with_mask[f"iou_{rule}"].mean(), abs=1e-9)
        assert block["mean_iou"] == block["mean_iou_by_rule"][TINY["threshold"]["method"]]
    page = (root / "reports/report.html").read_text()
    assert "Table 1" in page and "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page, "the report must open offline"


def test_second_repro_does_nothing(repo, first_build):
    """Right after the first build (no restore in between, which would itself run `dvc repro`)."""
    root, env = repo
    out = _run(["dvc", "repro"], root, env)
    assert _stages_run(out.stdout) == set()
    assert "up to date" in out.stdout


def _processes(root: Path) -> set[str]:
    """How the train/predict stages ran: "warm" (forked from the warm worker) or "fresh" (iadbench.warm)."""
    records = [
        root / "reports/resources" / stage / model / "nut.json"
        for stage in ("train", "predict")
        for model in ("padim", "ae")
    ]  # this configuration's cells (the repository's own are other models')
    return {json.loads(p.read_text())["host"].get("process") for p in records}


def test_clean_rebuild_is_byte_identical(repo, first_build):
    """A forced rebuild from nothing (``data/raw`` and ``models/`` deleted) measuring every receptive field again
    (``IADBENCH_SHIFT_CACHE=off``) writes what the first build wrote, which read the shifts cached by the first cell:
    every cached output hash is equal. Then the cells' train and predict forced again in fresh processes
    (``IADBENCH_WARM=0``) write the same bytes as the warm worker's forks (every other verb's warm/fresh parity is
    tests/test_warm.py's; a whole cold rebuild cost this module ~4 min more for what these four stages prove)."""
    root, env = repo
    _restore(root, env)
    assert "warm" in _processes(root)  # the worker was started before the build
    before = {
        p: (root / p).read_bytes()
        for p in (
            "data/split.csv",
            "data/manifest.csv",
            "data/categories.csv",
            "data/maps/padim/nut.npz",
            "reports/thresholds/padim/nut.json",
            "reports/evaluate/padim/nut.csv",
        )
    }
    raw_before = tree_digest(root / "data/raw/synthetic")
    lock_before = _lock_outputs(root)
    for p in before:
        (root / p).unlink()
    shutil.rmtree(root / "data/raw/synthetic")
    shutil.rmtree(root / "models")
    _run(["dvc", "repro", "--force"], root, {**env, "IADBENCH_SHIFT_CACHE": "off"})
    assert {p: (root / p).read_bytes() for p in before} == before
    assert tree_digest(root / "data/raw/synthetic") == raw_before
    # a stable dvc.lock: every output hash of every stage is rebuilt, the trained models' folders included; only
    # the volatile measurements (reports/resources, reports/costs.*) may differ
    lock_after = _lock_outputs(root)
    assert set(lock_after) == set(lock_before)
    changed = {k for k in lock_before if lock_after[k] != lock_before[k]}
    assert changed and all(path.startswith(VOLATILE) for _, path in changed), sorted(changed)
    models = tree_digest(root / "models")
    cells = sorted(_cells("train", "predict"))
    _run(["dvc", "repro", "--force", "--single-item", *cells], root, {**env, "IADBENCH_WARM": "0"})
    assert _processes(root) == {"fresh"}
    assert tree_digest(root / "models") == models
    assert (root / "data/maps/padim/nut.npz").read_bytes() == before["data/maps/padim/nut.npz"]
    fresh = _lock_outputs(root)
    assert {k: v for k, v in fresh.items() if not k[1].startswith(VOLATILE)} == {
        k: v for k, v in lock_after.items() if not k[1].startswith(VOLATILE)
    }


VOLATILE = ("reports/resources/", "reports/costs.")  # seconds and memory: excluded from the lock comparison


def _lock_outputs(root: Path) -> dict[tuple[str, str], str]:
    """(stage, output path) -> hash, from dvc.lock."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return {(stage, out["path"]): out.get("md5") or out.get("hash") for stage, s in lock.items() for out in s["outs"]}


def test_exp_run_val_fraction_is_listed_with_summary_metrics(repo, first_build):
    # 0.6, not 0.4: on the tiny config 0.3 and 0.4 round to the same per-product counts (1 of 3, 2 of 6).
    # The default config runs 0.4 in the README example.
    root, env = repo
    _restore(root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "lock"], root, env)
    baseline = json.loads((root / "reports/data_summary.json").read_text())["images"]["validation"]
    out = _run(["dvc", "exp", "run", "-n", "val60", "-S", "split.val_fraction=0.6"], root, env)
    assert _stages_run(out.stdout) == {  # a split param reruns the split and everything after it, nothing before
        "check_params", "split", "gate_split", "summary", "gate_maps", "metrics", "report", "costs", "figures",
        "gate_thresholds", "gate_evaluate", "gate_tables", "gate_docs",
        *_cells("train", "predict", "thresholds", "evaluate"),
    }  # fmt: skip
    shown = _run(["dvc", "exp", "show", "--md"], root, env).stdout
    assert "val60" in shown and "images.validation" in shown
    exps = json.loads(_run(["dvc", "exp", "show", "--json"], root, env).stdout)
    values = []
    for commit in exps:
        for exp in [commit, *[e for ex in commit.get("experiments") or [] for e in ex.get("revs", [])]]:
            data = (exp.get("data") or {}).get("metrics", {}).get("reports/data_summary.json", {}).get("data")
            if data:
                values.append(data["images"]["validation"])
    assert baseline in values and any(v > baseline for v in values)


def test_exp_run_with_fewer_models_retrains_nothing(repo, first_build):
    root, env = repo
    _restore(root, env)
    out = _run(["dvc", "exp", "run", "-n", "padim-only", "-S", "models=[padim]"], root, env)
    ran = _stages_run(out.stdout)
    assert not any(s.startswith(("train@", "predict@")) for s in ran), ran
    # the gates over every cell see one model fewer, the tables and the report lose a model: all of them rerun
    required = {"check_params", "gate_maps", "gate_thresholds", "gate_evaluate", "metrics", "gate_tables", "gate_docs",
                "report"}  # fmt: skip
    assert required <= ran <= required | {"costs", "figures"}, ran


def test_exp_run_threshold_method_reruns_only_metrics_and_report(repo, first_build):
    root, env = repo
    _restore(root, env)
    before = json.loads((root / "reports/metrics.json").read_text())
    out = _run(["dvc", "exp", "run", "-n", "rule-pr", "-S", "threshold.method=pr"], root, env)
    # check_params: every param change; gate_tables: the tables changed
    assert _stages_run(out.stdout) == {"check_params", "metrics", "gate_tables", "report"}
    after = json.loads((root / "reports/metrics.json").read_text())
    for model in before:
        assert after[model]["mean_iou"] == after[model]["mean_iou_by_rule"]["pr"]
        assert after[model]["mean_iou_by_rule"] == before[model]["mean_iou_by_rule"]
    shown = _run(["dvc", "exp", "show", "--md"], root, env).stdout
    assert "rule-pr" in shown and "padim.mean_iou" in shown and "threshold_rule" in shown
    assert "train_loss" not in shown and "fit_seconds" not in shown  # per-cell summaries and timings: not metrics
    files = _metric_columns(json.loads(_run(["dvc", "exp", "show", "--json"], root, env).stdout))
    assert set(files) == {"reports/headline.json", "reports/data_summary.json"}, files
    headline = json.loads((root / "reports/headline.json").read_text())
    assert files["reports/headline.json"] == 1 + 7 * len(TINY["models"])  # the rule, then 7 figures per model
    for model in TINY["models"]:  # the same numbers as the full block
        assert headline[model].items() <= after[model].items()
    plots = _run(["dvc", "plots", "show", "-o", "plots_out"], root, env)
    page = (root / "plots_out/index.html").read_text()
    assert "<img" in page and "<script src=" not in page and "cdn.jsdelivr" not in page, plots.stdout
    assert "vegaEmbed" in page and "validation curves and fitted thresholds" in page and "train_loss" in page
    _assert_renders(root / "plots_out/index.html", root.parent / "chromium")


def _metric_columns(exps: list[dict]) -> dict[str, int]:
    """Metrics file -> number of its columns in `dvc exp show --json` (leaves of its data, over every revision)."""

    def leaves(data, prefix=""):
        if isinstance(data, dict):
            return {leaf for k, v in data.items() for leaf in leaves(v, f"{prefix}{k}.")}
        return {prefix}

    columns: dict[str, set[str]] = {}
    for commit in exps:
        revs = [commit, *[r for e in commit.get("experiments") or [] for r in e.get("revs") or []]]
        for rev in revs:
            for path, metric in ((rev.get("data") or {}).get("metrics") or {}).items():
                columns.setdefault(path, set()).update(leaves((metric or {}).get("data") or {}))
    return {path: len(keys) for path, keys in columns.items()}


def test_run_cache_restores_a_retrained_cell_and_plots_diff_overlays_both(repo, first_build):
    """A -> B -> A: an experiment that trains the AE with another bottleneck (only the AE's cells rerun), then back
    to the built parameters: DVC's run-cache restores the AE's train and predict (no `train@` or `predict@` stage
    runs, which DVC does only for stages without a plain uncached output), byte for byte. `dvc plots diff` of the
    workspace and the experiment then carries both revisions in the AE's training curves and a cell's threshold
    curves, offline (the tiny AE trains one step, so only its architecture moves the one point of its curve).
    """
    root, env = repo
    _restore(root, env)
    model = (root / "models/ae/nut/model.pt").read_bytes()
    out = _run(["dvc", "exp", "run", "-n", "lat16", "-S", "model_options.ae.latent_dim=16"], root, env)
    ran = _stages_run(out.stdout)
    assert {"train@ae-nut", "predict@ae-nut"} <= ran and not any(s.endswith("padim-nut") for s in ran), ran
    assert (root / "models/ae/nut/model.pt").read_bytes() != model
    _run(["git", "checkout", "--", "params.yaml"], root, env)
    out = _run(["dvc", "repro"], root, env)
    assert not {s for s in _stages_run(out.stdout) if s.startswith(("train@", "predict@"))}, out.stdout
    for stage in ("train@ae-nut", "predict@ae-nut"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in out.stdout, out.stdout
    assert (root / "models/ae/nut/model.pt").read_bytes() == model
    targets = ["reports/train/ae/nut/plots/metrics", "reports/thresholds/ae/nut.curves.csv"]
    _run(["dvc", "plots", "diff", "lat16", "-o", "diff_out", "--targets", *targets], root, env)
    page = (root / "diff_out/index.html").read_text()
    assert "workspace" in page and "lat16" in page and "cdn.jsdelivr" not in page
    points = [json.loads(d) for d in re.findall(r'\{[^{}]*"train_loss"[^{}]*\}', page)]
    points = [p for p in points if "rev" in p]  # the curves' data points (the spec's encodings name the field too)
    losses = {rev: [p["train_loss"] for p in points if p["rev"] == rev] for rev in ("workspace", "lat16")}
    assert all(losses.values()) and losses["workspace"] != losses["lat16"], losses  # two curves, not one drawn twice
    _assert_renders(root / "diff_out/index.html", root.parent / "chromium-diff")


def _assert_renders(html: Path, workdir: Path) -> None:
    """Headless Chromium renders the page with no network: a screenshot that is not blank."""
    drawn = drawn_share(chromium_screenshot(html, workdir))
    assert drawn > 0.01, f"{html}: {drawn:.2%} of the screenshot is drawn: the plots did not render"


def test_bad_dataset_stops_at_its_gate_and_damages_nothing(repo, first_build, tmp_path):
    root, env = repo
    _restore(root, env)
    src = tmp_path / "broken"
    shutil.copytree(root / "data/raw/synthetic", src)
    (src / "weave/test/hole/000.png").write_bytes(b"\x89PNG truncated")
    export = tmp_path / "export.json"
    export.write_text((root / "annotation/exports/synthetic.json").read_text().replace("raw/synthetic/", "raw/broken/"))
    _run(["iadbench", "import", str(src), "--name", "broken", "--export", str(export)], root, env)
    raw_before = tree_digest(root / "data/raw/broken")
    cache_before = tree_digest(root / ".dvc/cache")
    _set_params(root, data={"datasets": ["broken"]})
    out = _run(["dvc", "repro"], root, env, check=False)
    assert out.returncode != 0
    assert "ERROR data/raw/broken/weave/test/hole/000.png: rule: image file decodes" in out.stderr
    assert "categories" not in _stages_run(out.stdout)
    assert tree_digest(root / "data/raw/broken") == raw_before
    cache_after = tree_digest(root / ".dvc/cache")
    assert all(cache_after.get(k) == v for k, v in cache_before.items()), "the DVC cache must never change"
    _run(["git", "checkout", "--", "params.yaml"], root, env)


def test_recommend_ranks_the_built_cells_and_reads_a_commit(repo, first_build):
    """`iadbench recommend` on the tiny build: its best candidate's mean IoU recomputed from the per-image rows and
    the categories with pandas; the same answer from a commit of the build (--rev, read through DVC); a request it
    cannot answer exits 2 with the reason."""
    root, env = repo
    _restore(root, env)
    cats = pd.read_csv(root / "data/categories.csv", keep_default_na=False)
    rows = pd.concat([pd.read_csv(root / f"reports/evaluate/{m}/nut.csv") for m in ("padim", "ae")])
    rows = rows.merge(cats[["image_id", "defect_categories", "background"]], on="image_id")
    background = rows["background"].iloc[0]
    every = "structural,surface,contamination,combined"
    ask = ["iadbench", "recommend", "--background", background, "--defects", every]
    ranked = json.loads(_run([*ask, "--json"], root, env).stdout)
    assert {(c["model"], c["rule"]) for c in ranked} == {(m, r) for m in ("padim", "ae")
                                                          for r in fitted_rules()}  # fmt: skip
    best = ranked[0]
    mine = rows[(rows["model"] == best["model"]) & (rows["label"] == "anomalous") & (rows["background"] == background)]
    assert best["n_images"] == mine[f"iou_{best['rule']}"].notna().sum()
    assert best["mean_iou"] == pytest.approx(mine[f"iou_{best['rule']}"].mean())
    assert best["mean_iou"] == max(c["mean_iou"] for c in ranked)
    assert best["threshold"]["nut"]["pixel"] is not None and "verdict" in best
    training = {c["model"]: c["training"] for c in ranked}  # from the evaluation records: how each model trained
    assert training == {"padim": {"epochs": 1, "epochs_full": 1, "epochs_rule": "one pass"},
                        "ae": {"epochs": 1, "epochs_full": 200, "epochs_rule": "train.epochs"}}  # fmt: skip
    text = _run(ask, root, env).stdout
    assert "too few images to decide" in text and "under-trained: ae (1 of 200, train.epochs)" in text
    assert re.search(rf"^1\s+{best['model']}\s+{best['rule']}\s", text, re.MULTILINE), text
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "built, for recommend --rev"], root, env)
    from_commit = json.loads(_run([*ask, "--json", "--rev", "HEAD", "--no-workspace"], root, env).stdout)
    for candidate in from_commit:  # a --rev run's products are named with it
        assert set(candidate["threshold"]) == {"HEAD:nut"}
        candidate["threshold"] = {"nut": candidate["threshold"]["HEAD:nut"]}
    assert from_commit == ranked
    twice = _run([*ask, "--rev", "HEAD"], root, env, check=False)
    assert twice.returncode == 2 and "HEAD and workspace both evaluate" in twice.stderr
    missing = _run([*ask, "--rev", "no-such-experiment"], root, env, check=False)
    assert (
        missing.returncode == 2 and "--rev no-such-experiment: no commit, branch, tag or experiment" in missing.stderr
    )
    impossible = _run([*ask, "--max-false-alarm", "-1"], root, env, check=False)
    assert (
        impossible.returncode == 2 and "false alarm" in impossible.stderr and "(--max-false-alarm)" in impossible.stderr
    )
