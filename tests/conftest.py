"""Shared fixtures: a tiny synthetic dataset built once per session, copied per test that mutates it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# One OpenMP thread per torch process, set before anything imports torch and inherited by every subprocess (DVC, the
# stages, their warm workers). `make test` runs nproc + 1 pytest-xdist workers, each starting torch processes; torch's
# default of one thread per core then oversubscribes the CPUs and OpenMP's spin-waiting burns them. Measured on 2
# cores: three concurrent runs of the 256 px fidelity probe took 399 s with the default threads, 66 s with one each.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from iadbench.params import GateParams, SplitParams, SynthesizeParams  # noqa: E402
from iadbench.synth.generate import generate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "data": {"datasets": ["synthetic"], "products": ["nut"], "image_size": 64},
    "synthesize": {
        "seed": 0,
        "image_size": 48,
        "products": ["nut", "weave", "tiles"],
        "n_train": 3,
        "n_test_good": 3,
        "n_test_per_defect": 1,
        "annotators": 3,
        "annotator_error": 0.1,
    },
    "split": {"seed": 0, "val_fraction": 0.3, "train_noise": 0.0, "validation": "from_test"},
    "gates": {"empty_mask": "warn"},
    "threshold": {
        "method": "iou",
        "good_fpr": 0.01,
        "good_k": 3.0,
        "good_quantile": 0.95,
        "good_factor": {"pixel": 1.421, "image": 1.0},
        "anomalous_images": "all",
        "seed": 0,
    },
    "evaluate": {
        "aupro_fpr_limit": 0.3,
        "bootstrap": 200,
        "confidence": 0.95,
        "seed": 0,
        "exclude_prefill_accepted": True,
    },
    "models": ["padim", "ae"],
    "backbone": {"name": "tf_efficientnet_lite0", "weights": "package", "layers": ["blocks.1", "blocks.2", "blocks.4"]},
    "train": {
        "seed": 0,
        "epochs": 1,
        "batch_size": 4,
        "num_workers": 0,
        "validation": "fixed",
        "patience": 3,
        "unified": False,
    },
    "drift": {"transforms": [], "max_per_image": 2, "seed": 0},
    "segad": {
        "detectors": [],
        "ensembles": [],
        "brf_fraction": 0.5,
        "shots": 0,
        "synthetic_per_image": 1,
        "segments": "grid",
        "grid": 2,
        "seed": 0,
        "detector_score": False,
        "xgboost": {
            "n_estimators": 10,
            "num_parallel_tree": 200,
            "learning_rate": 0.3,
            "objective": "binary:logitraw",
            "max_depth": 5,
            "colsample_bytree": 0.6,
            "colsample_bynode": 0.6,
            "subsample": 0.6,
            "reg_alpha": 1.0,
        },
    },
    "export": {"cells": []},
    "model_options": {"padim": {"n_features": 50}, "ae": {"latent_dim": 32, "base_channels": 16, "lr": 0.0002}},
}


def registry_params() -> dict:
    """TINY with every registered model's options at the registry's defaults: what unit tests build params from
    (never the production params.yaml, which users edit; tests/models/test_registry.py checks that file's options).
    """
    import copy

    from iadbench.models.registry import MODELS, effective_options

    params = copy.deepcopy(TINY)
    params["model_options"] = {m: effective_options(m, None) for m in MODELS}
    return params


def tiny_synth(**overrides) -> SynthesizeParams:
    return SynthesizeParams.from_params({"synthesize": {**TINY["synthesize"], **overrides}})


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 for every file under root (to prove a folder is byte-identical)."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def copy_gx(root: Path) -> Path:
    """The project's Great Expectations suites as committed (``gx/`` without GX's scratch) into ``root``: what the
    gates read, as in a user's repository."""
    return Path(shutil.copytree(REPO / "gx", root / "gx", ignore=shutil.ignore_patterns("uncommitted")))


