"""Studies: named grids of queued DVC experiments over conditions × seeds, summarised as mean ± std tables.

``iadbench study NAME`` queues one experiment per (condition, seed) with
``dvc exp run --queue -n <study>-<condition>-s<seed> -S key=value ...``, runs the queue with
``dvc queue start --jobs N``, follows it (done / total, elapsed, failures with their log) and writes
``reports/studies/NAME.json`` and ``.md`` from ``dvc exp show --json``: rows = models, columns = conditions, cells =
mean ± sample standard deviation over seeds of image AUROC, pixel AUPRO, PG2, PB2 and mean IoU at the headline
threshold rule — the layout of Tables 5–9 of Baitieva et al. 2025 ("Beyond Academic Benchmarks"), with our IoU.

Every study is a registry entry (:data:`STUDIES`): its conditions, how a condition becomes params, and which seeds a
study seed sets. Experiments are DVC's own: ``dvc exp show`` compares them, and the run-cache makes a condition
that changes only late stages (drift changes predict onwards) reuse every trained model.

Resumable: an experiment that already exists under its name with the same params is not queued again; one that
exists with other params is an error (remove it or rename the study's condition). A failed experiment is named, its
log kept in the JSON, and it stays out of the means; the command then exits non-zero.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from iadbench.errors import IadbenchError
from iadbench.params import SEGAD_SUFFIX, VALIDATION_STRATEGIES
from iadbench.paths import STUDIES_DIR

RUNS = STUDIES_DIR / "runs.jsonl"  # one line per `iadbench study` run: what it ran, from which commit, how long
METRICS = (
    ("image_auroc", "image AUROC"),
    ("pixel_aupro", "pixel AUPRO@0.3"),
    ("pg2", "PG2 (TNR at 2 % FNR)"),
    ("pb2", "PB2 (TPR at 2 % FPR)"),
    ("mean_iou", "mean IoU at the headline rule"),
)
PG2_TITLE = "PG2 (TNR at 2 % FNR)"
PRODUCT_METRICS = (("image_auroc", "image AUROC"), ("mean_iou@", "mean IoU at the headline rule"))
POLL_SECONDS = 5.0
WORKER_GRACE_SECONDS = 60.0  # queued experiments and no worker for this long: the worker did not start


class StudyError(IadbenchError):
    """A study cannot be queued or summarised as asked."""


def _yaml(value: Any) -> str:
    """A value as ``dvc exp run -S`` reads it (YAML flow style)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()


def _drift(condition: str) -> dict[str, Any]:
    from iadbench.data.drift import CATEGORIES

    pools = {"clean": [], "drift": [t for names in CATEGORIES.values() for t in names], **CATEGORIES}
    if condition not in pools:
        raise StudyError(f"study drift: unknown condition {condition!r}; valid: {sorted(pools)}")
    return {"drift.transforms": list(pools[condition])}


def _noise(condition: str) -> dict[str, Any]:
    try:
        fraction = float(condition)
    except ValueError:
        raise StudyError(f"study noise: condition must be a fraction, got {condition!r}") from None
    if not 0.0 <= fraction < 1.0:
        raise StudyError(f"study noise: the noise fraction must be in [0, 1), got {fraction}")
    return {"split.train_noise": fraction}


def _size(condition: str) -> dict[str, Any]:
    if not condition.isdigit() or not 32 <= int(condition) <= 1024:
        raise StudyError(f"study size: condition must be an image size in [32, 1024], got {condition!r}")
    return {"data.image_size": int(condition)}


def _size_fits_models(condition: str, params: dict[str, Any]) -> str | None:
    from iadbench.models.registry import size_problem

    problems = [p for m in params.get("models") or [] if (p := size_problem(m, int(condition)))]
    return "; ".join(problems) or None


def _segad(condition: str) -> dict[str, Any]:
    """SegAD on every model of params.yaml that writes anomaly maps (and all+segad over them when there are two or
    more), with ``condition`` = the number of real anomalous shots per product (0 = one-class).
    """
    from iadbench.models.registry import get_entry
    from iadbench.params import load_params

    if not condition.isdigit() or int(condition) > 64:
        raise StudyError(
            f"study segad: condition must be a number of shots in [0, 64] (0 = one-class), got {condition!r}"
        )
    detectors = [m for m in load_params().get("models") or [] if get_entry(m).pixel_maps]
    if not detectors:
        raise StudyError("study segad: no model of params.yaml writes anomaly maps (SegAD needs them)")
    return {"segad.detectors": detectors, "segad.ensembles": ["all"] if len(detectors) > 1 else [],
            "segad.shots": int(condition)}  # fmt: skip


