"""Summarising a study: mean ± std over seeds per model and condition, from the experiments' own files."""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Callable
from typing import Any

from iadbench.depsclosure import code_fingerprints
from iadbench.params import SEGAD_SUFFIX
from iadbench.paths import STUDIES_DIR
from iadbench.studies.dvc import experiments, git_show, head
from iadbench.studies.grids import METRICS, PRODUCT_METRICS, RUNS, Study, StudyError, lookup, yaml_value


def mean_std(values: list[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (n − 1; undefined for one value) of the finite values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(finite)
    mean = sum(finite) / n if n else None
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1)) if n > 1 and mean is not None else None
    return {"mean": mean, "std": std, "n": n, "values": finite}


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

    text = git_show(rev, "reports/tables/products.csv")
    return [] if text is None else pd.read_csv(io.StringIO(text)).to_dict("records")


def _extra(rev: str, params: dict[str, Any], key: str) -> dict[str, float]:
    """Per model, the mean over products of one fact of the predict reports (e.g. the epochs kept)."""
    out: dict[str, float] = {}
    for model in params.get("models") or []:
        values = []
        for product in lookup(params, "data.products") or []:
            text = _dvc_read(rev, f"reports/predict/{model}/{product}.json")
            if text:
                doc = json.loads(text)
                values.append(doc.get("best_epoch", doc.get(key)) if key == "epochs" else doc.get(key))
        values = [v for v in values if isinstance(v, int | float)]
        if values:
            out[model] = sum(values) / len(values)
    return out


def _rule_metrics() -> tuple[tuple[str, str, str, str], ...]:
    """(key, column of the categories table, group, title) of a by-rule study's tables: mean IoU over all test images,
    per defect category and per background category, image recall and false-alarm rate.
    """
    from iadbench.taxonomy import BACKGROUNDS, DEFECT_CATEGORIES

    return (
        ("mean_iou", "mean_iou", "all", "mean IoU, all test images"),
        *((f"mean_iou:{c}", "mean_iou", c, f"mean IoU, {c} defects") for c in DEFECT_CATEGORIES),
        *((f"mean_iou:{b}_background", "mean_iou", b, f"mean IoU, {b} background") for b in BACKGROUNDS),
        ("image_recall", "image_recall", "all", "image recall"),
        ("image_false_alarm", "image_false_alarm", "all", "image false-alarm rate"),
    )


def _categories(rev: str) -> list[dict[str, Any]]:
    """The pooled rows (every dataset) of an experiment's ``reports/tables/categories.csv``."""
    import io

    import pandas as pd

    from iadbench.evaluation.tables import pooled

    text = git_show(rev, "reports/tables/categories.csv")
    if text is None:
        return []
    return pooled(pd.read_csv(io.StringIO(text), keep_default_na=False, na_values=[""])).to_dict("records")


