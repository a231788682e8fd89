"""Which detector, at which threshold rule, for a product profile: (model, rule) pairs ranked on the test images
that look like the user's product, with the uncertainty that the ranking carries.

A *profile* is a background category and one or more defect categories (DESIGN §2). Its images are the test images
with that background: the anomalous ones that carry at least one of the defect categories (an image of several
categories counts once) and, for the false-alarm rate, the good ones.

For each (model, rule) with ``rule`` fitted on validation (the test-optimal oracle is an upper bound, never a
candidate), at the thresholds that rule fitted per product:

- ``mean_iou`` = (1/n) Σ_i IoU_i over the profile's n anomalous images with a mask, IoU_i = TP/(TP+FP+FN) of image
  i's pixels (DESIGN §3), with its percentile bootstrap interval over images (``evaluate.bootstrap`` resamples,
  ``evaluate.confidence``, seeded by ``evaluate.seed``; Efron & Tibshirani 1993, ch. 13), and the same mean per
  defect category of the profile;
- ``image_recall`` = share of the profile's anomalous images flagged (image score ≥ the rule's image threshold),
  ``false_alarm`` = share of its good images flagged;
- the cost of the model from ``reports/costs.json``: fit seconds, milliseconds per test image (1000 / images per
  second of the predict stage) and peak memory (MiB);
- how the model was trained (``training``: epochs, the rule that chose them and its full profile's length, from the
  evaluation records), so that a ranking says when it compares under-trained models (:func:`under_trained`).

Candidates that break a constraint are set aside with the reason; the rest are ranked by ``mean_iou`` (ties: higher
recall, then lower false-alarm rate, then name). The best is compared with the runner-up (the best candidate of
another model: the choice is a detector) by a *paired* bootstrap
over the images both were scored on (each resample draws the same images for both; Efron & Tibshirani 1993,
§16.4): the interval of mean(IoU_best − IoU_runner-up); when it holds 0 the two are *indistinguishable* on these
images. With fewer than :data:`MIN_IMAGES` images no interval is trusted enough to decide, and the verdict says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from iadbench.errors import InputError, UsageError
from iadbench.evaluation.tables import ratio_ci
from iadbench.metrics.curves import ratio
from iadbench.metrics.rules import RULE_TABLE, level_rules
from iadbench.params import EvaluateParams
from iadbench.paths import COSTS
from iadbench.taxonomy import BACKGROUNDS, DEFECT_CATEGORIES, split_categories

ORACLE = next(n for n, r in RULE_TABLE.items() if r.select is None)  # test-optimal: never a candidate
MIN_IMAGES = 10  # below this a percentile bootstrap interval over images is too rough to decide between detectors


@dataclass(frozen=True)
class Profile:
    """The product a user asks about: its background category and the defect categories it must find."""

    background: str
    defects: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.background not in BACKGROUNDS:
            raise UsageError(f"--background must be one of {list(BACKGROUNDS)}, got {self.background!r}")
        unknown = [d for d in self.defects if d not in DEFECT_CATEGORIES]
        if unknown or not self.defects:
            raise UsageError(f"--defects takes categories of {list(DEFECT_CATEGORIES)} (comma-separated), got "
                             f"{','.join(self.defects) or 'nothing'}")  # fmt: skip

    @property
    def label(self) -> str:
        """E.g. ``surface or contamination, background with``."""
        return f"{' or '.join(self.defects)}, background {self.background}"


@dataclass(frozen=True)
class Constraints:
    """Limits a candidate must meet; ``None`` = no limit."""

    max_false_alarm: float | None = None  # share of the profile's good test images flagged
    min_recall: float | None = None  # share of its anomalous test images flagged
    max_ms_per_image: float | None = None  # the predict stage's time per test image
    max_memory_mib: float | None = None  # the largest peak memory of the model's train/predict processes

    def violations(self, candidate: dict[str, Any]) -> list[str]:
        """What ``candidate`` breaks, each as ``"<what> <value> > <limit> (--flag)"``."""
        checks = (
            ("false alarm", candidate["false_alarm"], self.max_false_alarm, ">", "--max-false-alarm"),
            ("image recall", candidate["image_recall"], self.min_recall, "<", "--min-recall"),
            ("ms per image", candidate["ms_per_image"], self.max_ms_per_image, ">", "--max-ms-per-image"),
            ("memory MiB", candidate["peak_memory_mib"], self.max_memory_mib, ">", "--max-memory-mib"),
        )
        out = []
        for what, value, limit, op, flag in checks:
            if limit is None:
                continue
            broken = value is None or not np.isfinite(value) or (value > limit if op == ">" else value < limit)
            if broken:
                out.append(f"{what} {_fmt(value)} {op} {limit:g} ({flag})")
        return out


@dataclass
class Recommendation:
    """The ranking of one profile: admissible candidates best first, the ones set aside, the comparison."""

    profile: Profile
    n_images: int  # anomalous test images of the profile with a mask (the IoU mean's n)
    n_good: int  # good test images with the profile's background (the false-alarm rate's n)
    candidates: list[dict[str, Any]]
    excluded: list[dict[str, Any]] = field(default_factory=list)
    comparison: dict[str, Any] | None = None  # best vs runner-up (paired bootstrap)
    verdict: str = ""


def _fmt(value: float | None) -> str:
    return "unknown" if value is None or not np.isfinite(value) else f"{value:.3g}"


def profile_images(table: pd.DataFrame, profile: Profile) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(anomalous, good) test rows of ``profile`` (see the module docstring); ``table`` holds one row per
    (model, image) with ``label``, ``background`` and ``defect_categories``.
    """
    wanted = set(profile.defects)
    background = table["background"] == profile.background
    carries = table["defect_categories"].map(lambda value: bool(wanted & set(split_categories(value))))
    anomalous = table[background & (table["label"] == "anomalous") & carries]
    return anomalous, table[background & (table["label"] == "good")]


