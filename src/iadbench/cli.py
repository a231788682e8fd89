"""``iadbench``: one command-line entry point for every pipeline stage (each DVC stage's ``cmd`` is a verb here)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from iadbench import __version__
from iadbench.errors import IadbenchError
from iadbench.paths import (
    ASSIGNMENT,
    CATEGORIES,
    DATA_SUMMARY,
    MANIFEST,
    MANIFEST_MASKS,
    MANIFEST_SEGMENTS,
    PARAMS,
    SPLIT,
    dataset_root,
    export_path,
    gate_result,
)


class GateFailed(IadbenchError):
    """A gate found error-severity violations (already printed)."""


def _params(args: argparse.Namespace) -> dict:
    from iadbench.params import load_params

    return load_params(args.params)


def cmd_check(args: argparse.Namespace) -> None:
    """Check params.yaml (shape, then what the code behind each name needs); write reports/gates/params.json."""
    from iadbench.checks import check
    from iadbench.params import load_params

    check(load_params(args.params, complete=True), str(args.params))
    out = gate_result("params")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"file": str(args.params), "success": True}, indent=1) + "\n")
    print(f"{args.params}: every section, key and model option checked -> {out}")


def cmd_synthesize(args: argparse.Namespace) -> None:
    """Write the embedded synthetic dataset and its annotation export."""
    from iadbench.params import SynthesizeParams
    from iadbench.synth.generate import generate

    params = SynthesizeParams.from_params(_params(args))
    counts = generate(params, dataset_root("synthetic"), export_path("synthetic"), progress=not args.quiet)
    print(f"wrote {sum(counts.values())} images to {dataset_root('synthetic')}: {counts}")


def cmd_manifest(args: argparse.Namespace) -> None:
    """Scan data/raw/<dataset> into data/manifest.csv, data/manifest_masks.csv and data/manifest_segments.csv."""
    from iadbench.data.manifest import scan_datasets, write_table
    from iadbench.params import DataParams

    data = DataParams.from_params(_params(args))
    roots = {d: dataset_root(d) for d in data.datasets}
    images, masks, segments = scan_datasets(roots, {d: data.prefix(d) for d in data.datasets}, not args.quiet)
    write_table(images, MANIFEST)
    write_table(masks, MANIFEST_MASKS)
    write_table(segments, MANIFEST_SEGMENTS)
    print(f"{MANIFEST}: {len(images)} images of {len(roots)} dataset(s), {images['product'].nunique()} product(s); "
          f"{len(masks)} masks")  # fmt: skip


def cmd_categories(args: argparse.Namespace) -> None:
    """Parse each dataset's Label Studio export into data/categories.csv."""
    from iadbench.data.categories import dataset_votes, resolve_categories
    from iadbench.data.manifest import read_table, write_table
    from iadbench.params import DataParams

    data = DataParams.from_params(_params(args))
    manifest = read_table(MANIFEST)
    votes = [v for d in data.datasets for v in dataset_votes(export_path(d), dataset_root(d), manifest)]
    table = resolve_categories(votes, manifest)
    write_table(table, CATEGORIES)
    print(f"{CATEGORIES}: {len(votes)} annotations on {(table['n_annotators'] > 0).sum()} images")


def cmd_split(args: argparse.Namespace) -> None:
    """Write the stratified, seeded split to data/split.csv."""
    from iadbench.data.manifest import read_table, write_table
    from iadbench.data.split import ASSIGNMENT_COLUMNS, make_split
    from iadbench.params import SegadParams, SplitParams

    raw = _params(args)
    params, segad = SplitParams.from_params(raw), SegadParams.from_params(raw)  # bad params before missing tables
    split = make_split(read_table(MANIFEST), read_table(CATEGORIES), params, segad)
    write_table(split, SPLIT)
    write_table(split[ASSIGNMENT_COLUMNS], ASSIGNMENT)
    print(f"{SPLIT}: " + ", ".join(f"{k} {v}" for k, v in split["split"].value_counts().sort_index().items()))


