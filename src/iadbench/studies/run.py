"""Running a study: queue the missing experiments of its grid, start DVC's queue, follow it, summarise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from iadbench.paths import STUDIES_DIR
from iadbench.studies.dvc import dvc, dvc_env, experiments, head, log_tail, queue_state, queue_status
from iadbench.studies.grids import (
    POLL_SECONDS,
    RUNS,
    WORKER_GRACE_SECONDS,
    Study,
    StudyError,
    get_study,
    grid,
    lookup,
    yaml_value,
)
from iadbench.studies.summary import collect


def _same(requested: dict[str, Any], existing: dict[str, Any]) -> list[str]:
    """Keys whose value differs between what a grid point asks for and an existing experiment's params."""
    return [f"{k}={existing_v!r} (asked {v!r})" for k, v in requested.items()
            if (existing_v := lookup(existing, k)) != v]  # fmt: skip


def run_study(
    name: str,
    seeds: int = 3,
    jobs: int = 1,
    conditions: list[str] | None = None,
    dry_run: bool = False,
    collect_only: bool = False,
    echo: Callable[[str], None] = print,
    rev: str | None = None,
    ray: Any = None,
) -> dict[str, Any]:
    """Queue, run, follow and summarise one study (see the module docstring); return the summary written.

    The experiments derive from the current commit; the summary is read from the experiments of that commit even if
    HEAD moves while they run. ``collect_only`` reads those of ``rev`` (default HEAD) instead of running anything.

    Args:
        name: a registered study (``iadbench study --list``).
        seeds: training seeds per condition (``train.seed`` 0 .. seeds-1).
        jobs: DVC queue workers to start.
        conditions: a subset of the study's conditions (default: all of them).
        dry_run: print what would be queued, run nothing.
        collect_only: summarise the experiments already run, queue nothing.
        echo: where progress lines go.
        rev: the commit whose experiments ``collect_only`` reads.
        ray: :class:`~iadbench.studies.ray_executor.RaySettings` to run the experiments on a Ray cluster instead of
            DVC's local queue (None: the local queue).

    """
    study = get_study(name)
    if jobs < 1:
        raise StudyError(f"--jobs must be >= 1, got {jobs}")
    points = grid(study, conditions, seeds)
    if collect_only:
        return collect(study, echo=echo, rev=head(rev or "HEAD"))
    _precheck(study, points)
    baseline = head()
    remotes = None
    if ray is not None:
        from iadbench.studies.ray_executor import preflight

        remotes = preflight(ray, baseline)
        # what the remote holds already (an earlier run, another head): pulled, then skipped like a local one
        dvc("exp", "pull", remotes.git_remote, "--rev", baseline, check=False)
    todo = _missing(points, experiments(baseline), echo)
    sets = {exp: [f"{k}={yaml_value(v)}" for k, v in params.items()] for exp, params in todo}
    for exp, _ in todo:
        echo(f"{'would queue' if dry_run else 'queue'} {exp}: " + " ".join(f"-S {s}" for s in sets[exp]))
    if dry_run:
        echo(f"{len(points)} experiment(s) in study {name}: {len(todo)} to run, {len(points) - len(todo)} done")
        return {"study": name, "planned": [e for e, _ in todo], "done": len(points) - len(todo)}
    failed: dict[str, str] = {}
    if todo and remotes is not None:
        from iadbench.studies.ray_executor import run_on_ray

        start = time.perf_counter()
        failed = run_on_ray(sets, baseline, remotes, ray, echo)
        done = [exp for exp in sets if exp not in failed]
        if done:
            dvc("exp", "pull", remotes.git_remote, *done)
        _record_run(name, baseline, jobs, list(sets), failed, time.perf_counter() - start, "ray")
    elif todo:
        start = time.perf_counter()
        _queue_and_start(sets, jobs, echo)
        failed = follow(study.name, list(sets), start, echo)
        _record_run(name, baseline, jobs, list(sets), failed, time.perf_counter() - start)
    summary = collect(study, failed=failed, echo=echo, rev=baseline)
    if failed:
        raise StudyError(
            f"study {name}: {len(failed)} experiment(s) failed ({', '.join(sorted(failed))}); completed ones are "
            f"kept and summarised in {STUDIES_DIR / name}.md; logs: dvc queue logs NAME"
        )
    return summary


def _precheck(study: Study, points: list[tuple[str, str, int, dict[str, Any]]]) -> None:
    """The study's own check of each condition against params.yaml (e.g. the models a size needs), before queueing."""
    if study.precheck is None:
        return
    from iadbench.params import load_params

    params = load_params()
    for condition in dict.fromkeys(c for _, c, _, _ in points):
        if problem := study.precheck(condition, params):
            raise StudyError(f"study {study.name}: condition {condition!r}: {problem}")