def _choice(key: str, values: dict[str, Any], study: str) -> Callable[[str], dict[str, Any]]:
    def parse(condition: str) -> dict[str, Any]:
        if condition not in values:
            raise StudyError(f"study {study}: unknown condition {condition!r}; valid: {sorted(values)}")
        return {key: values[condition]}

    return parse


@dataclass(frozen=True)
class Study:
    """One study: its question, default conditions, condition → params, and the params a study seed sets."""

    name: str
    question: str
    reference: str
    conditions: tuple[str, ...]
    params_of: Callable[[str], dict[str, Any]]
    seed_keys: tuple[str, ...] = ("train.seed",)
    extras: tuple[str, ...] = ()  # per-cell facts read from reports/predict (e.g. the epochs early stopping kept)
    metrics: tuple[tuple[str, str], ...] = METRICS  # the keys of reports/metrics.json it tabulates
    precheck: Callable[[str, dict[str, Any]], str | None] | None = None  # (condition, params.yaml) -> problem

    def params(self, condition: str, seed: int) -> dict[str, Any]:
        """Every ``-S`` override of one experiment."""
        return {**self.params_of(condition), **dict.fromkeys(self.seed_keys, seed)}


STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        Study(
            "seeds", "How far do the headline numbers move between training seeds (the spread a machine difference "
            "must be read against)?", "iadbench: the README's headline, mean ± std over train.seed",
            ("default",), _choice("train.seed", {"default": 0}, "seeds"),  # the study's seed then sets train.seed
        ),
        Study(
            "drift", "How much does each method lose when test images drift (camera, lighting, position)?",
            "Baitieva et al. 2025, Table 10 (transforms) and the drift results", ("clean", "drift"), _drift,
            ("train.seed", "drift.seed"),
        ),
        Study(
            "noise", "How much does each method lose when anomalous images hide among the training images?",
            "Baitieva et al. 2025, noisy training labels (4 / 8 / 16 %)", ("0", "0.04", "0.08", "0.16"), _noise,
            ("train.seed", "split.seed"),
        ),
        Study(
            "size", "Which input size?", "Baitieva et al. 2025, input size (128 / 256 / 512)",
            ("128", "256", "512"), _size, precheck=_size_fits_models,
        ),
        Study(
            "validation", "Does early stopping on the validation split help?",
            "Baitieva et al. 2025, Table 9 (validation strategy)", ("fixed", "early_stopping"),
            _choice("train.validation", {v: v for v in VALIDATION_STRATEGIES}, "validation"),
            extras=("epochs",),
        ),
        Study(
            "unified", "Can one model per method serve every product?",
            "IADBE's unified multi-class benchmark", ("per_product", "unified"),
            _choice("train.unified", {"per_product": False, "unified": True}, "unified"),
        ),
        Study(
            "segad", "How much does SegAD add to each detector (one-class, and with a few real defects)?",
            "Baitieva et al., CVPR 2024, Table 2 (detector vs detector + SegAD)", ("0", "8"), _segad,
            ("train.seed", "segad.seed"),
            metrics=(("image_auroc", "image AUROC"), ("fpr_at_95tpr", "FPR@95TPR (image)"), ("pg2", PG2_TITLE)),
        ),
    )
}  # fmt: skip


def get_study(name: str) -> Study:
    """The registered study, or a :class:`StudyError` naming the valid ones."""
    if name not in STUDIES:
        raise StudyError(f"unknown study {name!r}; valid: {', '.join(STUDIES)}")
    return STUDIES[name]


def experiment_name(study: str, condition: str, seed: int) -> str:
    """``<study>-<condition>-s<seed>`` (a git ref name: characters outside ``[A-Za-z0-9_.-]`` become ``_``)."""
    return f"{study}-{re.sub(r'[^A-Za-z0-9_.-]', '_', condition)}-s{seed}"


def grid(study: Study, conditions: list[str] | None, seeds: int) -> list[tuple[str, str, int, dict[str, Any]]]:
    """(experiment name, condition, seed, params) of every experiment; conditions are checked before anything runs."""
    if seeds < 1:
        raise StudyError(f"--seeds must be >= 1, got {seeds}")
    chosen = list(conditions or study.conditions)
    if len(set(chosen)) != len(chosen):
        raise StudyError(f"study {study.name}: a condition is listed twice: {chosen}")
    return [(experiment_name(study.name, c, s), c, s, study.params(c, s)) for c in chosen for s in range(seeds)]


