"""``iadbench recommend``: which detector at which threshold rule for a product profile (background + defect
categories), from the evaluated test images of the workspace and of any commits or experiments named with ``--rev``.

The ranking and its statistics are :mod:`iadbench.evaluation.recommend`; this module reads the runs (the per-image
rows ``reports/evaluate/<model>/<product>.{csv,json}``, ``data/categories.csv``, ``reports/costs.json`` and the
run's ``params.yaml``) and prints the answer as a table or, with ``--json``, as a list of candidates best first.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

HELP = "rank (model, threshold rule) for a background and defect categories, with intervals, thresholds and costs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments."""
    parser.add_argument("--background", required=True, help="with | without (the product's background category)")
    parser.add_argument("--defects", required=True, help="defect categories to find, comma-separated "
                        "(structural, surface, contamination, combined)")  # fmt: skip
    parser.add_argument("--max-false-alarm", type=float, help="share of good test images flagged, at most F")
    parser.add_argument("--min-recall", type=float, help="share of anomalous test images flagged, at least R")
    parser.add_argument("--max-ms-per-image", type=float, help="predict time per test image, at most T ms")
    parser.add_argument("--latency", metavar="FORMAT", help="ms per image = the p95 latency of the model exported as "
                        "FORMAT (torch | onnx | openvino) in reports/bench/deploy.json (benchmarks/deploy_speed.py), "
                        "not the predict stage's batch throughput")  # fmt: skip
    parser.add_argument("--max-memory-mib", type=float, help="peak memory of training or prediction, at most M MiB")
    parser.add_argument("--rev", action="append", default=[], help="also read this commit or experiment name "
                        "(repeatable; runs over different datasets or products are pooled)")  # fmt: skip
    parser.add_argument("--no-workspace", action="store_true", help="read only the --rev runs")
    parser.add_argument("--json", action="store_true", help="print the candidates as JSON, best first")


def _reader(rev: str | None) -> tuple[str, Callable[[str], str]]:
    """(source name, path -> text) for the workspace (``rev`` None) or a commit / experiment of this repository."""
    from pathlib import Path

    from iadbench.errors import InputError, UsageError

    if rev is None:

        def read_workspace(path: str) -> str:
            if not Path(path).is_file():
                raise InputError(path, "not found in the workspace", "build it first (dvc repro)")
            return Path(path).read_text()

        return "workspace", read_workspace
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.scm import RevError, resolve_rev

    repo = Repo(".")
    try:
        sha = resolve_rev(repo.scm, rev)
    except RevError as exc:
        raise UsageError(f"--rev {rev}: no commit, branch, tag or experiment of that name ({exc})") from exc
    at_rev = Repo(".", rev=sha)

    def read_rev(path: str) -> str:
        try:
            with at_rev.dvcfs.open(path, mode="r") as handle:
                return handle.read()
        except (FileNotFoundError, DvcException) as exc:
            raise InputError(path, f"not readable at --rev {rev} ({sha[:7]})", str(exc)) from exc

    return rev, read_rev


def _load(source: str, read: Callable[[str], str]) -> tuple[Any, dict, dict]:
    """One run's per-image rows (with categories and a ``source`` column), cell records and costs."""
    import io

    import pandas as pd
    import yaml

    from iadbench.errors import InputError
    from iadbench.evaluation.evaluate import evaluate_path
    from iadbench.evaluation.records import EvaluateRecord
    from iadbench.evaluation.tables import attach_categories, read_categories
    from iadbench.params import DataParams, evaluated_models
    from iadbench.paths import CATEGORIES, COSTS

    params = yaml.safe_load(read("params.yaml"))
    data = DataParams.from_params(params)
    frames, docs = [], {}
    for model in evaluated_models(params):
        for product in data.products:
            path = evaluate_path(model, product)
            docs[(source, model, product)] = EvaluateRecord.parse(read(str(path)), path)
            rows = pd.read_csv(io.StringIO(read(str(path.with_suffix(".csv")))))
            rows["dataset"] = data.dataset_of(product)
            frames.append(rows)
    table = pd.concat(frames, ignore_index=True)
    table = attach_categories(table, read_categories(read(str(CATEGORIES))), f"{CATEGORIES} ({source})")
    table["source"] = source
    try:
        costs = json.loads(read(str(COSTS)))
    except json.JSONDecodeError as exc:
        raise InputError(f"{COSTS} ({source})", "not valid JSON", str(exc)) from exc
    return table, docs, costs


def _pool(runs: list[tuple[Any, dict, dict]]) -> tuple[Any, dict, dict]:
    """Every run's rows, records and costs together; the same image of the same model twice is refused."""
    import pandas as pd

    from iadbench.errors import UsageError

    table = pd.concat([t for t, _, _ in runs], ignore_index=True)
    twice = table[table.duplicated(["model", "dataset", "image_id"], keep=False)]
    if len(twice):
        row = twice.iloc[0]
        sources = sorted(set(twice.loc[twice["image_id"] == row["image_id"], "source"]))
        raise UsageError(f"{' and '.join(sources)} both evaluate {row['model']} on {row['dataset']} "
                         f"{row['image_id']}: pool runs over different datasets or products, or compare them "
                         "one at a time")  # fmt: skip
    docs = {k: v for _, d, _ in runs for k, v in d.items()}
    costs: dict[str, Any] = {}
    for _, _, c in runs:
        costs.update({m: block for m, block in c.items() if m not in costs})
    return table, docs, costs