def _missing(
    points: list[tuple[str, str, int, dict[str, Any]]], existing: dict[str, Any], echo: Callable[[str], None]
) -> list[tuple[str, dict[str, Any]]]:
    """The grid points without an experiment of the baseline; one that exists with other params is refused."""
    todo = []
    for exp, _condition, _seed, params in points:
        if exp in existing:
            differs = _same(params, existing[exp]["params"])
            if differs:
                raise StudyError(
                    f"experiment {exp} exists with other params: {', '.join(differs)}; remove it "
                    f"(dvc exp remove {exp}) or run the study on another commit"
                )
            echo(f"skip {exp}: done already with the same params")
            continue
        todo.append((exp, params))
    return todo


def _queue_and_start(sets: dict[str, list[str]], jobs: int, echo: Callable[[str], None]) -> None:
    """Queue each experiment (``dvc exp run --queue -S ...``) and start ``jobs`` queue workers."""
    before = queue_status()
    stale = [exp for exp in sets if before.get(exp) in {"Failed", "Success"}]
    if stale:  # an earlier failed attempt under the same name: its record would shadow the new run
        dvc("queue", "remove", *stale, check=False)
    for exp, assignments in sets.items():
        dvc("exp", "run", "--queue", "-n", exp, *[a for s in assignments for a in ("-S", s)])
    echo(f"starting {jobs} queue worker(s): dvc queue start --jobs {jobs}")
    # the worker outlives this call and inherits its output: a captured pipe would wait for the whole queue
    started = subprocess.run(
        [sys.executable, "-m", "dvc", "queue", "start", "--jobs", str(jobs)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dvc_env(),
    )  # fmt: skip
    if started.returncode != 0:
        raise StudyError(f"dvc queue start --jobs {jobs} failed ({started.returncode}); try it by hand")


def _record_run(
    name: str, baseline: str, jobs: int, names: list[str], failed: dict[str, str], wall: float, executor: str = "local"
) -> None:
    """One line per study run in ``reports/studies/runs.jsonl`` (wall time and host: kept out of the summaries)."""
    record = {
        "study": name, "baseline": baseline, "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_seconds": round(wall, 1), "cpu_count": os.cpu_count(), "jobs": jobs, "executor": executor,
        "experiments": names, "failed": sorted(failed),
    }  # fmt: skip
    RUNS.parent.mkdir(parents=True, exist_ok=True)
    with RUNS.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def follow(study: str, names: list[str], start: float, echo: Callable[[str], None]) -> dict[str, str]:
    """Poll the queue until every experiment of this study has finished; return the failed ones with their log."""
    seen = ""
    reported: set[str] = set()
    failed: dict[str, str] = {}
    idle_since = orphan_since = None
    while True:
        status, workers = queue_state()
        states = {n: status.get(n, "Unknown") for n in names}
        done = [n for n, s in states.items() if s in {"Success", "Failed"}]
        running = [n for n, s in states.items() if s == "Running"]
        for n in [n for n, s in states.items() if s == "Failed" and n not in reported]:
            reported.add(n)
            failed[n] = log_tail(n)
            echo(f"FAILED {n}; last lines of its log:\n{failed[n]}")
        elapsed = time.perf_counter() - start
        line = (f"study {study}: {len(done)}/{len(names)} done, {len(failed)} failed, running: "
                f"{', '.join(running) or '-'}")  # fmt: skip
        if line != seen:
            echo(f"[{elapsed / 60:5.1f} min] {line}")
            seen = line
        if len(done) == len(names):
            return failed
        waiting = [n for n, s in states.items() if s == "Queued"]
        idle_since = (idle_since or time.perf_counter()) if waiting and not running and workers == 0 else None
        if idle_since is not None and time.perf_counter() - idle_since > WORKER_GRACE_SECONDS:
            raise StudyError(
                f"study {study}: {len(waiting)} experiment(s) queued but no queue worker runs (dvc queue status: "
                "0 active, 0 idle); its log: .dvc/tmp/exps/celery/dvc-exp-worker-1.out. Start one with "
                "`dvc queue start`, then `iadbench study NAME --collect` when they are done"
            )
        orphan_since = (orphan_since or time.perf_counter()) if running and workers == 0 else None
        if orphan_since is not None and time.perf_counter() - orphan_since > WORKER_GRACE_SECONDS:
            # DVC's Celery worker can stop ("shutting down due to empty queue") with a task it had taken: the queue
            # then reports it Running forever; waiting would hang the study, so it fails with what is known
            for n in running:
                failed[n] = ("dvc queue status reports it Running but no queue worker runs (0 active, 0 idle): the "
                             "worker stopped under it; its log: .dvc/tmp/exps/celery/dvc-exp-worker-1.out")  # fmt: skip
            return failed
        if not running and not [n for n, s in states.items() if s == "Queued"]:
            lost = [n for n, s in states.items() if s not in {"Success", "Failed"}]
            if lost and elapsed > 60:
                for n in lost:
                    failed[n] = f"not in `dvc queue status` (state {states[n]}): the worker stopped"
                return failed
        time.sleep(POLL_SECONDS)
