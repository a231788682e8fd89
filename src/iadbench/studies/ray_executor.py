"""A study's experiments on a Ray cluster, shared through the git and DVC remotes (``iadbench study --executor ray``).

DVC has no remote executor; teams glue it to a scheduler by hand (SkyPilot's DVC recipe: ``dvc exp run --pull``, then
``dvc exp push``). Here the scheduler is Ray's (resources, placement, retries of tasks whose worker died) and the
sharing is DVC's own:

- **head** (this process): checks everything a worker will need before anything is queued (:func:`preflight`: Ray
  installed, a cluster at the address, a clean workspace whose commit the git remote holds, a DVC remote, no more
  GPUs per experiment than a node has), pulls the experiments the remote already holds (a rerun skips them: resumable
  across head restarts), submits one Ray task per missing experiment, follows them (done / failed per node, elapsed,
  ETA) and finally ``dvc exp pull``s every finished one, so that the tables are built from the same
  ``dvc exp show`` as with the local queue;
- **worker** (:func:`run_experiment`, one Ray task): clones the git remote at the study's baseline commit into a
  fresh folder, runs ``dvc exp run --pull -n <name> -S ...`` there (missing inputs come from the DVC remote), then
  ``dvc exp push`` (the experiment's commit and its cached outputs), ``dvc push --run-cache`` and the objects of its
  uncached outputs, which that push leaves out (:func:`push_run_outputs`), so that the head's ``dvc repro --pull``
  can restore its stages. Nothing is pushed before the experiment succeeded, so a worker killed midway
  leaves nothing half-written on the remotes; Ray then retries the task, on a fresh folder, up to ``--max-retries``
  times. An experiment that fails (its command exits non-zero) is not retried: it is reported with its log.

The worker runs the installed ``iadbench`` and ``dvc`` of its node: every node needs this project's environment
(the README's "Scale out" section: a cluster file's setup commands, or a KubeRay image).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iadbench.paths import STUDIES_DIR
from iadbench.studies.grids import POLL_SECONDS, StudyError

LOG_LINES = 40  # lines of a failed experiment's log kept in the study's JSON


@dataclass(frozen=True)
class RaySettings:
    """How the study's experiments run on Ray."""

    address: str | None = None  # None: a local Ray instance for this run, shut down afterwards
    cpus: float = 1.0  # Ray CPUs per experiment
    gpus: float = 0.0  # Ray GPUs per experiment (Ray sets CUDA_VISIBLE_DEVICES for the task)
    max_retries: int = 2  # retries of an experiment whose worker died (process killed, node lost)
    git_remote: str = "origin"
    force_cpu: bool = False  # hide every GPU from the experiment (CUDA_VISIBLE_DEVICES="")


@dataclass(frozen=True)
class Remotes:
    """What the workers fetch from and push to: the git remote's URL and name, and the DVC remote's name."""

    git_url: str
    git_remote: str
    dvc_remote: str


def _git(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True, timeout=timeout)


def preflight(settings: RaySettings, baseline: str) -> Remotes:
    """Every rule a worker relies on, checked on the head before anything is queued; a :class:`StudyError` names the
    first broken one and what to do.
    """
    try:
        import ray  # noqa: F401 - only whether it is installed
    except ImportError:
        raise StudyError("--executor ray needs Ray: pip install 'ray>=2.40' (requirements.lock pins it)") from None
    if settings.cpus <= 0 or settings.gpus < 0 or settings.max_retries < 0:
        raise StudyError("--cpus-per-experiment must be > 0, --gpus-per-experiment and --max-retries >= 0")
    if settings.force_cpu and settings.gpus > 0:
        raise StudyError("--force-cpu and --gpus-per-experiment > 0 contradict each other")
    # the studies' own tables (reports/studies/, what `iadbench study` writes) are no input of an experiment
    changed = _git("status", "--porcelain", "--untracked-files=no").stdout.splitlines()
    dirty = "\n".join(line for line in changed if not line[3:].startswith(f"{STUDIES_DIR.as_posix()}/")).strip()
    if dirty:
        raise StudyError(
            "the workspace has uncommitted changes: the workers run the study's baseline commit, fetched from the git "
            f"remote, so every change must be committed and pushed first (git commit, git push):\n{dirty}"
        )
    url = _git("remote", "get-url", settings.git_remote)
    if url.returncode != 0:
        raise StudyError(f"no git remote {settings.git_remote!r}: the workers clone the study's commit from it "
                         "(git remote add origin URL, or --git-remote NAME)")  # fmt: skip
    git_url = url.stdout.strip()
    try:
        listed = _git("ls-remote", git_url, timeout=60)
    except subprocess.TimeoutExpired:
        raise StudyError(f"git remote {settings.git_remote!r} ({git_url}) did not answer within 60 s") from None
    if listed.returncode != 0:
        raise StudyError(f"git remote {settings.git_remote!r} ({git_url}) is unreachable: {listed.stderr.strip()}")
    if baseline not in {line.split("\t")[0] for line in listed.stdout.splitlines()}:
        raise StudyError(f"commit {baseline[:12]} is not a branch or tag of git remote {settings.git_remote!r}: the "
                         f"workers could not fetch it (git push {settings.git_remote} HEAD)")  # fmt: skip
    dvc_remote = _dvc_remote()
    _check_cluster(settings)
    return Remotes(git_url, settings.git_remote, dvc_remote)


