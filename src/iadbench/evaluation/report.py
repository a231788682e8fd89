"""The report stage: ``reports/report.html`` (self-contained, opens offline) and ``reports/report.md``.

Every number is read from the metrics stage's artifacts (``reports/metrics.json``, ``reports/tables/*.csv``) and
the evaluate/thresholds files; nothing is typed. Figures are PNGs under ``reports/figures`` (also DVC image plots,
which ``dvc plots show``/``diff`` render with no script from the network); the HTML embeds them as data URIs.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pandas as pd

from iadbench.data.drift import DriftParams
from iadbench.depsclosure import code_fingerprints
from iadbench.errors import InputError
from iadbench.evaluation.cells import thresholds_path
from iadbench.evaluation.figures import category_bars
from iadbench.evaluation.panels import THUMB, drift_title, overlay_title, thumbnail_tiles
from iadbench.evaluation.recommend import (
    MIN_IMAGES,
    Profile,
    combine_training,
    profiles_present,
    recommend,
    short_of_full,
)
from iadbench.evaluation.tables import pooled, read_cells
from iadbench.formatting import fmt
from iadbench.metrics.registry import METRIC_TABLE, level_metrics
from iadbench.metrics.rules import RULE_TABLE, figure_rules, headline_method, rule_label
from iadbench.params import DataParams, EvaluateParams, evaluated_models
from iadbench.paths import (
    CATEGORIES,
    CATEGORY_TABLE,
    DRIFT_EXAMPLES,
    FIGURES,
    GATE_DOCS,
    GATES_DIR,
    MASKS_TABLE,
    METRICS,
    PREDICT_REPORTS,
    PRODUCT_TABLE,
    REPORT_HTML,
    REPORT_MD,
    STUDIES_DIR,
    overlay_path,
    thumbs_path,
)
from iadbench.taxonomy import DEFECT_CATEGORIES, DEFECT_DEFINITIONS, split_categories

MASK_SOURCE_COLUMNS = ("shipped", "shipped_corrected", "drawn", "prefill_edited", "prefill_accepted", "pending")


def mask_section(
    masks: pd.DataFrame, categories: pd.DataFrame, excluded: tuple[str, ...]
) -> tuple[str, list[str], list[list[str]], str]:
    """Where the anomalous validation/test images' masks come from, per product and defect category
    (:mod:`iadbench.data.drawn`), and what the pixel figures did with them: pending masks are image-level only;
    masks accepted unchanged from a detector's pre-drawn regions are left out when ``excluded`` names them.
    """
    rows = masks.merge(categories[["image_id", "product", "label", "defect_categories"]], on="image_id")
    rows = rows[(rows["label"] == "anomalous") & (rows["mask_source"].astype(str) != "")]
    body = []
    for product, group in rows.groupby("product", sort=True):
        for category in DEFECT_CATEGORIES:
            mine = group[group["defect_categories"].map(lambda cs, c=category: c in split_categories(cs))]
            if len(mine):
                counts = mine["mask_source"].value_counts()
                body.append([str(product), category, str(len(mine)),
                             *(str(int(counts.get(s, 0))) for s in MASK_SOURCE_COLUMNS)])  # fmt: skip
    counted = rows["mask_source"].value_counts()
    accepted, pending = int(counted.get("prefill_accepted", 0)), int(counted.get("pending", 0))
    done = ("left out of pixel thresholds and metrics (evaluate.exclude_prefill_accepted: true): a mask a detector "
            "drew and nobody changed favours that detector; their images count at image level"
            if "prefill_accepted" in excluded else "counted in pixel thresholds and metrics "
            "(evaluate.exclude_prefill_accepted: false): they favour the detector that pre-drew them")  # fmt: skip
    note = (
        f"{accepted} mask(s) accepted unchanged from a detector's pre-drawn regions: {done}. {pending} mask(s) "
        "pending (imported with --missing-masks annotate, not drawn yet): image-level metrics only."
    )
    header = ["product", "category", "anomalous images", *MASK_SOURCE_COLUMNS]
    return "Masks: where each anomalous image's mask comes from (validation and test)", header, body, note


def annotation_sections(categories: pd.DataFrame, max_notes: int = 100) -> list[tuple[str, list[str], list[list[str]]]]:
    """Where the categories come from, per defect category: anomalous images carrying it, the share whose label a
    person gave or changed (``person``) or accepted unchanged (``suggestion``), the shares still provisional (import
    map) or simulated, and Fleiss' kappa of the annotators (images with 2+ annotators); then annotators' notes.
    """
    from iadbench.data.summary import category_kappas

    if "label_source" not in categories:
        return []
    anomalous = categories[categories["label"] == "anomalous"]
    kappas = category_kappas(categories)
    header = ["category", "anomalous images", "confirmed by a person", "suggestion accepted",
              "import map (provisional)", "simulated", "none", "Fleiss' kappa"]  # fmt: skip
    body = []
    for category in DEFECT_CATEGORIES:
        rows = anomalous[anomalous["defect_categories"].map(lambda cs, c=category: c in split_categories(cs))]
        n = len(rows)
        shares = [fmt(float((rows["label_source"] == s).mean()) if n else None)
                  for s in ("person", "suggestion", "import_map", "simulated", "none")]  # fmt: skip
        body.append([category, str(n), *shares, fmt(kappas.get(category))])
    sections = [("Annotation: who confirmed each category (shares of its anomalous images)", header, body)]
    noted = categories[categories["notes"].astype(str) != ""] if "notes" in categories else categories.iloc[:0]
    if len(noted):
        notes = [[r.image_id, r.defect_categories, str(r.notes)] for r in noted.head(max_notes).itertuples()]
        if len(noted) > max_notes:
            notes.append([f"... {len(noted) - max_notes} more in data/categories.csv", "", ""])
        sections.append(("Annotators' notes", ["image", "categories", "notes (annotator: note)"], notes))
    return sections


def table1(categories: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Table 1 layout: rows category × dataset, columns model × rule, cells mean per-image IoU (n images)."""
    models = list(dict.fromkeys(categories["model"]))
    rules = [r for r in RULE_TABLE if r in set(categories["rule"])]
    header = ["category", "dataset", "n"] + [f"{m} {rule_label(r)}" for m in models for r in rules]
    body = []
    groups = list(dict.fromkeys(zip(categories["kind"], categories["group"], strict=True)))
    datasets = list(dict.fromkeys(categories["dataset"]))  # each dataset, then "all" when there are several
    for (kind, group), dataset in ((g, d) for g in groups for d in datasets):
        rows = categories[(categories["kind"] == kind) & (categories["group"] == group)
                          & (categories["dataset"] == dataset)]  # fmt: skip
        n = int(rows["n_iou"].max()) if "n_iou" in rows and rows["n_iou"].notna().any() else 0
        label = {"defect_category": group, "background": f"background {group}", "all": "all images"}[kind]
        cells = []
        for m in models:
            for r in rules:
                hit = rows[(rows["model"] == m) & (rows["rule"] == r)]
                value = hit["mean_iou"].iloc[0] if len(hit) and "mean_iou" in hit else None
                cells.append("absent" if n == 0 else fmt(value))
        body.append([label, dataset, str(n), *cells])
    return header, body