# ---- DVC ---------------------------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    """The environment with the interpreter's own bin folder first on PATH: DVC's queue worker starts ``dvc`` and
    the stages start ``iadbench`` by name, which a study run as ``.venv/bin/iadbench`` (venv not activated) must
    still find.
    """
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ.get("PATH", "")])}


def _dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True, env=_env())
    if check and proc.returncode != 0:
        raise StudyError(f"dvc {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}".rstrip())
    return proc


def _lookup(params: dict[str, Any], dotted: str) -> Any:
    value: Any = params
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def head(rev: str = "HEAD") -> str:
    """The full hash of ``rev`` (default: the current commit, which queued experiments derive from)."""
    proc = subprocess.run(["git", "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise StudyError(f"{rev}: not a commit of this repository (DVC experiments need one: git add -A && git commit)")
    return proc.stdout.strip()


def experiments(rev: str | None = None) -> dict[str, dict[str, Any]]:
    """Finished experiments derived from ``rev`` (default HEAD) by name: ``rev``, ``params``, ``metrics`` (file ->
    data). A running, queued or failed one is left out: ``dvc exp show`` lists it with its baseline's metrics.
    """
    shown = json.loads(_dvc("exp", "show", "--json", *(["--rev", rev] if rev else [])).stdout or "[]")
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


def parse_queue_status(text: str) -> tuple[dict[str, str], int | None]:
    """``dvc queue status`` output -> (experiment name -> status, number of workers active or idle; None if absent)."""
    out: dict[str, str] = {}
    workers = None
    for line in text.splitlines():
        if match := re.match(r"Worker status: (\d+) active, (\d+) idle", line.strip()):
            workers = int(match.group(1)) + int(match.group(2))
            continue
        parts = line.split()
        if len(parts) >= 3 and parts[0] != "Task":
            out[parts[1]] = parts[-1]
    return out, workers


def queue_status() -> dict[str, str]:
    """Experiment name -> status (Queued, Running, Success, Failed) from ``dvc queue status``."""
    return parse_queue_status(_dvc("queue", "status").stdout)[0]


def _log_tail(name: str, lines: int = 25) -> str:
    proc = _dvc("queue", "logs", name, check=False)
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return "\n".join(text[-lines:])


# ---- running ----------------------------------------------------------------------------------------------------


def _same(requested: dict[str, Any], existing: dict[str, Any]) -> list[str]:
    """Keys whose value differs between what a grid point asks for and an existing experiment's params."""
    return [f"{k}={existing_v!r} (asked {v!r})" for k, v in requested.items()
            if (existing_v := _lookup(existing, k)) != v]  # fmt: skip


