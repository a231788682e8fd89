"""README results, rendered from the pipeline's artifacts (never typed).

    python benchmarks/results.py headline   # reports/metrics.json + reports/tables/categories.csv -> README
    python benchmarks/results.py rules      # dvc exp run -S threshold.method=RULE per rule; their metrics -> README
    python benchmarks/results.py study drift  # reports/studies/drift.md (iadbench study drift) -> README
    python benchmarks/results.py category-maps  # the shipped category maps' counts vs the paper -> docs/datasets.md
    python benchmarks/results.py recommend  # iadbench recommend on two profiles of the built workspace -> README

``rules`` runs one experiment per threshold rule on the current commit (only the metrics and report stages rerun),
reads ``dvc exp show --json`` and writes the three rows side by side; it then puts params.yaml back and restores the
workspace's outputs with ``dvc repro``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

import pandas as pd
import yaml
from readme_blocks import PROJECT, replace_block

from iadbench.formatting import fmt as _f
from iadbench.metrics.rules import headline_rules, rule_label
from iadbench.params import DataParams
from iadbench.studies.dvc import experiments, git_show

RULES = headline_rules()
COLUMNS = ("mean_iou", "pooled_iou", "pixel_fpr_good", "image_f1", "image_false_alarm", "image_auroc", "pixel_aupro")


def headline() -> None:
    """Headline table and per-category mean IoU at the headline rule, with 95 % intervals."""
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    method = params["threshold"]["method"]
    datasets = ", ".join(DataParams.from_params(params).datasets)
    metrics = json.loads((PROJECT / "reports/metrics.json").read_text())
    cats = pd.read_csv(PROJECT / "reports/tables/categories.csv")
    lines = [
        f"From `reports/metrics.json` and `reports/tables/categories.csv` (`make demo`, then "
        f"`python benchmarks/results.py headline`): dataset `{datasets}`, headline rule "
        f"`threshold.method: {method}`, thresholds fitted on validation, numbers on test, 95 % bootstrap intervals.",
        "",
        "| model | mean IoU [95 % CI] | pooled IoU | pixel FPR (good) | image F1 | image AUROC [95 % CI] | PG2 | "
        "AUPRO@0.3 | oracle mean IoU (upper bound) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for model, b in metrics.items():
        lines.append(
            f"| {model} | {_f(b['mean_iou'])} [{_f(b['mean_iou_lo'])}, {_f(b['mean_iou_hi'])}] | "
            f"{_f(b['pooled_iou'])} | {_f(b['pixel_fpr_good'], 4)} | {_f(b['image_f1'])} | "
            f"{_f(b['image_auroc'])} [{_f(b['image_auroc_lo'])}, {_f(b['image_auroc_hi'])}] | {_f(b['pg2'])} | "
            f"{_f(b['pixel_aupro'])} | {_f(b['oracle_mean_iou'])} |"
        )
    rows = cats[(cats["rule"] == method) & cats["kind"].isin(["defect_category", "background"])]
    groups = list(dict.fromkeys(zip(rows["kind"], rows["group"], strict=True)))
    names = [g if k == "defect_category" else f"background {g}" for k, g in groups]
    lines += ["", f"Mean per-image IoU per category at {rule_label(method)} (n test images with a mask):", "",
              "| model | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]  # fmt: skip
    for model in metrics:
        cells = []
        for kind, group in groups:
            r = rows[(rows["model"] == model) & (rows["kind"] == kind) & (rows["group"] == group)].iloc[0]
            cells.append("absent" if r["n_iou"] == 0 else f"{_f(r['mean_iou'])} (n={int(r['n_iou'])})")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    replace_block("results-headline", lines)


def _dvc(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=PROJECT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def rules() -> None:
    """One experiment per rule; the README table is read back from ``dvc exp show --json``."""
    ran = {}
    for rule in RULES:
        out = _dvc("exp", "run", "-n", f"rule-{rule}", "-S", f"threshold.method={rule}")
        ran[rule] = sorted(set(re.findall(r"Running stage '([^']+)'", out)))
        print(f"rule-{rule}: ran {ran[rule]}")
    found = experiments()  # the same reading of `dvc exp show --json` that the studies use
    subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=PROJECT, check=True)
    _dvc("repro")
    models = list(json.loads((PROJECT / "reports/metrics.json").read_text()))
    lines = [
        "From each experiment's `reports/metrics.json` after `python benchmarks/results.py rules` (one `dvc exp run -S "
        "threshold.method=…` per rule; each reran only " + ", ".join(f"`{s}`" for s in ran[RULES[0]]) + "):",
        "",
        "| experiment | threshold.method | model | " + " | ".join(COLUMNS) + " |",
        "| --- | --- | --- |" + " --- |" * len(COLUMNS),
    ]
    for rule in RULES:
        data = found.get(f"rule-{rule}", {})
        shown = git_show(data["rev"], "reports/metrics.json") if data else None
        metrics = json.loads(shown or "{}")  # every headline figure: the experiment's git-tracked metrics.json
        method = data.get("params", {}).get("threshold", {}).get("method")
        for model in models:
            m = metrics.get(model, {})
            lines.append(f"| rule-{rule} | {method} | {model} | " + " | ".join(_f(m.get(c)) for c in COLUMNS) + " |")
    replace_block("exp-rules", lines)


def study(name: str) -> None:
    """The tables of ``reports/studies/<name>.md`` (written by ``iadbench study``) under the README's block."""
    path = PROJECT / f"reports/studies/{name}.md"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `iadbench study {name}` first")
    body = path.read_text().splitlines()
    body = body[2:] if body and body[0].startswith("# ") else body  # the README has its own heading
    keep = body[: next((i for i, line in enumerate(body) if line.startswith("## Per product")), len(body))]
    lines = [f"From `reports/studies/{name}.md` (`iadbench study {name}`, then `python benchmarks/results.py study "
             f"{name}`); per-product tables and experiment names are in that file.", "", *keep]  # fmt: skip
    lines = [f"#### {line[3:]}" if line.startswith("## ") else f"##### {line[4:]}" if line.startswith("### ") else line
             for line in lines]  # under the README's ###  # fmt: skip
    brief, skip = [], False  # per-category and per-background tables of a by-rule study: in the .md only
    for line in lines:
        if line.startswith("##### "):
            skip = " defects" in line or " background" in line
        elif line.startswith("#### "):
            skip = False
        if not skip:
            brief.append(line)
    lines = brief
    if (PROJECT / f"reports/studies/{name}.png").is_file():
        lines += ["", f"![{name}: mean IoU against anomalous validation images](reports/studies/{name}.png)"]
    replace_block(f"study-{name}", lines)