def profiles_present(table: pd.DataFrame) -> dict[tuple[str, str], int]:
    """(background, defect category) -> number of distinct anomalous test images, for every pair present."""
    out: dict[tuple[str, str], int] = {}
    anomalous = table[table["label"] == "anomalous"].drop_duplicates(["source", "image_id"])
    for background, rows in anomalous.groupby("background", sort=True):
        for category in DEFECT_CATEGORIES:
            n = int(rows["defect_categories"].map(lambda v, c=category: c in split_categories(v)).sum())
            if n:
                out[(str(background), category)] = n
    return out


def candidate_rules(table: pd.DataFrame) -> list[str]:
    """Rules fitted on validation that the per-image rows carry (``iou_<rule>``), in table order."""
    return [r for r in level_rules("pixel") if r != ORACLE and f"iou_{r}" in table]


def _mean_ci(values: np.ndarray, p: EvaluateParams, key: str) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile bootstrap interval: the tables' interval of a mean (:func:`ratio_ci`
    with unit weights); NaNs when empty or without resamples.
    """
    if not len(values):
        return float("nan"), float("nan"), float("nan")
    lo, hi = ratio_ci(values, np.ones(len(values)), p, key)
    return float(values.mean()), lo, hi


def _thresholds(
    docs: dict[tuple[str, str, str], Any], model: str, rule: str, products: set[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """The thresholds of ``model`` at ``rule``, per product: ``{"pixel": t, "image": t, "rule_used": r}`` (the
    stand-in rule's values where the product had no anomalous validation image), for the ``products`` ((source,
    product) pairs) whose test images the profile holds.
    """
    out: dict[str, dict[str, Any]] = {}
    for (source, name, product), doc in docs.items():
        if name != model or (source, product) not in products:
            continue
        pixel = ((doc.pixel or {}).get("at") or {}).get(rule) or {}
        image = (doc.image.get("at") or {}).get(rule) or {}
        key = product if source == "workspace" else f"{source}:{product}"
        out[key] = {"pixel": pixel.get("threshold"), "image": image.get("threshold"), "rule_used": doc.used(rule)}
    return out


def combine_training(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One model's training over its cells' records (``epochs``, ``epochs_rule``, ``epochs_full`` each): the most
    epochs any cell ran, its full profile's length and the rules, joined; empty without records.
    """
    if not runs:
        return {}
    return {
        "epochs": max(int(r["epochs"]) for r in runs),
        "epochs_full": max(int(r["epochs_full"]) for r in runs),
        "epochs_rule": ", ".join(sorted({str(r["epochs_rule"]) for r in runs})),
    }