def run(args: argparse.Namespace) -> None:
    """Rank (model, rule) for the profile and print the table (or ``--json``)."""
    from iadbench.errors import UsageError
    from iadbench.evaluation.recommend import Constraints, Profile, recommend
    from iadbench.params import EvaluateParams
    from iadbench.stages import read_params

    profile = Profile(args.background, tuple(d.strip() for d in args.defects.split(",") if d.strip()))
    constraints = Constraints(args.max_false_alarm, args.min_recall, args.max_ms_per_image, args.max_memory_mib)
    revs = ([] if args.no_workspace else [None]) + list(args.rev)
    if not revs:
        raise UsageError("--no-workspace needs at least one --rev")
    runs = [_load(*_reader(rev)) for rev in revs]
    table, docs, costs = _pool(runs)
    if args.latency:
        costs = with_deploy_latency(costs, _read_deploy(), args.latency)
    rec = recommend(table, docs, costs, profile, EvaluateParams.from_params(read_params(args)), constraints)
    if args.json:
        print(json.dumps(_as_json(rec), indent=1))
    else:
        print(render(rec))


DEPLOY_BENCH = "reports/bench/deploy.json"


def _read_deploy() -> dict[str, Any]:
    from pathlib import Path

    from iadbench.errors import InputError

    path = Path(DEPLOY_BENCH)
    if not path.is_file():
        raise InputError(path, "not found", "measure the exported formats first: python benchmarks/deploy_speed.py")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, "not valid JSON", str(exc)) from exc


def with_deploy_latency(costs: dict[str, Any], deploy: dict[str, Any], fmt: str) -> dict[str, Any]:
    """``costs`` with each model's images per second replaced by ``1000 / p95 ms`` of its ``fmt`` export (so that
    ``--max-ms-per-image`` bounds the latency at the line); a model or format not measured there is an error.
    """
    from iadbench.errors import InputError

    out = {}
    for model, block in costs.items():
        measured = (deploy.get("models") or {}).get(model, {}).get(fmt)
        if measured is None:
            raise InputError(DEPLOY_BENCH, f"no {fmt} latency for model {model!r}",
                             "run python benchmarks/deploy_speed.py with that model in params.yaml")  # fmt: skip
        out[model] = {**block, "images_per_second": 1000.0 / float(measured["p95_ms"])}
    return out


def _as_json(rec: Any) -> list[dict[str, Any]]:
    from iadbench.evaluation.cells import json_ready

    out = []
    for rank, c in enumerate(rec.candidates, 1):
        fields = {k: v for k, v in c.items() if k != "thresholds"}
        entry = {"rank": rank, **fields, "threshold": c["thresholds"], "profile": rec.profile.label}
        if rank == 1:
            entry.update(verdict=rec.verdict, comparison=rec.comparison)
        out.append(entry)
    return json_ready(out)


def _threshold_cell(product: str, t: dict[str, Any], rule: str) -> str:
    """``nut 278.750 / 319.271`` (pixel / image), with the stand-in rule where the product used one."""
    from iadbench.formatting import fmt

    stand_in = f" ({t['rule_used']})" if t["rule_used"] not in (None, rule) else ""
    return f"{product} {fmt(t['pixel'])} / {fmt(t['image'])}{stand_in}"


def _epochs(training: dict[str, Any]) -> str:
    """``10/200`` (epochs run / the full profile's), ``1 pass`` for a memory bank, ``–`` without epochs (SegAD)."""
    if not training:
        return "–"
    if training["epochs_rule"] == "one pass":
        return "1 pass"
    return f"{training['epochs']}/{training['epochs_full']}"


def render(rec: Any) -> str:
    """The recommendation as text: the profile and its n, the ranked table, the comparison, what was set aside."""
    from iadbench.evaluation.recommend import under_trained
    from iadbench.formatting import fmt

    lines = [f"profile: {rec.profile.label} — {rec.n_images} anomalous test image(s) with a mask, {rec.n_good} good",
             f"verdict: {rec.verdict}"]  # fmt: skip
    if short := under_trained(rec.candidates):
        lines.append(f"under-trained: {', '.join(short)}: train.profile full trains each method as published; "
                     "the ranking among them may change")  # fmt: skip
    lines.append("")
    cats = list(rec.profile.defects)
    head = ["#", "model", "rule", "mean IoU [95% CI]", *cats, "recall", "false alarm", "epochs", "fit s", "ms/img",
            "MiB", "thresholds (pixel / image)"]  # fmt: skip
    rows = []
    for rank, c in enumerate(rec.candidates, 1):
        thresholds = "; ".join(_threshold_cell(product, t, c["rule"]) for product, t in c["thresholds"].items())
        rows.append([str(rank), c["model"], c["rule"], f"{fmt(c['mean_iou'])} [{fmt(c['ci'][0])}, {fmt(c['ci'][1])}]",
                     *(fmt(c["mean_iou_by_category"][k]) for k in cats), fmt(c["image_recall"]),
                     fmt(c["false_alarm"]), _epochs(c.get("training") or {}), fmt(c["fit_seconds"], 1),
                     fmt(c["ms_per_image"], 1),
                     fmt(c["peak_memory_mib"], 0),
                     thresholds])  # fmt: skip
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if rec.comparison:
        comp, other = rec.comparison, rec.comparison["runner_up"]
        lines += ["", f"best − {other['model']}/{other['rule']}: {fmt(comp['difference'])} "
                  f"[{fmt(comp['ci'][0])}, {fmt(comp['ci'][1])}] on {comp['n_images']} paired images"
                  + (" (indistinguishable)" if comp["indistinguishable"] else "")]  # fmt: skip
    for c in rec.excluded:
        lines.append(f"set aside: {c['model']}/{c['rule']}: {', '.join(c['excluded_by'])}")
    return "\n".join(lines)