def detail_table(categories: pd.DataFrame, method: str) -> tuple[list[str], list[list[str]]]:
    """At the headline rule: mean IoU with its interval, pooled IoU, pixel FPR on good images, image figures."""
    header = ["model", "category", "dataset", "n images", "mean IoU [95 % CI]", "pooled IoU", "pixel FPR (good)",
              "image recall", "image false alarms", "image F1 [95 % CI]", "AUPIMO (threshold-free)"]  # fmt: skip
    body = []
    for r in categories[categories["rule"] == method].itertuples(index=False):
        d = r._asdict()
        absent = d.get("n_images", 0) == 0
        body.append([d["model"], d["group"] if d["kind"] != "background" else f"background {d['group']}",
                     d["dataset"], str(d["n_images"]),
                     "absent" if absent else f"{fmt(d.get('mean_iou'))} [{fmt(d.get('mean_iou_lo'))}, "
                     f"{fmt(d.get('mean_iou_hi'))}]",
                     fmt(d.get("pooled_iou")), fmt(d.get("pixel_fpr_good"), 4), fmt(d.get("image_recall")),
                     fmt(d.get("image_false_alarm")),
                     f"{fmt(d.get('image_f1'))} [{fmt(d.get('image_f1_lo'))}, {fmt(d.get('image_f1_hi'))}]"
                     if pd.notna(d.get("image_f1")) else "–", fmt(d.get("aupimo"))])  # fmt: skip
    return header, body


