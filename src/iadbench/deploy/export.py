"""Write an export folder (:mod:`iadbench.deploy.bundle`) for one benchmarked (model, product, rule).

:func:`export_cell` reads a built workspace (the trained cell, its fitted thresholds, its test evaluation), traces
:class:`~iadbench.deploy.graph.DeployedDetector`, converts it to the requested format, checks the converted graph
against the eager module on a validation image, and writes the thresholds, the preprocessing and the model card.
Every refusal names the file or param and what to do: an unknown model or product, a cell not yet trained or
evaluated, a rule not fitted for that cell (not applicable: no anomalous validation image), a format whose runtime
or converter is not installed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from iadbench.deploy.bundle import (
    EXPORT_FORMAT,
    FORMATS,
    GRAPH_FILES,
    MANIFEST,
    BundleError,
    package_version,
    prepare,
    preprocess_spec,
    sha256,
)
from iadbench.errors import IadbenchError
from iadbench.paths import ASSIGNMENT, EVALUATE_DIR, MODELS_DIR, THRESHOLDS_DIR
from iadbench.paths import MANIFEST as DATA_MANIFEST

ONNX_OPSET = 18
# An ONNX or OpenVINO graph whose output on the check image differs from the eager module by more than this share
# of the map's range is refused (a conversion error, not rounding: measured differences are ~1e-6 of the range).
CONVERSION_TOLERANCE = 1e-3


def _md5(path: Path) -> str:
    """The md5 DVC records for a file (``dvc.lock``'s ``md5``)."""
    digest = hashlib.md5()  # noqa: S324 - DVC's content hash, not a security check
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _git_rev() -> dict[str, Any]:
    """The commit of the workspace and whether tracked files differ from it (no git: None)."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip() != ""  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return {"git_rev": None, "git_dirty": None}
    return {"git_rev": rev, "git_dirty": dirty}


def default_out(model: str, product: str, rule: str, fmt: str) -> Path:
    """``exports/<model>/<product>/<rule>-<format>``, where the ``export`` stage writes it."""
    return Path("exports") / model / product / f"{rule}-{fmt}"


def _fitted(model: str, product: str, rule: str) -> tuple[Any, dict[str, Any]]:
    """The cell's thresholds record and, per level, the rule's fitted threshold; refuses a rule not fitted."""
    from iadbench.evaluation.records import ThresholdsRecord
    from iadbench.metrics.rules import fitted_rules

    path = THRESHOLDS_DIR / model / f"{product}.json"
    if rule not in fitted_rules():
        raise IadbenchError(f"--rule {rule!r}: not a rule fitted on validation; known: {list(fitted_rules())}")
    if not path.is_file():
        raise IadbenchError(f"{path}: not found: the thresholds of {model}/{product} were not fitted (dvc repro)")
    record = ThresholdsRecord.read(path)
    if record.pixel is None:
        raise IadbenchError(f"{path}: {model} writes no anomaly maps; an export carries a map and its threshold")
    chosen = {}
    for level in ("pixel", "image"):
        fitted = record.level(level)
        if rule not in fitted:
            notes = " ".join(getattr(record, f"{level}_notes")) or "no note"
            raise IadbenchError(
                f"{path}: rule {rule!r} was not fitted at the {level} level for {model}/{product} ({notes}); "
                f"fitted there: {sorted(fitted)}"
            )
        chosen[level] = fitted[rule]
    return record, chosen


def _train_channels(product: str) -> list[int]:
    """Channel counts of the product's training images, from the manifest (what ``infer`` accepts)."""
    import pandas as pd

    split = pd.read_csv(ASSIGNMENT, keep_default_na=False)
    train = set(split.loc[(split["product"] == product) & (split["split"] == "train"), "image_id"])
    manifest = pd.read_csv(DATA_MANIFEST, keep_default_na=False)
    channels = manifest.loc[manifest["image_id"].isin(train), "channels"]
    return sorted({int(c) for c in channels if str(c) != ""})


def _card_metrics(params: dict[str, Any], model: str, product: str, rule: str, dataset: str) -> dict[str, Any]:
    """Test figures of the cell at ``rule`` (with their intervals), per defect category and background."""
    from iadbench.evaluation.tables import category_table, not_applicable, read_cells
    from iadbench.params import EvaluateParams

    table, docs = read_cells([model], [product])
    doc = docs[(model, product)]
    table["dataset"] = dataset  # as write_tables prepares the rows (one cell: one dataset)
    table = table.merge(not_applicable(docs), on=["model", "product"], how="left")
    for column in (c for c in table.columns if c.startswith("na_")):
        table[column] = table[column].eq(True)
    rows = category_table(table, [dataset], EvaluateParams.from_params(params), rules=(rule,))
    keep = ["kind", "group", "n_images", "n_good", "n_anomalous", "n_iou", "mean_iou", "mean_iou_lo", "mean_iou_hi",
            "pooled_iou", "pixel_fpr_good", "image_recall", "image_false_alarm", "image_f1", "image_f1_lo",
            "image_f1_hi", "aupimo"]  # fmt: skip
    groups = [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items() if k in keep}
        for row in rows.to_dict("records")
    ]
    return {
        "test_images": doc.test,
        "image": {**{k: v for k, v in doc.image.items() if k != "at"}, "at_rule": doc.image["at"][rule]},
        "pixel": {
            **{k: v for k, v in (doc.pixel or {}).items() if k not in ("at", "aupimo")},
            "aupimo_mean": ((doc.pixel or {}).get("aupimo") or {}).get("mean"),
            "at_rule": (doc.pixel or {}).get("at", {}).get(rule),
        },  # fmt: skip
        "by_category": groups,
        "intervals": f"{EvaluateParams.from_params(params).confidence:.0%} bootstrap over test images",
    }