def cmd_gate(args: argparse.Namespace) -> None:
    """Run one validation gate (a module of :mod:`iadbench.gates`); exit non-zero on any error-severity violation."""
    from iadbench import gates

    result = gates.load(args.gate).run(_params(args))
    out = gate_result(args.gate)
    result.write(out)
    for violation in result.violations[: args.max_lines]:
        print(violation, file=sys.stderr)
    if len(result.violations) > args.max_lines:
        print(f"... {len(result.violations) - args.max_lines} more in {out}", file=sys.stderr)
    status = "passed" if result.success else "FAILED"
    print(f"gate {args.gate} {status}: {len(result.errors)} error(s), {len(result.warnings)} warning(s) -> {out}")
    if not result.success:
        raise GateFailed(f"gate {args.gate} failed; nothing downstream runs. Details: {out}")


def cmd_gate_docs(args: argparse.Namespace) -> None:
    """Render the gates' Great Expectations Data Docs (offline) into reports/gates/docs."""
    from iadbench import datadocs

    datadocs.main()


def cmd_summary(args: argparse.Namespace) -> None:
    """Write reports/data_summary.json."""
    from iadbench.data.manifest import read_table
    from iadbench.data.summary import data_summary

    summary = data_summary(read_table(SPLIT), read_table(MANIFEST), read_table(CATEGORIES))
    DATA_SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    DATA_SUMMARY.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{DATA_SUMMARY}: {summary['images']}")


def cmd_costs(args: argparse.Namespace) -> None:
    """Write reports/costs.{json,md}: seconds and memory per model, from reports/resources."""
    from iadbench.params import evaluated_models
    from iadbench.paths import COSTS_MD
    from iadbench.resources import write_costs

    table = write_costs(evaluated_models(_params(args)))
    print(f"{COSTS_MD}: {len(table)} model(s)")


def cmd_train(args: argparse.Namespace) -> None:
    """Train one (model, product) cell."""
    from iadbench.models.run import train_cell

    meta = train_cell(_params(args), args.model, args.product, progress=False if args.quiet else None)
    print(
        f"trained {args.model} on {args.product}: {meta['epochs']} epoch(s), {meta['fit_seconds']} s, "
        f"peak RSS {meta['peak_rss_mb']} MiB, weights {meta['weights_source']} {meta['backbone']}"
    )


def cmd_predict(args: argparse.Namespace) -> None:
    """Write anomaly maps and scores of one (model, product) cell."""
    from iadbench.models.run import predict_cell

    report = predict_cell(_params(args), args.model, args.product, progress=False if args.quiet else None)
    print(
        f"predicted {report['n_images']} images with {args.model} on {args.product}: "
        f"{report['images_per_second']} img/s, peak RSS {report['peak_rss_mb']} MiB"
    )


def cmd_segad_features(args: argparse.Namespace) -> None:
    """SegAD: segment statistics of one detector's maps on one product (BRF part, validation, test)."""
    from iadbench.segad.stages import features_cell

    s = features_cell(_params(args), args.detector, args.product, progress=False if args.quiet else None)
    print(
        f"SegAD features of {args.detector} on {args.product}: {s['n_features']} per image ({s['n_segments']} "
        f"segment(s), {s['segments']}); BRF part {s['n_brf_good']} good + {s['n_brf_shots']} shot(s) + "
        f"{s['n_synthetic']} synthetic; detector {s['detector_seconds']} s, statistics {s['feature_seconds']} s"
    )


def cmd_segad(args: argparse.Namespace) -> None:
    """SegAD: fit one setup's boosted random forest on one product and score its validation/test images."""
    from iadbench.segad.stages import fit_cell

    r = fit_cell(_params(args), args.setup, args.product)
    print(
        f"{args.setup} on {args.product} ({r['mode']}): BRF on {r['n_brf_good']} good + {r['n_brf_anomalous']} "
        f"anomalous, {r['n_features']} features; fit {r['fit_seconds']} s, scored {r['n_images']} images"
    )