def short_of_full(training: dict[str, Any]) -> bool:
    """Whether a model (:func:`combine_training`) trained fewer epochs than its full length (a memory bank never)."""
    return bool(training) and training["epochs_rule"] != "one pass" and training["epochs"] < training["epochs_full"]


def training_of(docs: dict[tuple[str, str, str], Any], model: str) -> dict[str, Any]:
    """How ``model`` was trained, over its cells' evaluation records (:func:`combine_training`); empty for a model
    without epochs (SegAD setups).
    """
    return combine_training([doc.training for (_, name, _), doc in docs.items() if name == model and doc.training])


def under_trained(candidates: list[dict[str, Any]]) -> list[str]:
    """``model (epochs of full, rule)`` for each model among ``candidates`` trained shorter than its full length."""
    out: dict[str, str] = {}
    for c in candidates:
        t = c.get("training") or {}
        if short_of_full(t):
            out.setdefault(c["model"], f"{c['model']} ({t['epochs']} of {t['epochs_full']}, {t['epochs_rule']})")
    return list(out.values())


def _cost(costs: dict[str, Any] | None, model: str) -> dict[str, float | None]:
    if costs is None:  # not read (the report: no timing inside a cached artifact)
        return {"fit_seconds": None, "ms_per_image": None, "peak_memory_mib": None}
    block = costs.get(model)
    if block is None:
        raise InputError(COSTS, f"no entry for model {model!r}", "rebuild it with the costs stage (dvc repro)")
    ips = block.get("images_per_second")
    return {
        "fit_seconds": block.get("fit_seconds"),
        "ms_per_image": 1000.0 / ips if ips else None,
        "peak_memory_mib": block.get("peak_rss_mb"),
    }


def score_candidate(
    anomalous: pd.DataFrame, good: pd.DataFrame, model: str, rule: str, profile: Profile, p: EvaluateParams
) -> dict[str, Any]:
    """Accuracy figures of one (model, rule) on the profile's rows of that model (module docstring)."""
    mine, my_good = anomalous[anomalous["model"] == model], good[good["model"] == model]
    values = mine[f"iou_{rule}"].to_numpy(dtype=float)
    scored = np.isfinite(values)
    key = f"recommend:{profile.background}:{'|'.join(profile.defects)}:{model}:{rule}"
    mean, lo, hi = _mean_ci(values[scored], p, key)
    by_category = {}
    for category in profile.defects:
        carries = mine["defect_categories"].map(lambda v, c=category: c in split_categories(v)).to_numpy()
        chosen = values[carries & scored]
        by_category[category] = float(chosen.mean()) if len(chosen) else None
    flagged = mine[f"img_{rule}_pred"].to_numpy(dtype=bool)
    false_alarm = my_good[f"img_{rule}_pred"].to_numpy(dtype=bool)
    return {
        "model": model, "rule": rule, "mean_iou": mean, "ci": [lo, hi], "n_images": int(scored.sum()),
        "mean_iou_by_category": by_category,
        "image_recall": ratio(float(flagged.sum()), float(len(flagged))),
        "false_alarm": ratio(float(false_alarm.sum()), float(len(false_alarm))), "n_good": len(false_alarm),
    }  # fmt: skip


def paired_difference(
    anomalous: pd.DataFrame, best: dict[str, Any], other: dict[str, Any], p: EvaluateParams
) -> dict[str, Any]:
    """mean(IoU_best − IoU_other) over the images both scored, with its paired percentile bootstrap interval."""
    cols = ["source", "image_id"]
    a = anomalous[anomalous["model"] == best["model"]].set_index(cols)[f"iou_{best['rule']}"]
    b = anomalous[anomalous["model"] == other["model"]].set_index(cols)[f"iou_{other['rule']}"]
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    diff = (both["a"] - both["b"]).to_numpy(dtype=float)
    key = f"recommend-paired:{best['model']}:{best['rule']}:{other['model']}:{other['rule']}"
    mean, lo, hi = _mean_ci(diff, p, key)
    holds_zero = not (np.isfinite(lo) and np.isfinite(hi)) or lo <= 0 <= hi
    return {
        "runner_up": {"model": other["model"], "rule": other["rule"]}, "difference": mean, "ci": [lo, hi],
        "n_images": len(diff), "indistinguishable": bool(holds_zero),
    }  # fmt: skip