def _convert(program: Any, example: Any, fmt: str, out: Path) -> None:
    """Write the graph files of ``fmt`` into ``out``."""
    import torch

    if fmt == "torch":
        torch.export.save(program, out / "model.pt2")
        return
    try:
        import onnxscript  # noqa: F401 - torch's ONNX exporter needs it
    except ImportError:
        raise IadbenchError(
            f"--format {fmt}: torch's ONNX exporter needs onnxscript (pip install onnx onnxscript)"
        ) from None
    with tempfile.TemporaryDirectory(prefix="iadbench-onnx-") as tmp:
        onnx_path = (out if fmt == "onnx" else Path(tmp)) / "model.onnx"
        torch.onnx.export(program, (example,), str(onnx_path), dynamo=True, input_names=["image"],
                          output_names=["anomaly_map", "score"], external_data=False, opset_version=ONNX_OPSET,
                          verbose=False)  # fmt: skip
        if fmt == "openvino":
            try:
                import openvino as ov
            except ImportError:
                raise IadbenchError(
                    "--format openvino: the openvino package is not installed (pip install openvino)"
                ) from None
            ov.save_model(ov.convert_model(str(onnx_path)), str(out / "model.xml"), compress_to_fp16=False)


def trained_module(params: dict[str, Any], model: str, product: str) -> tuple[Any, Any, dict[str, Any]]:
    """(the cell's module with its trained state, in eval mode; its model config; its ``meta.json``)."""
    import torch

    from iadbench.models.registry import build_model
    from iadbench.models.run import load_state, model_config

    cell = MODELS_DIR / model / product
    cfg = model_config(params, model)
    module, *_ = build_model(cfg)
    load_state(module, torch.load(cell / "model.pt", map_location="cpu", weights_only=True))
    return module.eval(), cfg, json.loads((cell / "meta.json").read_text())