def _rule_table(runs: dict[str, dict[int, dict[str, Any]]], order: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Key -> "model · rule" -> condition -> mean ± std over seeds, for every rule of every experiment (a rule not
    applicable in a condition — no anomalous validation image — has no value there: ``–``).
    """
    from iadbench.metrics.rules import RULE_TABLE

    by_rule: dict[str, dict[str, dict[str, list]]] = {k: {} for k, *_ in _rule_metrics()}
    for condition in order:
        for run in runs[condition].values():
            rows = _categories(run["rev"])
            for key, column, group, _ in _rule_metrics():
                for row in rows:
                    if row["group"] == group and row["rule"] in RULE_TABLE and column in row:
                        name = f"{row['model']} · {row['rule']}"
                        by_rule[key].setdefault(name, {}).setdefault(condition, []).append(row[column])
    rank = {r: i for i, r in enumerate(RULE_TABLE)}
    return {
        key: {name: {c: mean_std(v.get(c, [])) for c in order}
              for name, v in sorted(cells.items(), key=lambda kv: (kv[0].split(" · ")[0], rank[kv[0].split(" · ")[1]]))}
        for key, cells in by_rule.items()
    }  # fmt: skip


def rule_curves(summary: dict[str, Any], path: Any) -> Any:
    """The curve of a by-rule study: mean IoU (all test images) against the condition (anomalous validation images
    per product), one panel per model, a line per rule (mean ± std over seeds); a rule with no value in a condition
    (an anomalous-sample rule without anomalous images) has no point there. Normal-only rules do not depend on the
    anomalous images: their points at 0 are their values.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from iadbench.metrics.rules import RULE_TABLE

    conditions = summary["conditions"]
    table = summary["by_rule"]["mean_iou"]
    models = list(dict.fromkeys(name.split(" · ")[0] for name in table))
    width = max(3.6 * len(models), 8.0)  # one model: wide enough for the title and the legend
    fig, axes = plt.subplots(1, len(models), figsize=(width, 3.4), squeeze=False, sharey=True)
    x = list(range(len(conditions)))
    for ax, model in zip(axes[0], models, strict=True):
        for name, by_condition in table.items():
            m, rule = name.split(" · ")  # every rule of the table: _rule_table keeps RULE_TABLE's only
            if m != model:
                continue
            spec = RULE_TABLE[rule]
            points = [(i, by_condition[c]) for i, c in enumerate(conditions) if by_condition[c]["mean"] is not None]
            if not points:
                continue
            xs = [i for i, _ in points]
            ys = [st["mean"] for _, st in points]
            errs = [st["std"] or 0.0 for _, st in points]
            style = "--" if not spec.needs_anomalous or spec.select is None else "-"
            ax.errorbar(xs, ys, yerr=errs, marker=spec.marker, color=spec.color, linestyle=style, capsize=2,
                        markersize=4, linewidth=1, label=spec.label)  # fmt: skip
        ax.set_xticks(x, conditions)
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("anomalous validation images per product", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean IoU (test)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=7, frameon=False)
    fig.suptitle(f"Study {summary['study']}: mean IoU vs anomalous validation images (dashed: normal-only rules "
                 "and the oracle, which do not use them)", fontsize=9)  # fmt: skip
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


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
    rev = head(rev or "HEAD")
    runs = _runs_of(study, experiments(rev))
    for by_seed in runs.values():  # every headline figure: the git-tracked metrics.json of each experiment's commit
        for run in by_seed.values():
            text = git_show(run["rev"], "reports/metrics.json")
            run["metrics"]["reports/metrics.json"] = json.loads(text) if text else {}
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
    table = _metric_table(study, runs, order, models)
    products = _product_table(runs, order)
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
        "code": code_fingerprints(functools.cache(lambda path: git_show(rev, path))),  # the report compares
        "metrics": table,
        "per_product": products,
    }
    if study.by_rule:
        summary["by_rule"] = _rule_table(runs, order)
        summary["by_rule_titles"] = [[key, title] for key, _, _, title in _rule_metrics()]
    STUDIES_DIR.mkdir(parents=True, exist_ok=True)
    if study.by_rule:
        rule_curves(summary, STUDIES_DIR / f"{study.name}.png")
    (STUDIES_DIR / f"{study.name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    (STUDIES_DIR / f"{study.name}.md").write_text(render_markdown(summary))
    echo(f"wrote {STUDIES_DIR / study.name}.json and .md ({sum(len(v) for v in runs.values())} experiment(s))")
    return summary


def _runs_of(study: Study, found: dict[str, Any]) -> dict[str, dict[int, dict[str, Any]]]:
    """The study's experiments that wrote their headline (``reports/headline.json``, the DVC metric), by condition and
    seed (names ``<study>-<condition>-s<seed>``).
    """
    pattern = re.compile(rf"^{re.escape(study.name)}-(.+)-s(\d+)$")
    runs: dict[str, dict[int, dict[str, Any]]] = {}
    for exp, info in sorted(found.items()):
        match = pattern.match(exp)
        if match and "reports/headline.json" in info["metrics"]:
            runs.setdefault(match.group(1), {})[int(match.group(2))] = {"name": exp, **info}
    return runs


def _metric_table(
    study: Study, runs: dict[str, dict[int, dict[str, Any]]], order: list[str], models: list[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Metric -> model -> condition -> mean ± std over seeds, for the study's headline metrics and its extras."""
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
    return table


def _product_table(
    runs: dict[str, dict[int, dict[str, Any]]], order: list[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Metric -> "model / product" -> condition -> mean ± std over seeds, from each experiment's products table
    (a rule-suffixed metric at that experiment's ``threshold.method``).
    """
    products: dict[str, dict[str, dict[str, Any]]] = {}
    for key, _ in PRODUCT_METRICS:
        cells: dict[tuple[str, str], dict[str, list]] = {}
        for condition in order:
            for run in runs[condition].values():
                rule = lookup(run["params"], "threshold.method") or "iou"
                column = f"{key}{rule}" if key.endswith("@") else key
                for row in _products(run["rev"]):
                    cells.setdefault((row["model"], row["product"]), {}).setdefault(condition, []).append(
                        row.get(column)
                    )
        products[key] = {
            f"{m} / {p}": {c: mean_std(v.get(c, [])) for c in order} for (m, p), v in sorted(cells.items())
        }
    return products


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
        f"Conditions: {', '.join(f'`{c}`' for c in conditions)}; "
        + (f"seeds {seeds} (each sets {', '.join(f'`{k}`' for k in summary['seed_keys'])}); cells are mean ± sample "
           "std over seeds, measured on " if summary["seed_keys"] else "one experiment each (no seed varies); cells "
           "are measured on ")
        + "the test split at thresholds fitted on the validation split. "
        + (f"Wall time of the run that produced them: {wall / 60:.1f} min on {summary['cpu_count']} CPU core(s)."
           if wall else ""),
        "",
        "Params per condition: " + "; ".join(
            f"`{c}`: " + ", ".join(f"`{k}={yaml_value(v)}`" for k, v in p.items()) for c, p in summary["params"].items()
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
    if summary.get("by_rule"):
        lines += ["", f"## Per threshold rule (the curve: `{summary['study']}.png`)", "",
                  "Rows model · rule; `–`: the rule is not applicable in that condition (it needs anomalous "
                  "validation images). Normal-only rules (good_*) use the good validation images alone, so their "
                  "values do not depend on the condition; the oracle is the test-optimal upper bound."]  # fmt: skip
        for key, title in summary["by_rule_titles"]:
            lines += ["", f"### {title}", "", *_md_table(summary["by_rule"][key], conditions, "model · rule", 3)]
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