def runner_up_of(ranked: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best candidate of another model than the first (the choice is a detector), else the next rule of the
    only model; ``None`` with a single candidate.
    """
    others = [c for c in ranked[1:] if c["model"] != ranked[0]["model"]]
    return others[0] if others else (ranked[1] if len(ranked) > 1 else None)


def _verdict(rec: Recommendation) -> str:
    if not rec.candidates:
        return "no candidate meets the constraints"
    best = rec.candidates[0]
    name = f"{best['model']} at {best['rule']}"
    if rec.n_images < MIN_IMAGES:
        return (f"too few images to decide: {rec.n_images} test image(s) of this profile (fewer than {MIN_IMAGES}); "
                f"{name} ranks first, but the ranking may not hold on your product")  # fmt: skip
    if rec.comparison is None:
        return f"{name} is the only candidate"
    other = rec.comparison["runner_up"]
    if rec.comparison["indistinguishable"]:
        return (f"{name} and {other['model']} at {other['rule']} are indistinguishable on these {rec.n_images} "
                "images (the interval of their paired difference holds 0)")  # fmt: skip
    return f"{name}: better than {other['model']} at {other['rule']} on these {rec.n_images} images"


def recommend(
    table: pd.DataFrame,
    docs: dict[tuple[str, str, str], Any],
    costs: dict[str, Any] | None,
    profile: Profile,
    p: EvaluateParams,
    constraints: Constraints | None = None,
) -> Recommendation:
    """Rank every (model, rule) of ``table`` for ``profile`` (module docstring).

    Args:
        table: one row per (source, model, test image) as the evaluate stage writes them, joined with the
            categories (``background``, ``defect_categories``) and a ``source`` column (the run it came from).
        docs: (source, model, product) -> the cell's :class:`~iadbench.evaluation.records.EvaluateRecord`.
        costs: ``reports/costs.json`` (model -> fit seconds, images per second, peak memory); ``None``: costs not
            read (their fields are None and a cost constraint excludes every candidate).
        profile: background and defect categories.
        p: bootstrap resamples, confidence and seed.
        constraints: limits on false alarms, recall, time and memory.

    Raises:
        UsageError: no test image matches the profile (the message lists the profiles present), or no candidate
            meets the constraints (the message says which constraint set aside which candidate).

    """
    constraints = constraints or Constraints()
    anomalous, good = profile_images(table, profile)
    n_images = int(anomalous.drop_duplicates(["source", "image_id"]).shape[0])
    if n_images == 0:
        present = ", ".join(f"{c} on background {b} ({n})" for (b, c), n in profiles_present(table).items())
        raise UsageError(f"no test image is {profile.label}; profiles present (anomalous test images): {present}")
    rows = pd.concat([anomalous, good])
    in_profile = set(zip(rows["source"], rows["product"], strict=True))
    scored = []
    for model in table["model"].drop_duplicates():
        cost, training = _cost(costs, str(model)), training_of(docs, str(model))
        for rule in candidate_rules(table):
            candidate = score_candidate(anomalous, good, str(model), rule, profile, p)
            scored.append({**candidate, "thresholds": _thresholds(docs, str(model), rule, in_profile), **cost,
                           "training": training})  # fmt: skip
    admissible = [c for c in scored if not constraints.violations(c)]
    excluded = [{**c, "excluded_by": constraints.violations(c)} for c in scored if constraints.violations(c)]
    admissible.sort(key=lambda c: (-np.nan_to_num(c["mean_iou"], nan=-1.0), -np.nan_to_num(c["image_recall"]),
                                   np.nan_to_num(c["false_alarm"], nan=1.0), c["model"], c["rule"]))  # fmt: skip
    rec = Recommendation(profile, n_images, int(good.drop_duplicates(["source", "image_id"]).shape[0]), admissible,
                         excluded)  # fmt: skip
    if not admissible:
        reasons = "; ".join(f"{c['model']}/{c['rule']}: {', '.join(c['excluded_by'])}" for c in excluded)
        raise UsageError(f"no (model, rule) meets the constraints for {profile.label}: {reasons}")
    runner_up = runner_up_of(admissible)
    if runner_up is not None:
        rec.comparison = paired_difference(anomalous, admissible[0], runner_up, p)
    rec.verdict = _verdict(rec)
    return rec