def run_study(
    name: str,
    seeds: int = 3,
    jobs: int = 1,
    conditions: list[str] | None = None,
    dry_run: bool = False,
    collect_only: bool = False,
    echo: Callable[[str], None] = print,
    rev: str | None = None,
) -> dict[str, Any]:
    """Queue, run, follow and summarise one study (see the module docstring); return the summary written.

    The experiments derive from the current commit; the summary is read from the experiments of that commit even if
    HEAD moves while they run. ``collect_only`` reads those of ``rev`` (default HEAD) instead of running anything.
    """
    study = get_study(name)
    if jobs < 1:
        raise StudyError(f"--jobs must be >= 1, got {jobs}")
    points = grid(study, conditions, seeds)
    if study.precheck is not None and not collect_only:
        from iadbench.params import load_params

        params = load_params()
        for condition in dict.fromkeys(c for _, c, _, _ in points):
            if problem := study.precheck(condition, params):
                raise StudyError(f"study {name}: condition {condition!r}: {problem} (models in params.yaml)")
    if collect_only:
        return collect(study, echo=echo, rev=head(rev or "HEAD"))
    baseline = head()
    existing = experiments(baseline)
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
    sets = {exp: [f"{k}={_yaml(v)}" for k, v in params.items()] for exp, params in todo}
    for exp, _ in todo:
        echo(f"{'would queue' if dry_run else 'queue'} {exp}: " + " ".join(f"-S {s}" for s in sets[exp]))
    if dry_run:
        echo(f"{len(points)} experiment(s) in study {name}: {len(todo)} to run, {len(points) - len(todo)} done")
        return {"study": name, "planned": [e for e, _ in todo], "done": len(points) - len(todo)}
    start = time.perf_counter()
    failed: dict[str, str] = {}
    if todo:
        before = queue_status()
        stale = [exp for exp, _ in todo if before.get(exp) in {"Failed", "Success"}]
        if stale:  # an earlier failed attempt under the same name: its record would shadow the new run
            _dvc("queue", "remove", *stale, check=False)
        for exp, _ in todo:
            _dvc("exp", "run", "--queue", "-n", exp, *[a for s in sets[exp] for a in ("-S", s)])
        echo(f"starting {jobs} queue worker(s): dvc queue start --jobs {jobs}")
        # the worker outlives this call and inherits its output: a captured pipe would wait for the whole queue
        started = subprocess.run(
            [sys.executable, "-m", "dvc", "queue", "start", "--jobs", str(jobs)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
        )  # fmt: skip
        if started.returncode != 0:
            raise StudyError(f"dvc queue start --jobs {jobs} failed ({started.returncode}); try it by hand")
        failed = _follow(study.name, [e for e, _ in todo], start, echo)
    wall = time.perf_counter() - start
    if todo:
        record = {
            "study": name, "baseline": baseline, "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "wall_seconds": round(wall, 1), "cpu_count": os.cpu_count(), "jobs": jobs,
            "experiments": [e for e, _ in todo], "failed": sorted(failed),
        }  # fmt: skip
        RUNS.parent.mkdir(parents=True, exist_ok=True)
        with RUNS.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
    summary = collect(study, failed=failed, echo=echo, rev=baseline)
    if failed:
        raise StudyError(
            f"study {name}: {len(failed)} experiment(s) failed ({', '.join(sorted(failed))}); completed ones are "
            f"kept and summarised in {STUDIES_DIR / name}.md; logs: dvc queue logs NAME"
        )
    return summary


def _follow(study: str, names: list[str], start: float, echo: Callable[[str], None]) -> dict[str, str]:
    """Poll the queue until every experiment of this study has finished; return the failed ones with their log."""
    seen = ""
    reported: set[str] = set()
    failed: dict[str, str] = {}
    idle_since = None
    while True:
        status, workers = parse_queue_status(_dvc("queue", "status").stdout)
        states = {n: status.get(n, "Unknown") for n in names}
        done = [n for n, s in states.items() if s in {"Success", "Failed"}]
        running = [n for n, s in states.items() if s == "Running"]
        for n in [n for n, s in states.items() if s == "Failed" and n not in reported]:
            reported.add(n)
            failed[n] = _log_tail(n)
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
        if not running and not [n for n, s in states.items() if s == "Queued"]:
            lost = [n for n, s in states.items() if s not in {"Success", "Failed"}]
            if lost and elapsed > 60:
                for n in lost:
                    failed[n] = f"not in `dvc queue status` (state {states[n]}): the worker stopped"
                return failed
        time.sleep(POLL_SECONDS)


# ---- summarising ------------------------------------------------------------------------------------------------


def mean_std(values: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (n − 1; undefined for one value) of the finite values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(finite)
    mean = sum(finite) / n if n else None
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1)) if n > 1 and mean is not None else None
    return {"mean": mean, "std": std, "n": n, "values": finite}


def _git_show(rev: str, path: str) -> str | None:
    proc = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def _dvc_read(rev: str, path: str) -> str | None:
    """A DVC-tracked output of ``rev`` (an experiment's commit) from the local cache, or None when it is not there
    (the predict records are cached outputs, so that DVC's run-cache can restore the predict stage).
    """
    import dvc.api

    try:
        return dvc.api.read(path, rev=rev)
    except Exception:  # noqa: BLE001 - missing at that revision or not in the local cache
        return None


def _products(rev: str) -> list[dict[str, Any]]:
    import io

    import pandas as pd

    text = _git_show(rev, "reports/tables/products.csv")
    return [] if text is None else pd.read_csv(io.StringIO(text)).to_dict("records")


def _extra(rev: str, params: dict[str, Any], key: str) -> dict[str, float]:
    """Per model, the mean over products of one fact of the predict reports (e.g. the epochs kept)."""
    out: dict[str, float] = {}
    for model in params.get("models") or []:
        values = []
        for product in _lookup(params, "data.products") or []:
            text = _dvc_read(rev, f"reports/predict/{model}/{product}.json")
            if text:
                doc = json.loads(text)
                values.append(doc.get("best_epoch", doc.get(key)) if key == "epochs" else doc.get(key))
        values = [v for v in values if isinstance(v, int | float)]
        if values:
            out[model] = sum(values) / len(values)
    return out


