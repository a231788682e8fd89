"""What the studies ask DVC: the experiments and their params and metrics, the queue's state, a failed log."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from iadbench.studies.grids import StudyError


def dvc_env() -> dict[str, str]:
    """The environment with the interpreter's own bin folder first on PATH: DVC's queue worker starts ``dvc`` and
    the stages start ``iadbench`` by name, which a study run as ``.venv/bin/iadbench`` (venv not activated) must
    still find.
    """
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}


def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``dvc ARGS`` with this interpreter's DVC (its output captured); a failure raises :class:`StudyError`."""
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True, env=dvc_env())
    if check and proc.returncode != 0:
        raise _failed(args, proc)
    return proc


def _failed(args: tuple[str, ...], proc: subprocess.CompletedProcess) -> StudyError:
    return StudyError(f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}".rstrip())


def head(rev: str = "HEAD") -> str:
    """The full hash of ``rev`` (default: the current commit, which queued experiments derive from)."""
    proc = subprocess.run(["git", "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise StudyError(f"{rev}: not a commit of this repository (DVC experiments need one: git add -A && git commit)")
    return proc.stdout.strip()


def git_show(rev: str, path: str) -> str | None:
    """A git-tracked file as commit ``rev`` holds it (an experiment's uncached outputs are committed there); None
    when that commit has no such file.
    """
    proc = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


EXP_SHOW_RETRIES = 30  # x 2 s: how long exp_show waits for DVC's queue to forget a finished experiment
FINISHING = re.compile(r"No such file or directory: '[^']*\.dvc/tmp/exps/run/")


def exp_show(*args: str) -> str:
    """``dvc exp show --json ARGS``, retried while DVC's queue finalises an experiment.

    For a moment after a queued experiment ends, DVC 3.67's ``exp show`` still lists it as active and reads its
    executor's info file, which the task has already removed: "unexpected error - [Errno 2] No such file or
    directory: '.../.dvc/tmp/exps/run/<rev>/<rev>.run'". Seen in the studies' e2e test under a loaded suite (three
    studies in a row failed within seconds, then passed alone). That error is retried every 2 s for up to a minute;
    any other failure raises at once.
    """
    for attempt in range(EXP_SHOW_RETRIES):
        proc = dvc("exp", "show", "--json", *args, check=False)
        if proc.returncode == 0:
            return proc.stdout
        if not FINISHING.search(proc.stderr) or attempt == EXP_SHOW_RETRIES - 1:
            break
        time.sleep(2.0)
    raise _failed(("exp", "show", "--json", *args), proc)


def experiments(rev: str | None = None) -> dict[str, dict[str, Any]]:
    """Finished experiments derived from ``rev`` (default HEAD) by name: ``rev``, ``params``, ``metrics`` (file ->
    data). A running, queued or failed one is left out: ``dvc exp show`` lists it with its baseline's metrics.
    """
    shown = json.loads(exp_show(*(["--rev", rev] if rev else [])) or "[]")
    out: dict[str, dict[str, Any]] = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state")
            if state not in (None, "success"):  # running or queued: DVC shows the baseline's metrics for it
                continue
            for rev in exp.get("revs") or []:
                name = rev.get("name") or exp.get("name")
                data = rev.get("data") or {}
                if not name or name in out or rev.get("error"):
                    continue
                out[name] = {
                    "rev": rev.get("rev") or data.get("rev"),
                    "params": ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {},
                    "metrics": {k: (v or {}).get("data") or {} for k, v in (data.get("metrics") or {}).items()},
                }
    return out


def queue_state() -> tuple[dict[str, str], int]:
    """(experiment name -> status (Queued, Running, Success, Failed), queue workers active or idle): what
    ``dvc queue status`` prints, asked through DVC's API in this process. A study polls it every few seconds while
    its experiments run; a ``dvc queue status`` process costs ~0.9 s of CPU per poll (its imports), this ~0.1 s
    (measured on 2 cores), CPU that the experiments it waits on need on a small machine.
    """
    from dvc.repo import Repo

    with Repo(".") as repo:
        queue = repo.experiments.celery_queue
        status = {exp["name"]: exp["status"] for exp in queue.status() if exp.get("name")}
        return status, len(queue.worker_status())


def queue_status() -> dict[str, str]:
    """Experiment name -> status (Queued, Running, Success, Failed), as ``dvc queue status`` prints it."""
    return queue_state()[0]


def log_tail(name: str, lines: int = 25) -> str:
    """The last ``lines`` lines of a queued experiment's log (``dvc queue logs``)."""
    proc = dvc("queue", "logs", name, check=False)
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return "\n".join(text[-lines:])