def export_cell(
    params: dict[str, Any],
    model: str,
    product: str,
    rule: str,
    fmt: str,
    out: Path,
    record_git: bool = True,
) -> dict[str, Any]:
    """Export the trained cell ``models/<model>/<product>`` with ``rule``'s thresholds to ``out`` (replaced).

    Args:
        params: the validated params.yaml.
        model: a registered model name, with a trained cell.
        product: a cell of ``data.products``.
        rule: a threshold rule fitted for the cell at both levels.
        fmt: torch | onnx | openvino.
        out: the folder to write (written beside it, then moved into place: never half-written).
        record_git: record the commit in the card (the ``export`` stage does not: ``dvc.lock`` ties its output to
            the commit, and a commit inside a cached output would be stale when the run-cache restores it).

    Returns:
        The manifest written.

    """
    import torch

    from iadbench.deploy.graph import trace
    from iadbench.models.registry import get_entry
    from iadbench.models.run import split_rows
    from iadbench.params import DataParams

    if fmt not in FORMATS:
        raise IadbenchError(f"--format {fmt!r}: unknown; known: {list(FORMATS)}")
    entry = get_entry(model)
    products = DataParams.from_params(params).products
    if products and product not in products:
        raise IadbenchError(f"params.yaml: product {product!r} is not a cell of data.products {list(products)}")
    cell = MODELS_DIR / model / product
    if not (cell / "model.pt").is_file() or not (cell / "meta.json").is_file():
        raise IadbenchError(f"{cell / 'model.pt'}: {model}/{product} is not trained yet (dvc repro, or add it to "
                            "models / data.products)")  # fmt: skip
    if not entry.pixel_maps:
        raise IadbenchError(f"{model}: writes image scores only; an export carries an anomaly map and its threshold")
    record, chosen = _fitted(model, product, rule)
    evaluation = EVALUATE_DIR / model / f"{product}.json"
    if not evaluation.is_file():
        raise IadbenchError(f"{evaluation}: {model}/{product} is not evaluated yet (dvc repro)")
    module, cfg, meta = trained_module(params, model, product)
    spec_rows = split_rows(product, ("validation",))
    check_image = str(spec_rows.iloc[0]["image_path"])
    provisional = preprocess_spec(cfg.image_size, [0.0] * 3, [1.0] * 3, _train_channels(product))
    example = torch.from_numpy(prepare(check_image, provisional)[0])
    try:
        program, traced = trace(module, cfg.image_size, meta.get("receptive_field_shifts", {}), example)
    except IadbenchError:
        raise
    except Exception as exc:  # torch.export's refusals are many kinds of exception; each says why
        raise _not_exportable(model, "any format (torch.export traces every one)", exc) from exc
    spec = preprocess_spec(cfg.image_size, traced["mean"], traced["std"], provisional["train_channels"])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))  # beside it: the rename is atomic
    try:
        try:
            _convert(program, example, fmt, staging)
        except IadbenchError:
            raise
        except Exception as exc:
            raise _not_exportable(model, fmt, exc) from exc
        (staging / "preprocess.json").write_text(json.dumps(spec, indent=1) + "\n")
        thresholds = {
            "rule": rule,
            "comparison": "anomalous where value >= threshold",
            "units": "raw units of the graph's outputs; the map is compared after rounding to float16, as the "
                     "benchmark stores it",  # fmt: skip
            "pixel": {"threshold": chosen["pixel"]["threshold"], "fitted_on": record.validation,
                      "validation": {k: chosen["pixel"].get(k) for k in ("tpr", "fpr", "precision", "iou")}},
            "image": {"threshold": chosen["image"]["threshold"], "fitted_on": record.validation,
                      "validation": {k: chosen["image"].get(k) for k in ("tpr", "fpr", "precision", "f1")}},
        }  # fmt: skip
        (staging / "thresholds.json").write_text(json.dumps(thresholds, indent=1) + "\n")
        files = [*GRAPH_FILES[fmt], "preprocess.json", "thresholds.json"]
        manifest = {
            "export_format": EXPORT_FORMAT, "iadbench_version": package_version(), "format": fmt,
            "model": model, "product": product, "dataset": record.dataset, "rule": rule,
            "input": {"name": "image", "shape": [1, 3, cfg.image_size, cfg.image_size], "dtype": "float32"},
            "outputs": {"anomaly_map": [1, cfg.image_size, cfg.image_size], "score": [1]},
            "files": {name: sha256(staging / name) for name in files},
        }  # fmt: skip
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        check = _check(staging, check_image, traced["reference"])
        card = _card(params, model, product, rule, fmt, record, meta, traced, check, record_git)
        (staging / "card.json").write_text(json.dumps(card, indent=1, default=str) + "\n")
        (staging / "README.md").write_text(card_markdown(card))
        manifest["files"].update({n: sha256(staging / n) for n in ("card.json", "README.md")})
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _not_exportable(model: str, fmt: str, exc: Exception) -> IadbenchError:
    """The refusal of a model the exporter cannot carry: which, to what, and the exporter's own first line."""
    reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return IadbenchError(f"{model} cannot be exported as {fmt}: {type(exc).__name__}: {reason[:400]}")


