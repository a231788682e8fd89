"""The thresholds gate: every rule fitted where its validation samples allow, every threshold finite, fitted on the
current split with the split's validation count.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from iadbench.gates import GateResult, Table, run_checkpoint
from iadbench.params import evaluated_models
from iadbench.paths import THRESHOLDS_DIR

DESCRIPTION = "reports/thresholds: each rule fitted (or not applicable), finite, on the current split's validation rows"


def threshold_facts(params: dict[str, Any], split: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, level, fitted rule): the threshold (None when absent), whether the rule applies (its
    samples exist), the validation count the file states and the split's, the file's split fingerprint and the
    current one.
    """
    from iadbench.evaluation.cells import split_fingerprint
    from iadbench.metrics.rules import RULE_TABLE, fitted_rules

    rows = []
    for model in evaluated_models(params):
        for product in params["data"]["products"]:
            path = THRESHOLDS_DIR / model / f"{product}.json"
            doc = json.loads(path.read_text()) if path.is_file() else {}
            validation = doc.get("validation") or {}
            rows_of = split[split["product"] == product]
            base = {
                "file": str(path), "model": model, "product": product,
                "validation_images": validation.get("images", -1),
                "split_validation_images": int((rows_of["split"] == "validation").sum()),
                "split_fingerprint": doc.get("split_fingerprint", "missing"),
                "current_fingerprint": split_fingerprint(split, product),
            }  # fmt: skip
            defect = validation.get("defect_pixels", 0)
            samples = {
                "image": (validation.get("anomalous", 0), validation.get("good", 0)),
                "pixel": (defect, validation.get("pixels", 0) - defect),
            }
            for level in ("image", "pixel"):
                fits = doc.get(level)
                if level == "pixel" and fits is None and "pixel" in doc:
                    continue  # the model writes no maps: image level only (pixel_notes say so)
                positives, negatives = samples[level]
                for rule in fitted_rules():
                    needs = positives if RULE_TABLE[rule].needs_anomalous else negatives
                    fit = (fits or {}).get(rule)
                    threshold = None if fit is None else fit.get("threshold")
                    if isinstance(threshold, float) and math.isnan(threshold):
                        threshold = None
                    rows.append({**base, "where": f"{path}#{level}.{rule}", "level": level, "rule": rule,
                                 "applicable": bool(needs > 0), "threshold": threshold})  # fmt: skip
    return pd.DataFrame(rows)


def thresholds_gate(params: dict[str, Any], split: pd.DataFrame) -> GateResult:
    """Validate every cell's thresholds file against the split (suite ``gx/expectations/thresholds/*.json``)."""
    return run_checkpoint("thresholds", {"thresholds": Table(str(THRESHOLDS_DIR), threshold_facts(params, split))})


def run(params: dict[str, Any]) -> GateResult:
    """The gate on every cell's ``reports/thresholds/<model>/<product>.json`` against ``data/assignment.csv``."""
    from iadbench.data.manifest import read_table
    from iadbench.paths import ASSIGNMENT

    return thresholds_gate(params, read_table(ASSIGNMENT))