def _dvc_remote() -> str:
    """The default DVC remote's name (DVC's own reading of its config: local, repository and global files)."""
    from dvc.repo import Repo

    with Repo() as repo:
        remotes, default = list(repo.config["remote"]), repo.config["core"].get("remote")
    if not remotes:
        raise StudyError("no DVC remote: the workers restore inputs from it and push their results and run-cache to "
                         "it (dvc remote add -d NAME URL: S3, GCS, SSH or a shared folder)")  # fmt: skip
    if default not in remotes:
        raise StudyError(f"no default DVC remote among {remotes}: dvc remote default NAME")
    return str(default)


def _check_cluster(settings: RaySettings) -> None:
    """A cluster answers at the address and some node has the GPUs an experiment asks for (starts nothing when no
    address is given: :func:`run_on_ray` starts the local instance).
    """
    import ray

    if settings.address is None:
        if settings.gpus > 0:
            raise StudyError("--gpus-per-experiment needs a cluster (--address) whose nodes have GPUs")
        return
    _probe(settings.address)
    try:
        ray.init(address=settings.address, logging_level="ERROR", log_to_driver=False)
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError or its own errors
        raise StudyError(f"no Ray cluster at {settings.address}: {type(exc).__name__}: {exc}") from None
    try:
        most = max((n.get("Resources", {}).get("GPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0)
        if settings.gpus > most:
            raise StudyError(f"--gpus-per-experiment {settings.gpus:g}, but the largest node of the cluster at "
                             f"{settings.address} has {most:g} GPU(s): no experiment could ever start")  # fmt: skip
    finally:
        ray.shutdown()


def _probe(address: str, timeout: float = 10.0) -> None:
    """A TCP connection to ``host:port`` (``ray://host:port`` too) before ``ray.init``, which keeps retrying an
    address where nothing listens for minutes; ``auto`` is left to Ray (it reads the local cluster's address file).
    """
    import socket

    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise StudyError(f"--address {address!r}: expected HOST:PORT (the head's GCS port, 6379 by default), "
                         "ray://HOST:PORT or auto")  # fmt: skip
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise StudyError(f"no Ray cluster at {address}: nothing answers there ({exc}); start one with `ray start "
                         "--head` or `ray up CLUSTER.yaml`") from None  # fmt: skip


def _tail(text: str, lines: int = LOG_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _die_with_parent() -> None:
    """In the child, before exec: be killed when the worker dies (Linux ``PR_SET_PDEATHSIG``), so that a killed
    worker leaves no orphan ``dvc exp run`` behind that could still write; elsewhere a no-op.
    """
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG


def run_experiment(spec: dict[str, Any]) -> dict[str, Any]:
    """One experiment on a worker (see the module docstring); returns its name, status, node, seconds and log tail.

    ``spec``: ``name``, ``sets`` (the ``-S`` assignments), ``baseline`` (commit), ``git_url``, ``git_remote``,
    ``force_cpu``. The folder is removed afterwards whatever happens.
    """
    import ray

    start = time.perf_counter()
    node = ray.get_runtime_context().get_node_id()
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "DVC_NO_ANALYTICS": "1"}  # fmt: skip
    if spec.get("force_cpu"):
        env["CUDA_VISIBLE_DEVICES"] = ""
    workspace = Path(tempfile.mkdtemp(prefix=f"iadbench-{spec['name']}-"))
    log: list[str] = []
    seconds: dict[str, float] = {}  # the Ray path's overhead (clone, push) against the experiment itself (run)

    def timed(kind: str, *cmd: str) -> None:
        t = time.perf_counter()
        try:
            step(*cmd)
        finally:
            seconds[kind] = round(seconds.get(kind, 0.0) + time.perf_counter() - t, 1)

    def step(*cmd: str) -> None:
        proc = subprocess.run(list(cmd), cwd=workspace / "repo", capture_output=True, text=True, env=env,
                              preexec_fn=_die_with_parent)  # fmt: skip
        log.append(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd)

    try:
        (workspace / "repo").mkdir()
        timed("clone", "git", "clone", "-q", spec["git_url"], ".")
        timed("clone", "git", "checkout", "-q", spec["baseline"])
        dvc = [sys.executable, "-m", "dvc"]
        timed("run", *dvc, "exp", "run", "--pull", "-n", spec["name"], *[a for s in spec["sets"] for a in ("-S", s)])
        timed("push", *dvc, "exp", "push", spec["git_remote"], spec["name"])
        timed("push", *dvc, "push", "--run-cache")
        timed("push", sys.executable, "-c", "from iadbench.studies.ray_executor import push_run_outputs as p; p()")
        status = "success"
    except subprocess.CalledProcessError:
        status = "failed"
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return {"name": spec["name"], "status": status, "node": node, "seconds": round(time.perf_counter() - start, 1),
            "steps": seconds, "log_tail": _tail("\n".join(log))}  # fmt: skip


def push_run_outputs() -> int:
    """Push the objects of this workspace's uncached stage outputs (``cache: false`` plots and metrics) to the
    default DVC remote; return how many.

    DVC's run-cache keeps a copy of such an output in the local cache (``StageCache.save``), so that a stage restored
    from it gets them back; but ``dvc push --run-cache`` pushes the run entries and the workspace's *cached* outputs
    only (``dvc/repo/push.py``: the entries it transfers are counted, their outputs not collected), and another
    machine's ``dvc repro`` then finds an entry whose outputs it cannot restore (``outs_cached`` fails) and runs the
    stage again: every train stage here (its training curve and resource record are uncached plots). Measured: a
    ``cells`` study's head retrained every cell. Pushed here, the head's ``dvc repro --pull`` restores them.
    """
    from dvc.repo import Repo
    from dvc_data.hashfile.tree import Tree

    with Repo(".") as repo:
        odb = repo.cache.local
        objs = {out.hash_info for stage in repo.index.stages for out in stage.outs
                if not out.use_cache and out.hash_info and out.hash_info.value}  # fmt: skip
        objs = {h for h in objs if odb.exists(h.value)}  # the run-cache's copies (a stage it skips has none)
        for tree in [h for h in objs if h.isdir]:  # a folder: its listing and every file in it
            objs.update(oid for _, _, oid in Tree.load(odb, tree))
        if objs:
            repo.cloud.push(objs)
    return len(objs)


def run_on_ray(
    sets: dict[str, list[str]],
    baseline: str,
    remotes: Remotes,
    settings: RaySettings,
    echo: Callable[[str], None] = print,
) -> dict[str, str]:
    """Run every experiment as a Ray task and follow them; return the failed ones with their log tail."""
    import ray

    ray.init(address=settings.address, logging_level="ERROR", log_to_driver=False,
             include_dashboard=False if settings.address is None else None)  # fmt: skip
    try:
        task = ray.remote(run_experiment).options(
            num_cpus=settings.cpus, num_gpus=settings.gpus, max_retries=settings.max_retries, retry_exceptions=False
        )
        refs = {
            task.remote({"name": name, "sets": assigned, "baseline": baseline, "git_url": remotes.git_url,
                         "git_remote": remotes.git_remote, "force_cpu": settings.force_cpu}): name
            for name, assigned in sets.items()
        }  # fmt: skip
        return _follow(refs, echo)
    finally:
        ray.shutdown()


def _follow(refs: dict[Any, str], echo: Callable[[str], None]) -> dict[str, str]:
    """Wait for the tasks, printing done / failed per node, elapsed time and an ETA at each change."""
    import ray

    start, pending = time.perf_counter(), list(refs)
    failed: dict[str, str] = {}
    per_node: dict[str, list[int]] = {}  # node id -> [done, failed]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_SECONDS)
        for ref in ready:
            name = refs[ref]
            try:
                result = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - retries used up: the worker died every time
                why = f"the task's worker died on every attempt ({type(exc).__name__}): {exc}"
                result = {"name": name, "status": "failed", "node": "?", "seconds": None, "log_tail": why}
            counts = per_node.setdefault(str(result["node"])[:8], [0, 0])
            counts[result["status"] != "success"] += 1
            if result["status"] != "success":
                failed[name] = result["log_tail"]
                echo(f"FAILED {name} on node {str(result['node'])[:8]}; last lines of its log:\n{result['log_tail']}")
            else:
                steps = ", ".join(f"{k} {v} s" for k, v in result.get("steps", {}).items())
                echo(f"done {name} on node {str(result['node'])[:8]} in {result['seconds']} s ({steps})")
        if ready:
            done = len(refs) - len(pending)
            elapsed = time.perf_counter() - start
            eta = elapsed / done * len(pending) if done else float("nan")
            nodes = ", ".join(f"{n}: {d} done, {f} failed" for n, (d, f) in sorted(per_node.items()))
            echo(f"[{elapsed / 60:5.1f} min] {done}/{len(refs)} done ({len(failed)} failed), {len(pending)} running or "
                 f"waiting; ETA {eta / 60:.1f} min; per node: {nodes}")  # fmt: skip
    return failed