def _check(folder: Path, image: str, reference: list[np.ndarray]) -> dict[str, Any]:
    """Run the written graph with its own runtime on ``image``; compare with the eager module's outputs."""
    from iadbench.deploy.bundle import read_bundle
    from iadbench.deploy.runtime import load_runner

    bundle = read_bundle(folder)
    runner = load_runner(bundle)
    x, _, _ = prepare(image, bundle.preprocess)
    amap, score = runner(x)
    ref_map, ref_score = reference[0][0], float(reference[1][0])
    span = float(ref_map.max() - ref_map.min()) or 1.0
    diff = float(np.abs(amap - ref_map).max())
    result = {"image": image, "max_abs_map_difference": diff, "map_range": span,
              "score_difference": abs(float(score) - ref_score)}  # fmt: skip
    if diff > CONVERSION_TOLERANCE * span:
        raise BundleError(
            f"{folder}: the {bundle.format} graph differs from the eager module on {image} by {diff:.4g} "
            f"(map range {span:.4g}; allowed {CONVERSION_TOLERANCE:g} of it): its conversion is wrong"
        )
    return result


def _card(
    params: dict[str, Any],
    model: str,
    product: str,
    rule: str,
    fmt: str,
    record: Any,
    meta: dict[str, Any],
    traced: dict[str, Any],
    check: dict[str, Any],
    record_git: bool,
) -> dict[str, Any]:
    from iadbench.metrics.rules import rule_label
    from iadbench.paths import SPLIT

    cell = MODELS_DIR / model / product
    version = {"split_md5": _md5(SPLIT) if SPLIT.is_file() else None, "split_fingerprint": record.split_fingerprint,
               "model_md5": _md5(cell / "model.pt"), "thresholds_md5": _md5(THRESHOLDS_DIR / model / f"{product}.json"),
               **(_git_rev() if record_git else {"git_rev": None, "note": "see dvc.lock for the commit"})}  # fmt: skip
    training = {k: meta.get(k) for k in ("family", "epochs", "epochs_rule", "epochs_full", "seed", "image_size",
                                         "n_train", "options", "backbone", "weights_source", "weights_sha256",
                                         "deterministic", "versions", "cflow_reference_loglik")}  # fmt: skip
    training["train_params"] = params.get("train")
    return {
        "model": model, "product": product, "dataset": record.dataset, "rule": rule, "rule_label": rule_label(rule),
        "format": fmt, "data_version": version, "training": training,
        "test": _card_metrics(params, model, product, rule, record.dataset),
        "corrections": {"grid_placement": {"placed": traced["placed"], "left_as_written": traced["left_as_written"]},
                        "cflow_training_maxima": "cflow_reference_loglik" in meta},
        "export_check": check,
        "cost": {"state_dict_bytes": (cell / "model.pt").stat().st_size,
                 "speed": "benchmarks/deploy_speed.py measures images/s and latency per format (README: Deploy)"},
    }  # fmt: skip


def card_markdown(card: dict[str, Any]) -> str:
    """The card's README.md: what the folder is, how it was measured, what to expect at the line."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("iadbench.deploy", "templates"), undefined=StrictUndefined,
                      keep_trailing_newline=True, autoescape=False)  # noqa: S701 - Markdown, not HTML  # fmt: skip
    env.filters["f"] = lambda v, d=3: "–" if v is None else f"{v:.{d}f}" if isinstance(v, float) else str(v)
    return env.get_template("card.md.j2").render(card=card)
