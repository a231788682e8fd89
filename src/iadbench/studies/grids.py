"""The studies' registry: each study's conditions, how a condition becomes params, and the experiment grid."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from iadbench.errors import IadbenchError
from iadbench.params import VALIDATION_STRATEGIES
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


def lookup(params: dict[str, Any], dotted: str) -> Any:
    """``params["a"]["b"]`` for ``"a.b"`` (None where a part is missing)."""
    value: Any = params
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


class StudyError(IadbenchError):
    """A study cannot be queued or summarised as asked."""


def yaml_value(value: Any) -> str:
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
    return f"{'; '.join(problems)} (models in params.yaml)" if problems else None


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


def _cell(condition: str) -> dict[str, Any]:
    """One (model, product) cell, ``<model>@<product>``: only its train, predict and evaluation stages run (no
    export); every other param is the baseline's, so its stages' run-cache entries are the full pipeline's.
    """
    model, sep, product = condition.partition("@")
    if not sep or not model or not product:
        raise StudyError(f"study cells: condition must be MODEL@PRODUCT (e.g. padim@nut), got {condition!r}")
    return {"models": [model], "data.products": [product], "export.cells": []}


def _cells_of(params: dict[str, Any]) -> tuple[str, ...]:
    """Every (model, product) cell of params.yaml, models first: the study's default conditions."""
    return tuple(f"{m}@{p}" for m in params.get("models") or [] for p in (params.get("data") or {}).get("products", []))


def _cell_fits(condition: str, params: dict[str, Any]) -> str | None:
    model, _, product = condition.partition("@")
    if model not in (params.get("models") or []):
        return f"model {model} is not in models {params.get('models')}: its cell is not part of the benchmark"
    if product not in (params.get("data") or {}).get("products", []):
        return f"product {product} is not in data.products: its cell is not part of the benchmark"
    if (params.get("segad") or {}).get("detectors"):
        return ("segad.detectors is set: SegAD's split moves train images, so one cell alone would not train on the "
                "benchmark's split; run the cells with SegAD off, or `iadbench study segad`")  # fmt: skip
    return None


def _fewshot(condition: str) -> dict[str, Any]:
    """``threshold.anomalous_images``: a number of anomalous validation images per product, or ``all``."""
    if condition != "all" and (not condition.isdigit() or int(condition) > 1024):
        raise StudyError(f"study fewshot: condition must be a number of anomalous validation images in [0, 1024] "
                         f"or 'all', got {condition!r}")  # fmt: skip
    return {"threshold.anomalous_images": condition if condition == "all" else int(condition)}


def _fewshot_fits(condition: str, params: dict[str, Any]) -> str | None:
    """A condition asking for more anomalous validation images than a product has: named with the product and its
    count, before anything is queued (from ``data/assignment.csv``, the split the experiments start from).
    """
    from iadbench.data.manifest import read_table
    from iadbench.paths import ASSIGNMENT

    if condition == "all" or not ASSIGNMENT.is_file():
        return None
    split = read_table(ASSIGNMENT)
    anomalous = split[(split["split"] == "validation") & (split["label"] == "anomalous")]
    counts = anomalous.groupby("product").size()
    products = lookup(params, "data.products") or []
    short = [f"{p} has {int(counts.get(p, 0))}" for p in products if counts.get(p, 0) < int(condition)]
    if short:
        return f"{condition} anomalous validation images per product asked, but {', '.join(short)}"
    return None


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
    seedless: tuple[str, ...] = ()  # conditions no seed key changes: one experiment (seed 0), whatever --seeds
    default_conditions: Callable[[dict[str, Any]], tuple[str, ...]] | None = None  # from params.yaml, not fixed
    by_rule: bool = False  # also tabulate every threshold rule's figures per category (reports/tables/categories.csv)

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
        Study(
            "fewshot", "How many anomalous validation images does a product need to fit a threshold, and which "
            "normal-only rule comes closest without any?", "Rethinking Benchmarking Framework… ('only very few' "
            "anomalous validation images); MVTec AD 2 (a validation split of good images only)",
            ("0", "1", "2", "4", "8", "all"), _fewshot, ("threshold.seed",), precheck=_fewshot_fits,
            seedless=("0", "all"), by_rule=True,
            metrics=(("mean_iou", "mean IoU at the headline rule"), ("image_recall", "image recall (headline rule)")),
        ),
        Study(
            "cells", "The benchmark itself, one experiment per (model, product) cell of params.yaml, so that a "
            "cluster shares its training and prediction (--executor ray); `dvc repro` then restores every cell from "
            "the shared run-cache", "iadbench: the README's Scale out section", (), _cell, seed_keys=(),
            precheck=_cell_fits, default_conditions=_cells_of,
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
    if conditions:
        chosen = list(conditions)
    elif study.default_conditions is not None:
        from iadbench.params import load_params

        chosen = list(study.default_conditions(load_params()))
    else:
        chosen = list(study.conditions)
    if len(set(chosen)) != len(chosen):
        raise StudyError(f"study {study.name}: a condition is listed twice: {chosen}")
    return [(experiment_name(study.name, c, s), c, s, study.params(c, s)) for c in chosen
            for s in (range(1) if c in study.seedless or not study.seed_keys else range(seeds))]  # fmt: skip