def cmd_thresholds(args: argparse.Namespace) -> None:
    """Fit every threshold rule of one (model, product) cell on its validation split."""
    from iadbench.data.manifest import read_table
    from iadbench.evaluation.thresholds import write_cell

    doc = write_cell(args.model, args.product, read_table(ASSIGNMENT))
    levels = [lv for lv in ("pixel", "image") if doc[lv]]
    summary = "; ".join(f"{lv}: " + ", ".join(f"{r}={f['threshold']:.4g}" for r, f in doc[lv].items()) for lv in levels)
    print(f"thresholds {args.model}/{args.product} ({doc['validation']['images']} validation images): {summary}")
    for note in doc["image_notes"] + (doc["pixel_notes"] or []):
        print(f"note: {note}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Evaluate one (model, product) cell on its test split at every fitted threshold."""
    from iadbench.data.manifest import read_table
    from iadbench.evaluation.evaluate import write_cell
    from iadbench.formatting import fmt as _fmt
    from iadbench.params import EvaluateParams

    limit = EvaluateParams.from_params(_params(args)).aupro_fpr_limit
    doc = write_cell(args.model, args.product, read_table(ASSIGNMENT), limit)
    pixel = doc["pixel"] or {}
    print(
        f"evaluated {args.model}/{args.product} on {doc['test']['images']} test images: image AUROC "
        f"{_fmt(doc['image']['auroc'])}, pixel AUPRO {_fmt(pixel.get('aupro'))}, mean IoU "
        + ", ".join(f"{r} {_fmt(v['mean_iou'])}" for r, v in pixel.get("at", {}).items())
    )


def cmd_metrics(args: argparse.Namespace) -> None:
    """Pool every cell into reports/metrics.json and the category and product tables."""
    from iadbench.evaluation.tables import write_tables
    from iadbench.formatting import fmt as _fmt
    from iadbench.paths import CATEGORY_TABLE, METRICS, PRODUCT_TABLE

    metrics = write_tables(_params(args))
    for model, block in metrics.items():
        print(f"{model:14s} mean IoU {_fmt(block['mean_iou'])} [{_fmt(block['mean_iou_lo'])}, "
              f"{_fmt(block['mean_iou_hi'])}]  image AUROC {_fmt(block['image_auroc'])}  "
              f"pixel AUPRO {_fmt(block['pixel_aupro'])}")  # fmt: skip
    print(f"wrote {METRICS}, {CATEGORY_TABLE}, {PRODUCT_TABLE}")


def cmd_figures(args: argparse.Namespace) -> None:
    """Draw the figures that threshold.method does not decide: overlays per headline rule, drift examples."""
    from iadbench.data.manifest import read_table
    from iadbench.evaluation.report import write_figures
    from iadbench.paths import OVERLAYS_DIR

    written = write_figures(_params(args), read_table(ASSIGNMENT))
    print(f"{OVERLAYS_DIR}: {len(written)} figure(s)")


def cmd_report(args: argparse.Namespace) -> None:
    """Write reports/report.html and reports/report.md with tables, threshold curves and overlays."""
    from iadbench.evaluation.report import write_report

    written = write_report(_params(args))
    print("wrote " + ", ".join(map(str, written)))


def cmd_annotate(args: argparse.Namespace) -> None:
    """Label Studio round trip: serve, push tasks, pull the export (see annotation/README.md)."""
    from iadbench.annotation import client
    from iadbench.annotation.workflow import pull_steps, push_steps
    from iadbench.data.manifest import read_table

    if args.action == "config":
        from iadbench.annotation.config import write_config, write_examples

        print(f"wrote {write_config()}")
        if SPLIT.is_file():
            print("wrote " + ", ".join(map(str, write_examples())))
        return
    if args.action == "serve":
        from iadbench.annotation.server import serve

        raise SystemExit(serve(args.host, args.port))
    if not args.dataset:
        raise IadbenchError(f"annotate {args.action} needs --dataset NAME (a folder under data/raw)")
    ls = client.connect()
    if args.action == "push":
        result = client.push(ls, args.dataset, read_table(ASSIGNMENT), read_table(CATEGORIES))
        verb = "created" if result["created"] else "updated"
        print(f"{verb} project {result['project_id']} ({client.project_title(args.dataset)}): imported "
              f"{result['imported']} new task(s), {result['already_there']} already there")  # fmt: skip
        print("next: label in the browser; after each sitting:")
        for line in push_steps(args.dataset):
            print(f"  {line}")
    elif args.action == "status":
        r = client.status(ls, args.dataset)
        by = ", ".join(f"{k} annotator(s): {v}" for k, v in r["by_annotators"].items())
        print(f"project {r['project_id']} ({client.project_title(args.dataset)}): {r['labelled']} of {r['tasks']} "
              f"task(s) labelled by {r['annotators']} person(s); per task {by}; {r['disagreements']} disagreement(s), "
              f"{r['cancelled']} skipped")  # fmt: skip
    else:
        from iadbench.data.categories import relative_ids

        ids = set(relative_ids(read_table(MANIFEST), dataset_root(args.dataset)))
        result = client.pull(ls, args.dataset, ids, track=not args.no_dvc, replace=args.replace)
        print(f"wrote {result['path']}: {result['tasks']} task(s), {result['votes']} annotation(s)")
        if result["merged"]:
            print(f"merged with the previous export: {result['labelled_now']} image(s) labelled on the server, "
                  f"{result['kept_previous']} kept their earlier labels, {result['only_previous']} only in the "
                  "previous export (--replace overwrites instead)")  # fmt: skip
        if result["unlabelled_tasks"]:
            print(f"note: {result['unlabelled_tasks']} task(s) have no annotation yet; their images keep no category "
                  "and the categories gate will name them")  # fmt: skip
        print("next:")
        for line in pull_steps(args.dataset):
            print(f"  {line}")


def cmd_models(args: argparse.Namespace) -> None:
    """Print the model registry."""
    from iadbench.models.registry import MODELS

    for entry in MODELS.values():
        maps = "maps+scores" if entry.pixel_maps else "scores only"
        print(f"{entry.name:22s} {entry.family:40s} {maps:12s} {entry.note}")
        options = ", ".join(f"{key}={value!r}" for key, value in entry.options.items()) or "(none)"
        print(f"{'':22s} options: {options}")
    for name in ("<detector>+segad", "all+segad"):
        print(
            f"{name:22s} {'segment statistics + boosted random forest':40s} {'scores only':12s} SegAD "
            "(Baitieva et al., CVPR 2024) on the maps of a detector / of every segad.detectors; params: segad"
        )


def cmd_import(args: argparse.Namespace) -> None:
    """Copy a dataset (any registered format) into data/raw/NAME in the MVTec layout and track it with DVC."""
    from iadbench.data.formats import Options
    from iadbench.data.importer import import_dataset, parse_defect_map

    defect_map = parse_defect_map(args.defect_map) if args.defect_map else None
    options = Options(product=args.product or "", good_test_fraction=args.good_test_fraction)
    fmt = None if args.format == "auto" else args.format
    result = import_dataset(
        Path(args.path), args.name, args.export, defect_map, args.background, track=not args.no_dvc, fmt=fmt,
        options=options, missing_masks=args.missing_masks, default_categories=not args.no_default_categories,
        progress=not args.quiet,
    )  # fmt: skip
    print(f"imported ({result.fmt} format, {result.record['images']} images): " + ", ".join(map(str, result.added)))
    for note in result.notes:
        print(f"  note: {note}")
    if args.no_dvc:
        return
    from iadbench.annotation.workflow import import_steps

    products = sorted(p.name for p in result.added[0].iterdir() if p.is_dir())
    print("next (dvc push sends the data to the DVC remote, so that a clone restores it with dvc pull):")
    for line in import_steps(args.name, result.added, products):
        print(f"  {line}")


def cmd_study(args: argparse.Namespace) -> None:
    """Queue, run and summarise a study (a grid of DVC experiments): reports/studies/NAME.{json,md}."""
    from iadbench.studies import run_study

    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()] if args.conditions else None
    run_study(
        args.name, seeds=args.seeds, jobs=args.jobs, conditions=conditions, dry_run=args.dry_run,
        collect_only=args.collect, echo=lambda line: print(line, flush=True), rev=args.rev,
    )  # fmt: skip