def product_rows(products: pd.DataFrame, method: str, aupro_fpr_limit: float) -> tuple[list[str], list[list[str]]]:
    """Per product and model: counts, the threshold-free metrics of the registry (image AUROC with its interval),
    figures and the fitted threshold values (pixel / image) at the headline rule.
    """
    free = [m for level in ("image", "pixel") for m in level_metrics(level)]
    labels = [m.label.format(limit=f"{aupro_fpr_limit:g}") for m in free]
    header = ["model", "product", "test good/anomalous",
              *[f"{x} [95 % CI]" if m.headline_key == "image_auroc" else x for m, x in zip(free, labels, strict=True)],
              f"mean IoU ({method})", f"image F1 ({method})", "rule used", "pixel / image threshold",
              "image score"]  # fmt: skip
    body = []
    for r in products.to_dict("records"):
        values = [f"{fmt(r['image_auroc'])} [{fmt(r['image_auroc_lo'])}, {fmt(r['image_auroc_hi'])}]"
                  if m.headline_key == "image_auroc" else fmt(r[f"{m.level}_{m.name}"]) for m in free]  # fmt: skip
        body.append([r["model"], r["product"], f"{r['n_good']}/{r['n_anomalous']}", *values,
                     fmt(r.get(f"mean_iou@{method}")), fmt(r.get(f"image_f1@{method}")), str(r["rule_used"]),
                     f"{fmt(r.get(f'pixel_threshold@{method}'), 4)} / {fmt(r.get(f'image_threshold@{method}'), 4)}",
                     str(r["image_score"])])  # fmt: skip
    return header, body