def run_records(study: str, baseline: str) -> list[dict[str, Any]]:
    """The recorded runs of a study on one baseline commit (``reports/studies/runs.jsonl``)."""
    if not RUNS.is_file():
        return []
    records = [json.loads(line) for line in RUNS.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("study") == study and r.get("baseline") == baseline]


def collect(
    study: Study,
    failed: dict[str, str] | None = None,
    echo: Callable[[str], None] = print,
    rev: str | None = None,
) -> dict[str, Any]:
    """Summarise every experiment of the study derived from ``rev`` into ``reports/studies/<study>.{json,md}``."""
    pattern = re.compile(rf"^{re.escape(study.name)}-(.+)-s(\d+)$")
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    rev = head(rev or "HEAD")
    found = experiments(rev)
    for exp, info in sorted(found.items()):
        match = pattern.match(exp)
        if match and "reports/metrics.json" in info["metrics"]:
            runs.setdefault(match.group(1), {})[int(match.group(2))] = {"name": exp, **info}
    failed = dict(failed or {})
    if not runs and not failed:
        raise StudyError(
            f"no experiment of study {study.name} derived from commit {rev[:7]} (dvc exp show --rev {rev[:7]}); "
            "run the study first, or name the commit it ran on (--rev)"
        )
    order = [c for c in study.conditions if c in runs] + sorted(c for c in runs if c not in study.conditions)
    models: list[str] = []
    for condition in order:
        for run in runs[condition].values():
            models += [m for m in run["metrics"]["reports/metrics.json"] if m not in models]
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for key, _ in study.metrics:
        table[key] = {
            m: {c: mean_std([r["metrics"]["reports/metrics.json"].get(m, {}).get(key)
                             for r in runs[c].values()]) for c in order}
            for m in models
        }  # fmt: skip
    for extra in study.extras:
        per_run = {c: [_extra(r["rev"], r["params"], extra) for r in runs[c].values()] for c in order}
        table[extra] = {m: {c: mean_std([v.get(m) for v in per_run[c]]) for c in order} for m in models}
    products: dict[str, dict[str, dict[str, Any]]] = {}
    for key, _ in PRODUCT_METRICS:
        cells: dict[tuple[str, str], dict[str, list]] = {}
        for condition in order:
            for run in runs[condition].values():
                rule = _lookup(run["params"], "threshold.method") or "iou"
                column = f"{key}{rule}" if key.endswith("@") else key
                for row in _products(run["rev"]):
                    cells.setdefault((row["model"], row["product"]), {}).setdefault(condition, []).append(
                        row.get(column)
                    )
        products[key] = {
            f"{m} / {p}": {c: mean_std(v.get(c, [])) for c in order} for (m, p), v in sorted(cells.items())
        }
    records = run_records(study.name, rev)
    wall_seconds = sum(r["wall_seconds"] for r in records) if records else None  # a resumed study: every part
    summary = {
        "study": study.name,
        "baseline": rev,
        "question": study.question,
        "reference": study.reference,
        "conditions": order,
        "params": {c: study.params_of(c) for c in order if _safe(study, c)},
        "seed_keys": list(study.seed_keys),
        "seeds": {c: sorted(runs[c]) for c in order},
        "models": models,
        "experiments": {runs[c][s]["name"]: runs[c][s]["rev"] for c in order for s in sorted(runs[c])},
        "failed": failed,
        "wall_seconds": None if wall_seconds is None else round(wall_seconds, 1),
        "cpu_count": records[-1].get("cpu_count") if records else os.cpu_count(),
        "runs": records,
        "metric_titles": [list(m) for m in study.metrics],
        "metrics": table,
        "per_product": products,
    }
    STUDIES_DIR.mkdir(parents=True, exist_ok=True)
    (STUDIES_DIR / f"{study.name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    (STUDIES_DIR / f"{study.name}.md").write_text(render_markdown(summary))
    echo(f"wrote {STUDIES_DIR / study.name}.json and .md ({sum(len(v) for v in runs.values())} experiment(s))")
    return summary


def _safe(study: Study, condition: str) -> bool:
    try:
        study.params_of(condition)
    except StudyError:
        return False
    return True


def cell(stats: dict[str, Any], digits: int = 3) -> str:
    """``mean ± std`` (``mean`` alone for one seed, ``–`` for none)."""
    if stats["mean"] is None:
        return "–"
    if stats["std"] is None:
        return f"{stats['mean']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def _md_table(rows: dict[str, dict[str, dict[str, Any]]], conditions: list[str], first: str, digits: int) -> list:
    lines = [f"| {first} | " + " | ".join(conditions) + " |", "| --- |" + " --- |" * len(conditions)]
    for row, by_condition in rows.items():
        lines.append(f"| {row} | " + " | ".join(cell(by_condition[c], digits) for c in conditions) + " |")
    return lines


def segad_pairs(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """Table 2 of Baitieva et al. (CVPR 2024): each detector beside the same detector + SegAD, per condition (image
    AUROC and FPR@95TPR, mean ± std over seeds); ``all+segad`` beside the best single detector of the condition.
    ``(header, rows)``, or None for a study without SegAD setups.
    """
    setups = [m for m in summary["models"] if m.endswith(SEGAD_SUFFIX)]
    metrics = summary["metrics"]
    if not setups or "fpr_at_95tpr" not in metrics:
        return None
    conditions = summary["conditions"]
    header = ["detector", *(f"{name} · {c}: {side}" for c in conditions for name in ("AUROC", "FPR@95TPR")
                            for side in ("detector", "+ SegAD"))]  # fmt: skip
    detectors = [m for m in summary["models"] if not m.endswith(SEGAD_SUFFIX)]
    rows = []
    for setup in setups:
        base = setup.removesuffix(SEGAD_SUFFIX)
        cells = []
        for c in conditions:
            if base in detectors:
                ref = base
            else:  # all+segad: the best single detector of this condition
                ref = max(detectors, key=lambda d: metrics["image_auroc"][d][c]["mean"] or -1.0)
            for key in ("image_auroc", "fpr_at_95tpr"):
                cells += [cell(metrics[key][ref][c]), cell(metrics[key][setup][c])]
        name = base if base in detectors else f"all ({', '.join(detectors)}; detector columns: best single)"
        rows.append([name, *cells])
    return header, rows


def render_markdown(summary: dict[str, Any]) -> str:
    """The study's tables as Markdown: one table per metric, rows = models, columns = conditions."""
    conditions = summary["conditions"]
    seeds = sorted({s for c in conditions for s in summary["seeds"][c]})
    wall = summary.get("wall_seconds")
    lines = [
        f"# Study: {summary['study']}",
        "",
        f"{summary['question']} ({summary['reference']}.)",
        "",
        f"Conditions: {', '.join(f'`{c}`' for c in conditions)}; seeds {seeds} (each sets "
        f"{', '.join(f'`{k}`' for k in summary['seed_keys'])}); cells are mean ± sample std over seeds, measured on "
        "the test split at thresholds fitted on the validation split. "
        + (f"Wall time of the run that produced them: {wall / 60:.1f} min on {summary['cpu_count']} CPU core(s)."
           if wall else ""),
        "",
        "Params per condition: " + "; ".join(
            f"`{c}`: " + ", ".join(f"`{k}={_yaml(v)}`" for k, v in p.items()) for c, p in summary["params"].items()
        ) + ".",
    ]  # fmt: skip
    titles = [tuple(m) for m in summary.get("metric_titles") or METRICS]
    extras = [(e, "epochs kept (mean over products)") for e in summary["metrics"] if e not in dict(titles)]
    if pairs := segad_pairs(summary):
        header, rows = pairs
        lines += ["", "## Table 2 layout: detector vs detector + SegAD", "", "| " + " | ".join(header) + " |",
                  "| --- |" + " --- |" * (len(header) - 1), *("| " + " | ".join(r) + " |" for r in rows)]  # fmt: skip
    for key, title in (*titles, *extras):
        digits = 1 if key == "epochs" else 3
        lines += ["", f"## {title}", "", *_md_table(summary["metrics"][key], conditions, "model", digits)]
    for key, title in PRODUCT_METRICS:
        if summary["per_product"].get(key):
            lines += ["", f"## Per product: {title}", "",
                      *_md_table(summary["per_product"][key], conditions, "model / product", 3)]  # fmt: skip
    base = f" (derived from commit `{summary['baseline'][:7]}`)" if summary.get("baseline") else ""
    lines += ["", "## Experiments", "", f"{', '.join(f'`{n}`' for n in summary['experiments']) or 'none'}{base}"]
    if summary["failed"]:
        lines += ["", "## Failed (kept out of the means)", ""]
        for exp, log in summary["failed"].items():
            lines += [f"### {exp}", "", "```", log, "```", ""]
    return "\n".join(lines).rstrip() + "\n"