def _gate_names() -> list[str]:
    """The modules of :mod:`iadbench.gates`, listed without importing that package (every verb builds the parser,
    and a stage must import only what it uses: ``iadbench.depsclosure``).
    """
    import importlib.util
    import pkgutil

    loaded = sys.modules.get("iadbench.gates")  # already imported (a test may extend its __path__): ask it
    spec = importlib.util.find_spec("iadbench.gates") if loaded is None else None
    path = loaded.__path__ if loaded is not None else spec.submodule_search_locations
    return sorted(m.name for m in pkgutil.iter_modules(path) if not m.name.startswith("_"))


def build_parser() -> argparse.ArgumentParser:
    """The ``iadbench`` argument parser."""
    parser = argparse.ArgumentParser(prog="iadbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"iadbench {__version__}")
    parser.add_argument("--params", type=Path, default=PARAMS, help="params file (default: params.yaml)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, func: Callable[[argparse.Namespace], None], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    verb("check", cmd_check, "check params.yaml: every key, type and range, and each model's options (before a run)")
    verb("synthesize", cmd_synthesize, "write the embedded synthetic dataset (params: synthesize)")
    verb("manifest", cmd_manifest, "scan data/raw/<each of data.datasets> into data/manifest.csv")
    verb("categories", cmd_categories, "parse each dataset's annotation/exports/<dataset>.json: data/categories.csv")
    verb("split", cmd_split, "write the seeded, stratified split to data/split.csv (params: split)")
    g = verb("gate", cmd_gate, "run a Great Expectations validation gate; exit 1 on any error")
    g.add_argument("gate", choices=_gate_names(), help="the gate: one module of iadbench.gates")
    g.add_argument("--max-lines", type=int, default=100, help="violations printed (all are in the JSON)")
    verb("gate-docs", cmd_gate_docs, "render the gates' Great Expectations Data Docs, offline: reports/gates/docs")
    for name, func, text in (
        ("train", cmd_train, "train one (model, product) cell on the split's train rows"),
        ("predict", cmd_predict, "write anomaly maps and scores of one (model, product) cell"),
        ("thresholds", cmd_thresholds, "fit ROC-T, IoU-T, PR-T and good_fpr1 of one cell on its validation split"),
        ("evaluate", cmd_evaluate, "evaluate one cell on its test split at every fitted threshold"),
    ):
        p = verb(name, func, text)
        p.add_argument("--model", required=True, help="a registry name (iadbench models lists them)")
        p.add_argument("--product", required=True)
    sf = verb("segad-features", cmd_segad_features, "SegAD: segment statistics of one detector's maps (params: segad)")
    sf.add_argument("--detector", required=True, help="one of segad.detectors")
    sf.add_argument("--product", required=True)
    sg = verb("segad", cmd_segad, "SegAD: fit one setup's boosted random forest and score its images")
    sg.add_argument("--setup", required=True, help="<detector>+segad or all+segad (params: segad)")
    sg.add_argument("--product", required=True)
    verb("metrics", cmd_metrics, "pool all cells into reports/metrics.json and reports/tables/ (params: threshold)")
    verb("figures", cmd_figures, "draw the overlays of every headline rule and the drift examples: reports/overlays")
    verb("report", cmd_report, "write reports/report.html and .md (tables, curves, overlays)")
    a = verb("annotate", cmd_annotate, "Label Studio: serve | push | pull | status | config (annotation/README.md)")
    a.add_argument("action", choices=["serve", "push", "pull", "status", "config"])
    a.add_argument("--dataset", help="dataset name (push, pull, status)")
    a.add_argument("--host", default="127.0.0.1", help="serve: address to bind (default 127.0.0.1)")
    a.add_argument("--port", type=int, default=8080, help="serve: port (default 8080)")
    a.add_argument("--no-dvc", action="store_true", help="pull: write the export without `dvc add`")
    a.add_argument("--replace", action="store_true",
                   help="pull: overwrite the export with the server's instead of merging (unlabelled images lose "
                   "their earlier labels)")  # fmt: skip
    verb("models", cmd_models, "list the registered models")
    st = verb("study", cmd_study, "run a study as queued DVC experiments; write reports/studies/NAME.{json,md}")
    st.add_argument("name", help="seeds | drift | noise | size | validation | unified | segad")
    st.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per condition (default 3)")
    st.add_argument("--jobs", type=int, default=1, help="experiments run in parallel (dvc queue start --jobs)")
    st.add_argument("--conditions", help="comma-separated conditions instead of the study's default grid")
    st.add_argument("--dry-run", action="store_true", help="print what would be queued; run nothing")
    st.add_argument("--collect", action="store_true", help="rebuild the tables from existing experiments only")
    st.add_argument("--rev", help="--collect: the commit the experiments derive from (default HEAD)")
    verb("summary", cmd_summary, "write reports/data_summary.json (DVC metrics)")
    verb("costs", cmd_costs, "write reports/costs.{json,md}: seconds and memory per model (from reports/resources)")
    i = verb("import", cmd_import, "copy a dataset (mvtec, btad, visa, mvtec3d, folder) to data/raw/NAME; dvc add")
    i.add_argument("path", help="the dataset as it ships (read only, never modified)")
    i.add_argument("--name", required=True, help="dataset name: data/raw/NAME, an entry of data.datasets")
    i.add_argument(
        "--format",
        default="auto",
        help="source layout: mvtec, btad, visa, mvtec3d or folder (default auto: detected; the error lists what each "
        "registered format looks for)",
    )
    i.add_argument("--export", type=Path, help="Label Studio JSON export with the dataset's categories")
    i.add_argument("--defect-map", help="provisional categories before labelling: 'crack=structural,stain=surface'")
    i.add_argument("--background", choices=["with", "without"], help="background category of the provisional export")
    i.add_argument(
        "--no-default-categories",
        action="store_true",
        help="MVTec AD / BTAD: do not apply the shipped per-type category map",
    )
    i.add_argument(
        "--missing-masks",
        default="error",
        choices=["error", "empty", "skip"],
        help="anomalous images without a mask: refuse (default), empty mask (image-level only), leave out",
    )
    i.add_argument("--product", help="folder format: the product name (default: --name)")
    i.add_argument(
        "--good-test-fraction",
        type=float,
        default=0.2,
        help="folder format: share of good images that go to test/good (default 0.2, as anomalib)",
    )
    i.add_argument("--no-dvc", action="store_true", help="copy only, do not `dvc add`")
    return parser


# What each verb imports before it does any work (benchmarks/repro_speed.py times these apart from the work)
VERB_MODULES = {
    "train": ("torch", "lightning", "anomalib.engine", "iadbench.models.run"),
    "predict": ("torch", "lightning", "anomalib.engine", "iadbench.models.run"),
    "segad-features": ("torch", "lightning", "anomalib.engine", "iadbench.segad.stages"),
    "segad": ("xgboost", "iadbench.segad.stages"),
    "thresholds": ("iadbench.evaluation.thresholds",),
    "evaluate": ("iadbench.evaluation.evaluate",),
    "metrics": ("iadbench.evaluation.tables",),
    "report": ("iadbench.evaluation.report",),
    "figures": ("iadbench.evaluation.report",),
    "gate": ("iadbench.gates",),
    "gate-docs": ("iadbench.datadocs",),
}


def _timed(args: argparse.Namespace, log: str) -> None:
    """Run the verb, appending ``{verb, argv, import_seconds, work_seconds, startup_seconds}`` to ``log`` (JSON
    lines; ``IADBENCH_TIMING_LOG``): start-up = process start to here (interpreter, ``iadbench.cli``), import =
    the verb's modules, work = the rest.
    """
    import importlib
    import os
    import time

    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/self/stat") as fh:
        started = int(fh.read().rsplit(")", 1)[1].split()[19]) / ticks
    with open("/proc/uptime") as fh:
        startup = float(fh.read().split()[0]) - started
    start = time.perf_counter()
    for module in VERB_MODULES.get(args.verb, ()):
        importlib.import_module(module)
    imported = time.perf_counter()
    args.func(args)
    done = time.perf_counter()
    record = {"verb": args.verb, "argv": sys.argv[1:], "startup_seconds": round(startup, 3),
              "import_seconds": round(imported - start, 3), "work_seconds": round(done - imported, 3)}  # fmt: skip
    with open(log, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run one verb; user errors print one clear message (no traceback) and exit 1 (gate) or 2 (input)."""
    import os

    args = build_parser().parse_args(argv)
    try:
        if log := os.environ.get("IADBENCH_TIMING_LOG"):
            _timed(args, log)
        else:
            args.func(args)
    except GateFailed as exc:
        print(f"iadbench: {exc}", file=sys.stderr)
        return 1
    except IadbenchError as exc:
        print(f"iadbench {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