def md_table(header: list[str], body: list[list[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])


STUDY_METRICS = (("image_auroc", "image AUROC"), ("mean_iou", "mean IoU at the headline rule"))


def study_sections() -> list[tuple[Any, ...]]:
    """Studies — one table per study (image AUROC and mean IoU, mean ± std over seeds, rows model, columns
    condition) from ``reports/studies/*.json`` written by ``iadbench study``; the full tables are in the ``.md``.
    """
    from iadbench.studies.summary import cell, segad_pairs

    out = []
    now: dict[str, str] = {}
    for path in sorted(STUDIES_DIR.glob("*.json")) if STUDIES_DIR.is_dir() else []:
        doc = json.loads(path.read_text())
        conditions = doc["conditions"]
        shown = [(k, t) for k, t in STUDY_METRICS if k in doc["metrics"]]  # a study tabulates its own metrics
        shown = shown if len(shown) == len(STUDY_METRICS) else [tuple(m) for m in doc["metric_titles"][:2]]
        header = ["model", *(f"{title} · {c}" for _, title in shown for c in conditions)]
        body = [
            [model, *(cell(doc["metrics"][key][model][c]) for key, _ in shown for c in conditions)]
            for model in doc["models"]
        ]
        seeds = sorted({s for c in conditions for s in doc["seeds"][c]})
        title = (f"Studies — {doc['study']}: {doc['question']} (mean ± std over seeds {seeds}; "
                 f"all tables in {path.with_suffix('.md').as_posix()})")  # fmt: skip
        now = now or code_fingerprints(_workspace_text)
        provenance = f"Experiments derived from commit {doc['baseline'][:7]} (`iadbench study {doc['study']}`). " + (
            code_note(doc.get("code"), now, doc["study"])
        )
        out.append((title, header, body, provenance))
        if pairs := segad_pairs(doc):
            out.append((f"Studies — {doc['study']}: detector vs detector + SegAD (Baitieva et al., CVPR 2024, "
                        f"Table 2 layout; conditions = real defects per product, 0 = one-class)", *pairs))  # fmt: skip
    return out


def _workspace_text(path: str) -> str | None:
    file = Path(path)
    return file.read_text() if file.is_file() else None


def code_note(then: dict[str, str] | None, now: dict[str, str], study: str) -> str:
    """Whether the code behind a study's numbers changed since its commit: its recorded fingerprints (``then``, per
    verb, :func:`~iadbench.depsclosure.code_fingerprints` of the baseline commit) against the workspace's (``now``).
    """
    if not then:
        return f"Its code fingerprint was not recorded (an older study): run `iadbench study {study}` again to know."
    changed = [verb for verb in then if then[verb] != now.get(verb)]
    if changed:
        where = "every stage that shapes them" if len(changed) == len(then) else f"stages {', '.join(changed)}"
        return (f"The code behind these numbers changed since that commit ({where}): run `iadbench study {study}` "
                "to refresh them.")  # fmt: skip
    return ("The code behind these numbers is unchanged since that commit; a params change since is not in them "
            "until the study runs again.")  # fmt: skip


def segad_section(params: dict[str, Any], metrics: dict[str, Any]) -> tuple[str, list[str], list[list[str]]] | None:
    """SegAD — the layout of Table 2 of Baitieva et al. (CVPR 2024): each detector beside the same detector + SegAD
    (image AUROC, FPR at 95 % TPR; all products), with the mode and segments from
    ``reports/predict/<setup>/<product>.json``. ``all+segad`` is set beside the best single detector. What SegAD
    costs (seconds, memory) is machine-dependent and is in ``reports/costs.md``, not here.
    """
    from iadbench.params import SegadParams
    from iadbench.paths import PREDICT_REPORTS

    segad = SegadParams.from_params(params)
    if not segad.on:
        return None
    header = ["setup", "detector(s)", "mode · segments", "image AUROC: detector", "image AUROC: + SegAD",
              "FPR@95TPR: detector", "FPR@95TPR: + SegAD"]  # fmt: skip
    body = []
    for setup in segad.setups:
        detectors = segad.detectors_of(setup)
        best = max(detectors, key=lambda d: metrics.get(d, {}).get("image_auroc") or -1.0)
        docs = [json.loads(f.read_text()) for p in params["data"]["products"]
                if (f := PREDICT_REPORTS / setup / f"{p}.json").is_file()]  # fmt: skip
        mode = f"{docs[0]['mode']} · {docs[0]['segments']} (L = {docs[0]['n_segments']})" if docs else "–"
        named = best if len(detectors) == 1 else f"{', '.join(detectors)} (best single: {best})"
        body.append([setup, named, mode, fmt(metrics.get(best, {}).get("image_auroc")),
                     fmt(metrics.get(setup, {}).get("image_auroc")), fmt(metrics.get(best, {}).get("fpr_at_95tpr")),
                     fmt(metrics.get(setup, {}).get("fpr_at_95tpr"))])  # fmt: skip
    title = ("SegAD — detector vs detector + SegAD (Baitieva et al., CVPR 2024, Table 2 layout; all products; "
             f"BRF on {segad.brf_fraction:.0%} of the train/good images, detectors on the rest)")  # fmt: skip
    return title, header, body


def gate_section() -> tuple[str, list[str], list[list[str]]]:
    """One row per validation gate (``reports/gates/<gate>.json``): expectations checked, failed, errors and
    warnings; its Great Expectations Data Docs are linked below the table.
    """
    rows = []
    for path in sorted(GATES_DIR.glob("*.json"), key=lambda p: (p.stem != "params", p.stem)):
        gate = path.stem
        doc = json.loads(path.read_text())
        rules = doc.get("rules", [])
        if gate == "params":  # iadbench check: one schema, no GX rules
            rows.append([gate, "passed" if doc.get("success") else "FAILED", "–", "–", "0", "0"])
            continue
        rows.append([gate, "passed" if doc.get("success") else "FAILED", str(len(rules)),
                     str(sum(not r.get("success", True) for r in rules)), str(doc.get("n_errors", 0)),
                     str(doc.get("n_warnings", 0))])  # fmt: skip
    return "Validation gates", ["gate", "status", "rules", "rules failed", "errors", "warnings"], rows


RECOMMEND_HEADER = ["background", "defect category", "n", "best (model / rule)", "mean IoU [95 % CI]", "runner-up",
                    "difference [95 % CI]", "verdict"]  # fmt: skip


def training_section(models: list[str], products: list[str]) -> tuple[str, list[str], list[list[str]], str]:
    """The section "Training length": per trained model, the epochs its cells ran, the rule that chose them
    (``profile demo``/``profile full``, ``train.epochs``, ``model_options.<m>.epochs``; ``one pass``: a memory bank)
    and its full profile's epochs, read from the predict records (``reports/predict/<model>/<product>.json``). The
    note names every model trained for fewer epochs than its full length: a ranking that includes them compares
    under-trained models.
    """
    rows, short = [], []
    for model in models:
        paths = [PREDICT_REPORTS / model / f"{product}.json" for product in products]
        for path in paths:
            if not path.is_file():
                raise InputError(path, "predict record not found", "rerun predict (dvc repro)")
        docs = [json.loads(path.read_text()) for path in paths]
        if not docs or "epochs_rule" not in docs[0]:  # a SegAD setup: a boosted forest, no epochs
            continue
        training, least = combine_training(docs), min(int(d["epochs"]) for d in docs)
        most, full = training["epochs"], training["epochs_full"]
        epochs = f"{least}–{most}" if least < most else str(most)  # early stopping: a range over products
        rows.append([model, epochs, training["epochs_rule"], str(full)])
        if short_of_full(training):
            short.append(f"{model} ({most} of {full})")
    note = (
        "Under-trained: " + ", ".join(short) + " trained fewer epochs than their full length (`train.profile: full`"
        " trains each method as published or as anomalib configures it); a ranking among them may change with the "
        "full profile."
        if short
        else "Every trained model ran its full length."
    )
    return "Training length (epochs per model)", ["model", "epochs", "chosen by", "full profile"], rows, note


def recommendation_rows(params: dict[str, Any]) -> list[list[str]]:
    """The section "Which detector for which product": one row per (background, defect category) present, the
    recommendation of :func:`~iadbench.evaluation.recommend.recommend` without costs (timings stay outside cached
    artifacts: ``iadbench recommend`` adds them).
    """
    data = DataParams.from_params(params)
    table, docs = read_cells(evaluated_models(params), list(data.products))
    table["dataset"], table["source"] = table["product"].map(data.dataset_of), "workspace"
    keyed = {("workspace", model, product): doc for (model, product), doc in docs.items()}
    p = EvaluateParams.from_params(params)
    rows = []
    for (background, category), n in profiles_present(table).items():
        rec = recommend(table, keyed, None, Profile(background, (category,)), p)
        best, comp = rec.candidates[0], rec.comparison
        other = f"{comp['runner_up']['model']} / {comp['runner_up']['rule']}" if comp else "–"
        diff = f"{fmt(comp['difference'])} [{fmt(comp['ci'][0])}, {fmt(comp['ci'][1])}]" if comp else "–"
        if n < MIN_IMAGES:
            verdict = f"too few images (< {MIN_IMAGES})"
        elif comp and comp["indistinguishable"]:
            verdict = "indistinguishable"
        else:
            verdict = "best"
        interval = f"{fmt(best['mean_iou'])} [{fmt(best['ci'][0])}, {fmt(best['ci'][1])}]"
        rows.append([background, category, str(n), f"{best['model']} / {best['rule']}", interval, other, diff, verdict])
    return rows


def write_report(params: dict[str, Any]) -> list[Path]:
    """Render ``report.md`` and ``report.html`` (jinja2 templates beside this module) from the pipeline's artifacts.

    The HTML page has a table of contents, tables sorted by clicking a header, and every test image in one table
    (model, product, categories, background, score, the verdict and IoU at each rule) filtered by model, category,
    background and verdict; it opens offline (no script or style from the network). The only figure drawn here is the
    one ``threshold.method`` decides (mean IoU per category); the others come from the thresholds and figures stages.
    """
    method = headline_method(params)
    data = DataParams.from_params(params)
    models, products = evaluated_models(params), list(data.products)
    categories = pd.read_csv(CATEGORY_TABLE, dtype={"dataset": str})
    metrics = json.loads(METRICS.read_text())
    figures = _figures(params, models, products, method, categories)
    docs = f"{GATE_DOCS.relative_to(REPORT_MD.parent).as_posix()}/index.html"
    page = {
        "intro": _intro(data, models, products, method),
        "definitions": "; ".join(f"**{k}**: {v}" for k, v in DEFECT_DEFINITIONS.items()),
        "sections": [_as_section(i, sec) for i, sec in enumerate(_sections(params, method, categories, metrics))],
        "docs": docs,
        "docs_text": DOCS_TEXT,
        "images": image_table(models, products, method),
    }
    env = _environment()
    md_figures = [{"title": t, "path": path.relative_to(REPORT_MD.parent).as_posix()} for t, path in figures]
    REPORT_MD.write_text(env.get_template("report.md.j2").render(**page, figures=md_figures))
    html_figures = [{"title": t, "data": _base64(path)} for t, path in figures]
    REPORT_HTML.write_text(env.get_template("report.html.j2").render(**page, figures=html_figures) + "\n")
    return [REPORT_HTML, REPORT_MD, FIGURES]


def _environment() -> Any:
    """The report's jinja2 environment: templates from this package; HTML escaped in the ``.html`` templates only;
    ``md_table`` and ``plain`` (Markdown emphasis and code marks dropped) as filters.
    """
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("iadbench.evaluation", "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["md_table"] = lambda rows, header: md_table(header, rows)
    env.filters["plain"] = lambda text: str(text).replace("**", "").replace("`", "")
    return env


DOCS_TEXT = ("Every gate is a Great Expectations checkpoint of the suites in `gx/`; their Data Docs (each suite, each "
             "validation, offline) are in")  # fmt: skip


def _as_section(index: int, section: tuple[Any, ...]) -> dict[str, Any]:
    """A table of the report as its templates take it: (title, header, rows[, note]) with an anchor."""
    title, header, rows, *note = section
    return {
        "id": _anchor(title, index),
        "title": title,
        "header": header,
        "rows": rows,
        "note": note[0] if note else "",
    }


def _base64(path: Path) -> str:
    """A PNG's bytes as the page embeds them (``data:image/png;base64,…``: the page opens offline)."""
    return base64.b64encode(path.read_bytes()).decode()


def _anchor(title: str, index: int) -> str:
    """A stable HTML id for a section: its position and the first words of its title."""
    words = "".join(c if c.isalnum() else " " for c in title.lower()).split()[:4]
    return f"s{index + 1}-" + "-".join(words)


def _intro(data: DataParams, models: list[str], products: list[str], method: str) -> str:
    plural = "s" if len(data.datasets) > 1 else ""
    return (
        f"Dataset{plural} **{', '.join(data.datasets)}**, models {', '.join(models)}, products {', '.join(products)}. "
        f"Thresholds are fitted per (model, product) on the validation split only; every number is measured on the "
        f"test split. Headline rule: **{rule_label(method)}** (`threshold.method` in params.yaml). The oracle column "
        "uses the test-optimal threshold: an upper bound, not a result."
    )


def _sections(
    params: dict[str, Any], method: str, categories: pd.DataFrame, metrics: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """(title, header, rows[, note]) of every table, in the report's order."""
    aupro_fpr_limit = EvaluateParams.from_params(params).aupro_fpr_limit
    headline_rows = [[m, fmt(b.get("mean_iou")), f"[{fmt(b.get('mean_iou_lo'))}, {fmt(b.get('mean_iou_hi'))}]",
                      fmt(b.get("pooled_iou")), fmt(b.get("pixel_fpr_good"), 4), fmt(b.get("image_f1")),
                      fmt(b.get("image_auroc")), fmt(b.get("pg2")), fmt(b.get("pixel_aupro")), fmt(b.get("aupimo")),
                      fmt(b.get("oracle_mean_iou"))] for m, b in metrics.items()]  # fmt: skip
    aupro_title = METRIC_TABLE[("pixel", "aupro")].label.format(limit=f"{aupro_fpr_limit:g}")
    headline_header = ["model", f"mean IoU ({rule_label(method)})", "95 % CI", "pooled IoU", "pixel FPR (good)",
                       "image F1", "image AUROC", "PG2", aupro_title, "AUPIMO (FPR 1e-5…1e-4)",
                       "oracle mean IoU (upper bound)"]  # fmt: skip
    return [
        ("Headline (all products)", headline_header, headline_rows),
        training_section(evaluated_models(params), list(DataParams.from_params(params).products)),
        ("Table 1 — mean per-image IoU by category × dataset (columns: model × threshold rule)", *table1(categories)),
        (f"Per category at {rule_label(method)}", *detail_table(categories, method)),
        ("Per product", *product_rows(pd.read_csv(PRODUCT_TABLE), method, aupro_fpr_limit)),
        (
            "Which detector for which product (iadbench recommend: with costs, constraints and several defects)",
            RECOMMEND_HEADER,
            recommendation_rows(params),
        ),
        *([section] if (section := segad_section(params, metrics)) else []),
        *annotation_sections(pd.read_csv(CATEGORIES, keep_default_na=False)),
        mask_section(
            pd.read_csv(MASKS_TABLE, keep_default_na=False),
            pd.read_csv(CATEGORIES, keep_default_na=False),
            EvaluateParams.from_params(params).excluded_mask_sources(),
        ),  # fmt: skip
        *study_sections(),
        gate_section(),
    ]


def _figures(
    params: dict[str, Any], models: list[str], products: list[str], method: str, categories: pd.DataFrame
) -> list[tuple[str, Path]]:
    """(title, file) of every figure: the category bars drawn here, the others drawn by earlier stages."""
    for old in FIGURES.glob("*.png") if FIGURES.is_dir() else []:
        old.unlink()
    figures = [
        ("Mean IoU per defect category", category_bars(pooled(categories), method, FIGURES / "category_iou.png"))
    ]
    for model in models:  # drawn by the thresholds stage (their inputs are its): embedded here, never redrawn
        for product in products:
            curves = thresholds_path(model, product).with_suffix(".png")
            if not curves.is_file():
                raise InputError(curves, "figure of the validation curves not found", "rerun thresholds (dvc repro)")
            figures.append((f"{model} / {product}: validation curves and fitted thresholds", curves))
    drift = DriftParams.from_params(params)
    if drift.on and DRIFT_EXAMPLES.is_file():
        figures.append((drift_title(drift), DRIFT_EXAMPLES))
    for model in models:  # drawn by the figures stage, one per figure rule (none for a normal-only rule but good_fpr)
        if overlay_path(method, model).is_file():
            figures.append((overlay_title(model, method), overlay_path(method, model)))
    for curve in sorted(STUDIES_DIR.glob("*.png")) if STUDIES_DIR.is_dir() else []:  # drawn by `iadbench study`
        figures.append((f"Study {curve.stem}: mean IoU against anomalous validation images, per rule", curve))
    return figures


IMAGE_FILTERS = {0: "model", 1: "product", 4: "category", 5: "background", 7: "verdict"}  # column -> filter label


def image_table(models: list[str], products: list[str], method: str) -> dict[str, Any]:
    """Every test image of every cell: model, product, image, label, defect categories (``a · b``), background,
    score, the image-level verdict at the headline rule (found / missed / false alarm / passed) and the per-image
    IoU at each rule; with the filter choices of the HTML page.
    """
    rows, _ = read_cells(models, products)
    rules = [r for r in RULE_TABLE if f"iou_{r}" in rows.columns]
    header = ["model", "product", "image", "label", "defect categories", "background", "score",
              f"verdict ({rule_label(method)})", *(f"IoU · {rule_label(r)}" for r in rules)]  # fmt: skip
    sheets = {(m, p): _base64(thumbs_path(m, p)) for m in models for p in products if thumbs_path(m, p).is_file()}
    sheet_ids = {cell: f"s{k}" for k, cell in enumerate(sheets)}
    # the sheet's tile of the mask at the headline rule (a rule without figures: the first three tiles only)
    tiles_shown = (0, 1, 2, 3 + figure_rules().index(method)) if method in figure_rules() else (0, 1, 2)
    position = rows.groupby(["model", "product"], sort=False).cumcount()  # the row of the image in its cell's sheet
    thumbs = [
        {"sheet": sheet_ids[(m, p)], "offsets": [(-THUMB * x, -THUMB * int(i)) for x in tiles_shown]}
        if (m, p) in sheets
        else None
        for m, p, i in zip(rows["model"], rows["product"], position, strict=True)
    ]
    body = []
    for r in rows.itertuples(index=False):
        row = r._asdict()
        flagged = row.get(f"img_{method}_pred")
        anomalous = row["label"] == "anomalous"
        verdict = "–" if pd.isna(flagged) else {(True, True): "found", (True, False): "missed",
                                                 (False, True): "false alarm", (False, False): "passed"}[
            (anomalous, bool(flagged))]  # fmt: skip
        cats = " · ".join(split_categories(row["defect_categories"])) or "–"
        body.append([row["model"], row["product"], row["image_id"], row["label"], cats, row["background"] or "–",
                     fmt(row["score"], 4), verdict, *(fmt(row[f"iou_{r}"]) for r in rules)])  # fmt: skip
    choices = {i: sorted({v for b in body for v in b[i].split(" · ")} - {"–"}) for i in IMAGE_FILTERS}
    filters = [{"label": label, "column": i + 1, "choices": choices[i]} for i, label in IMAGE_FILTERS.items()]
    note = (f"{len(body)} rows: one per (model, test image). Verdict at the headline rule's image threshold; IoU "
            "at each rule's pixel threshold, blank for good images and images without a mask. The same rows, with "
            "pixel counts, are reports/evaluate/<model>/<product>.csv.")  # fmt: skip
    tiles = ", ".join(thumbnail_tiles()[i] for i in tiles_shown)
    return {"header": ["thumbnails", *header], "rows": body, "filters": filters, "note": note, "thumbs": thumbs,
            "tiles": tiles, "sheets": {sheet_ids[c]: data for c, data in sheets.items()}, "size": THUMB}  # fmt: skip
