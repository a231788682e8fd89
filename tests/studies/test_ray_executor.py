"""``iadbench study --executor ray``: a real two-node Ray cluster on this machine, a bare git remote and a DVC remote
in temporary folders, a tiny study whose worker is killed mid-experiment; and every bad input refused before anything
is queued."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from iadbench.studies.grids import StudyError
from iadbench.studies.ray_executor import RaySettings, preflight
from tests.conftest import TINY, make_repo, run_in

STUDY = ["study", "cells"]  # the benchmark: one experiment per (model, product) cell, once each (no seed varies)
CELLS_PARAMS = {**TINY, "models": ["ae"], "data": {**TINY["data"], "products": ["nut", "weave"]}}  # 2 cells, 1 epoch


def _repo(root: Path, remote: bool = True, dvc_remote: bool = True, params: dict | None = None) -> tuple[Path, dict]:
    """The tiny repository (unbuilt) with (optionally) a bare git remote holding its commit and a DVC remote."""
    repo, env = make_repo(root / "repo", params or {**TINY, "models": ["ae"]})
    if remote:
        run_in(["git", "init", "-q", "--bare", str(root / "remote.git")], root, env)
        run_in(["git", "remote", "add", "origin", str(root / "remote.git")], repo, env)
    if dvc_remote:
        run_in(["dvc", "remote", "add", "-d", "store", str(root / "dvcstore")], repo, env)
        run_in(["git", "commit", "-qam", "dvc remote"], repo, env)
    if remote:
        run_in(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], repo, env)
    return repo, env


def _head(repo: Path) -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def inside(monkeypatch):
    def enter(repo: Path, env: dict) -> Path:
        monkeypatch.chdir(repo)
        monkeypatch.setenv("PATH", env["PATH"])
        monkeypatch.setenv("HOME", env["HOME"])
        return repo

    return enter


def test_every_bad_input_is_refused_before_anything_is_queued(tmp_path, inside, monkeypatch):
    repo, env = _repo(tmp_path)
    inside(repo, env)
    baseline = _head(repo)
    assert preflight(RaySettings(), baseline).dvc_remote == "store"  # the good case passes
    with pytest.raises(StudyError, match="--gpus-per-experiment needs a cluster"):
        preflight(RaySettings(gpus=1), baseline)
    with pytest.raises(StudyError, match="no Ray cluster at 127.0.0.1:9: nothing answers there"):
        preflight(RaySettings(address="127.0.0.1:9"), baseline)
    with pytest.raises(StudyError, match="expected HOST:PORT"):
        preflight(RaySettings(address="headnode"), baseline)
    with pytest.raises(StudyError, match="no git remote 'upstream'"):
        preflight(RaySettings(git_remote="upstream"), baseline)
    run_in(["git", "remote", "add", "gone", str(tmp_path / "nowhere.git")], repo, env)
    with pytest.raises(StudyError, match="git remote 'gone' .* is unreachable"):
        preflight(RaySettings(git_remote="gone"), baseline)
    run_in(["git", "commit", "-q", "--allow-empty", "-m", "not pushed"], repo, env)
    with pytest.raises(StudyError, match=r"is not a branch or tag of git remote 'origin'.*git push origin HEAD"):
        preflight(RaySettings(), _head(repo))
    Path("params.yaml").write_text(Path("params.yaml").read_text() + "\n")
    with pytest.raises(StudyError, match="the workspace has uncommitted changes"):
        preflight(RaySettings(), baseline)
    run_in(["git", "checkout", "-q", "params.yaml"], repo, env)
    run_in(["dvc", "remote", "remove", "store"], repo, env)
    run_in(["git", "commit", "-qam", "no default dvc remote"], repo, env)
    run_in(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], repo, env)
    with pytest.raises(StudyError, match=r"no default DVC remote among \['storage'\]"):
        preflight(RaySettings(), _head(repo))
    run_in(["dvc", "remote", "remove", "storage"], repo, env)  # the project's own, beside the repository
    run_in(["git", "commit", "-qam", "no dvc remote"], repo, env)
    run_in(["git", "push", "-q", "origin", "HEAD:refs/heads/main"], repo, env)
    with pytest.raises(StudyError, match="no DVC remote"):
        preflight(RaySettings(), _head(repo))
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # Ray not installed
    with pytest.raises(StudyError, match="--executor ray needs Ray: pip install"):
        preflight(RaySettings(), baseline)


def _kill_one_worker_mid_experiment(killed: list[int], stop: threading.Event) -> None:
    """Wait until some worker runs `dvc exp run`, then SIGKILL that Ray worker process (not the dvc child): what a
    worker lost to the OOM killer or a node lost looks like to Ray.
    """
    while not stop.is_set():
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
                if b"exp" in cmdline and b"run" in cmdline and any(b"cells-" in c for c in cmdline):
                    ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                    time.sleep(3)  # midway: the experiment has started writing in its folder
                    os.kill(ppid, signal.SIGKILL)
                    killed.append(ppid)
                    return
            except (OSError, ValueError, IndexError):
                continue
        time.sleep(0.5)


def _stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.mark.slow(seconds=172)
def test_the_benchmark_on_a_two_node_cluster_survives_a_killed_worker_and_the_head_restores_every_cell(tmp_path):
    """`iadbench study cells` (2 cells: the AE on two products, 1 epoch) on a two-node Ray cluster with one worker
    killed mid-experiment: it completes; its tables equal those of DVC's local queue on the same commit; a rerun
    queues nothing; and `dvc fetch --run-cache && dvc repro --pull` on the head, which never built a cell, restores
    every cell's train and predict from the shared run-cache (nothing retrained) and builds the tables."""
    from ray.cluster_utils import Cluster

    repo, env = _repo(tmp_path, params=CELLS_PARAMS)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_one_worker_mid_experiment, args=(killed, stop), daemon=True)
    killer.start()
    try:
        proc = subprocess.run(
            ["iadbench", *STUDY, "--executor", "ray", "--address", cluster.address, "--max-retries", "2"],
            cwd=repo, env=env, capture_output=True, text=True, timeout=1500,
        )  # fmt: skip
    finally:
        stop.set()
        cluster.shutdown()
    out = proc.stdout + proc.stderr
    print(out)  # the study's progress lines, in the test's log
    assert proc.returncode == 0, out
    assert killed, "no worker was killed: the fault was not injected"
    assert "done cells-ae_nut-s0" in out and "done cells-ae_weave-s0" in out and "FAILED" not in out
    assert "per node:" in out and "ETA" in out
    ray_doc = json.loads((repo / "reports/studies/cells.json").read_text())
    assert sorted(ray_doc["experiments"]) == ["cells-ae_nut-s0", "cells-ae_weave-s0"] and not ray_doc["failed"]
    refs = run_in(["git", "ls-remote", str(tmp_path / "remote.git")], repo, env).stdout
    assert refs.count("refs/exps/") == 2  # shared: both experiments, once each (the killed attempt pushed nothing)
    assert any((tmp_path / "dvcstore").rglob("runs/*"))  # and the run-cache

    # the same study through DVC's local queue, from the same commit in a clone of the remote
    local = tmp_path / "local"
    run_in(["git", "clone", "-q", "-b", "main", str(tmp_path / "remote.git"), str(local)], tmp_path, env)
    run_in(["iadbench", *STUDY], local, env)  # one queue worker (two failed once under a full suite's load)
    local_doc = json.loads((local / "reports/studies/cells.json").read_text())
    run_facts = {"experiments", "runs", "wall_seconds"}  # commit ids, the executor and timings: how it ran
    assert {k: v for k, v in ray_doc.items() if k not in run_facts} == {
        k: v for k, v in local_doc.items() if k not in run_facts
    }  # every table (metrics, per product), condition, param and code fingerprint

    # rerun: every experiment is on the remote with the same params: nothing is queued again
    again = run_in(["iadbench", *STUDY, "--executor", "ray"], repo, env).stdout
    assert "skip cells-ae_nut-s0: done already" in again and "skip cells-ae_weave-s0: done already" in again

    # the head never built a cell: the shared run-cache restores them all, and the tables are built from them
    run_in(["dvc", "fetch", "--run-cache"], repo, env)  # the run entries; their outputs come with `repro --pull`
    built = run_in(["dvc", "repro", "--pull"], repo, env).stdout
    cells = {f"{stage}@ae-{product}" for stage in ("train", "predict") for product in ("nut", "weave")}
    assert not cells & _stages_run(built), built
    for stage in sorted(cells):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in built, built
    for product in ("nut", "weave"):  # each cell's numbers are the ones its experiment measured
        rev = ray_doc["experiments"][f"cells-ae_{product}-s0"]
        measured = json.loads(run_in(["git", "show", f"{rev}:reports/metrics.json"], repo, env).stdout)
        evaluated = json.loads((repo / f"reports/evaluate/ae/{product}.json").read_text())
        assert evaluated["image"]["auroc"] == pytest.approx(measured["ae"]["image_auroc"], abs=1e-12)
    assert (repo / "reports/report.html").is_file()