def run_in(cmd: list[str], repo: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``repo``; with ``check``, a failure raises with both output streams."""
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_repo(root: Path, params: dict) -> tuple[Path, dict]:
    """A committed copy of this repository's tracked files at ``root`` with ``params`` as params.yaml, and an env to
    run its commands in (an empty HOME, this interpreter's bin first on PATH, offline).

    The committed ``dvc.lock`` is left out: it records the default configuration's 78 stages, none of which a tiny
    configuration can reuse, and DVC parses and rewrites the whole lock after every stage it runs
    (``benchmarks/dvc_yaml.py``), so the stale entries made every stage of a test repository ~2 s slower."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\0")  # fmt: skip
    for name in filter(None, files):
        if name != "dvc.lock" and (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    home = root.parent / "home"  # an empty HOME: no global git identity or DVC config from this machine
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
    }  # fmt: skip
    run_in(["git", "init", "-q"], root, env)
    run_in(["git", "config", "user.name", "iadbench test"], root, env)
    run_in(["git", "config", "user.email", "test@iadbench.invalid"], root, env)
    run_in(["git", "add", "-A"], root, env)
    run_in(["git", "commit", "-qm", "tiny"], root, env)
    return root, env


@pytest.fixture(scope="session")
def tiny_dataset_template(tmp_path_factory) -> Path:
    """A repo-like folder holding data/raw/synthetic, annotation/exports/synthetic.json (tiny, 48 px) and the
    project's Great Expectations suites (gx/, as committed: the gates run them)."""
    root = tmp_path_factory.mktemp("tiny")
    generate(
        tiny_synth(), root / "data/raw/synthetic", root / "annotation/exports/synthetic.json", root, progress=False
    )
    copy_gx(root)
    return root


@pytest.fixture
def tiny_repo(tiny_dataset_template, tmp_path, monkeypatch) -> Path:
    """A private copy of the tiny dataset; the working directory is its root (stages use relative paths)."""
    root = tmp_path / "repo"
    shutil.copytree(tiny_dataset_template, root)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def split_params() -> SplitParams:
    return SplitParams.from_params(TINY)


@pytest.fixture
def gate_params() -> GateParams:
    return GateParams.from_params(TINY)


def _chromium(html: Path, workdir: Path, profile: str, script_budget_ms: int, *flags: str):
    """Run Debian's headless Chromium on ``html`` with the flags the offline machines need (no background networking,
    a fresh profile) and ``flags``. Skips where chromium is absent, unless ``IADBENCH_REQUIRE_CHROMIUM`` is set
    (``.ci/run`` installs chromium and sets it)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("IADBENCH_REQUIRE_CHROMIUM"):
            raise AssertionError("chromium not found, yet IADBENCH_REQUIRE_CHROMIUM is set (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={workdir / (profile + html.stem)}", f"--virtual-time-budget={script_budget_ms}",
         *flags, html.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def chromium_screenshot(html: Path, workdir: Path, script_budget_ms: int = 10000):
    """Render ``html`` in headless Chromium with no network (:func:`_chromium`); the screenshot as an RGB array."""
    import numpy as np
    from PIL import Image

    shot = workdir / f"{html.stem}.png"
    _chromium(html, workdir, "profile-", script_budget_ms, "--window-size=1200,900", f"--screenshot={shot}")
    if not shot.is_file():
        raise AssertionError(f"chromium wrote no screenshot of {html}")
    return np.asarray(Image.open(shot).convert("RGB")).astype(int)


def chromium_dom(html: Path, workdir: Path, script_budget_ms: int = 10000) -> str:
    """The DOM of ``html`` after its scripts ran in headless Chromium (``--dump-dom``), with no network."""
    proc = _chromium(html, workdir, "profile-dom-", script_budget_ms, "--dump-dom")
    if "</html>" not in proc.stdout:
        raise AssertionError(f"chromium dumped no DOM of {html}: {proc.stderr[-2000:]}")
    return proc.stdout


def drawn_share(pixels) -> float:
    """Share of a screenshot's pixels that are not near-white: axes, lines, labels (a page that drew nothing: ~0)."""
    return float((pixels.min(axis=2) < 200).mean())


@pytest.fixture(scope="session", autouse=True)
def _warm_workers(tmp_path_factory):
    """The warm workers the suite's `iadbench` commands start (``iadbench.warm``) get a socket folder of their own,
    inherited by every subprocess, and are stopped when the session ends (else each idles out after 5 min); the
    measured receptive-field shifts (``iadbench.models.geometry``) a cache of the session's own."""
    import os

    runtime = tmp_path_factory.mktemp("runtime")
    previous = {name: os.environ.get(name) for name in ("XDG_RUNTIME_DIR", "IADBENCH_SHIFT_CACHE")}
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    os.environ["IADBENCH_SHIFT_CACHE"] = str(runtime / "shifts")  # the suite's own, not the user's ~/.cache
    yield runtime
    from iadbench.warm import stop

    for folder in runtime.glob("iadbench-warm-*"):
        stop(folder)
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _module(item) -> str:
    return item.nodeid.split("::")[0]


def _module_seconds(items) -> dict[str, float]:
    """Each module's cost: the largest ``slow(seconds=...)`` among its tests (a module's measured wall time in a
    fresh-clone ``make test``, summed over setup, calls and teardown from ``--durations=0``), 0 when none is slow."""
    cost: dict[str, float] = {}
    for item in items:
        module = _module(item)
        marker = item.get_closest_marker("slow")
        if marker is not None and "seconds" not in marker.kwargs:
            raise pytest.UsageError(f"{module}: a slow test states its measured seconds: pytest.mark.slow(seconds=N)")
        cost[module] = max(cost.get(module, 0.0), float(marker.kwargs["seconds"]) if marker else 0.0)
    return cost


def pytest_collection_modifyitems(config, items):
    """The whole-pipeline (``slow``) modules first and longest first, each module's tests kept together and in order
    (a stable sort): with one pytest-xdist worker per CPU plus one (``make test``, ``--dist loadfile``), the longest
    modules start at once and the short ones fill the workers' tails, instead of a long module ending the run alone.

    ``make test`` passes ``--no-loadscope-reorder``: by default pytest-xdist's loadfile scheduler re-sorts modules by
    their number of tests, which put the two longest modules (9 and 7 tests) after every many-test unit module."""
    cost = _module_seconds(items)
    items.sort(key=lambda item: -cost[_module(item)])