def category_maps() -> None:
    """Per product: the shipped per-type map's category counts beside the paper's Table 2 (docs/datasets.md)."""
    from iadbench.data.category_maps import count_table
    from iadbench.taxonomy import DEFECT_CATEGORIES

    short = {"structural": "str", "surface": "sur", "contamination": "con", "combined": "comb"}
    lines = []
    for fmt, title in (("mvtec", "MVTec AD"), ("btad", "BTAD")):
        table = count_table(fmt)
        cols = [f"{short[c]} map / paper" for c in DEFECT_CATEGORIES]
        lines += [f"#### {title} (`src/iadbench/data/category_maps/{'mvtec_ad' if fmt == 'mvtec' else fmt}.csv`)", "",
                  "| product | background | " + " | ".join(cols) + " | same as paper |",
                  "|---|---|" + "---|" * (len(cols) + 1)]  # fmt: skip
        for row in table.to_dict("records"):
            cells, known = [], bool(str(row[f"paper_{DEFECT_CATEGORIES[0]}"]))
            for c in DEFECT_CATEGORIES:
                mine, theirs = str(row[f"map_{c}"]) or "?", str(row[f"paper_{c}"]) or "–"
                cells.append(f"{mine} / {theirs}")
            same = "–" if not known else ("yes" if all(str(row[f"map_{c}"]) == str(row[f"paper_{c}"])
                                                      for c in DEFECT_CATEGORIES) else "no")  # fmt: skip
            lines.append(f"| {row['product']} | {row['background']} | " + " | ".join(cells) + f" | {same} |")
        lines.append("")
    lines.append("map: anomalous test images of the public release per category under the per-type map (`?`: the "
                 "release's counts are not recorded for BTAD); paper: Table 2 of Gangopadhyay et al. where "
                 "`category_maps/paper_counts.csv` has it (`–`: not recorded).")  # fmt: skip
    if not replace_block("category-maps", lines, PROJECT / "docs/datasets.md"):
        raise SystemExit("docs/datasets.md has no category-maps block")


RECOMMEND_ASKS = (  # two profiles of the embedded dataset: an object on a background, a texture
    ["--background", "with", "--defects", "surface,contamination"],
    ["--background", "without", "--defects", "structural", "--max-false-alarm", "0.1"],
)


def recommend() -> None:
    """``iadbench recommend``'s output on the built workspace, verbatim, for :data:`RECOMMEND_ASKS`."""
    lines = ["From the built workspace (`make demo`, then `python benchmarks/results.py recommend`):", ""]
    for ask in RECOMMEND_ASKS:
        out = subprocess.run(["iadbench", "recommend", *ask], cwd=PROJECT, capture_output=True, text=True, check=True)
        lines += ["```console", f"$ iadbench recommend {' '.join(ask)}", *out.stdout.rstrip().splitlines(), "```", ""]
    replace_block("recommend", lines[:-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["headline", "rules", "study", "category-maps", "recommend"])
    parser.add_argument("name", nargs="?", default="drift", help="study: which study's tables (default drift)")
    args = parser.parse_args()
    os.chdir(PROJECT)  # dvc and git read the project's repository
    if args.what == "study":
        study(args.name)
    else:
        {"headline": headline, "rules": rules, "category-maps": category_maps, "recommend": recommend}[args.what]()


if __name__ == "__main__":
    main()
