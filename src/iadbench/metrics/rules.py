"""The threshold rules, declared where they are fitted: :data:`RULE_TABLE` and :func:`fit_threshold`.

The thresholds and evaluate stages, the tables, the report, its figures, ``threshold.method``'s check and the
README benchmarks all read :data:`RULE_TABLE`, so a new rule is one entry here (and its test).

Rules, fitted on the validation split only (``s ≥ t`` is anomalous; rates as in :mod:`iadbench.metrics.curves`):

- **ROC-T**: argmax_t √(TPR·(1−FPR)); **IoU-T**: argmax_t √(IoU·(1−FPR)); **PR-T**: argmax_t F1 — the three rules
  of [Rethinking] (docs/references.md), which need anomalous validation samples;
- **good-FPR** (good-only, a false-alarm budget): the lowest threshold that flags at most a share b of the *good*
  validation samples — good images (image level) or the pixels of the good images (pixel level) — with b =
  ``threshold.good_fpr`` (1 % by default); fitted always, usable as ``threshold.method``, and standing in for the
  others on a product whose validation split has no anomalous sample;
- **oracle**: the test-optimal pixel threshold (maximum mean per-image IoU on the test images themselves) — an
  upper bound reported beside the rules, never a result.

Ties between thresholds go to the highest threshold (the first in descending order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from iadbench.metrics.counts import Counts, safe_divide
from iadbench.metrics.curves import rates

_div = safe_divide

Rates = dict[str, np.ndarray]


Options = dict[str, float]  # a rule's settings from params.yaml's ``threshold`` section (e.g. the budget good_fpr)
DEFAULT_GOOD_FPR = 0.01  # threshold.good_fpr when not given: the good-only rule's budget before it was a param
Select = Callable[[Rates, Options], tuple[int, float]]


def argmax_rule(goal: Callable[[Rates], np.ndarray]) -> Select:
    """A rule that maximises ``goal`` over thresholds (NaN rates count as 0; ties: the highest threshold)."""

    def select(r: Rates, options: Options) -> tuple[int, float]:
        values = goal({k: np.nan_to_num(v) for k, v in r.items()})
        k = int(np.argmax(values))
        return k, float(values[k])

    return select


def lowest_within_budget(option: str) -> Select:
    """The lowest threshold whose FPR ≤ ``options[option]`` (the budget); index -1 (above every score) when even the
    top one exceeds it.
    """

    def select(r: Rates, options: Options) -> tuple[int, float]:
        limit = options[option]
        ok = np.flatnonzero(r["fpr"] <= limit + 1e-12)
        k = int(ok[-1]) if len(ok) else -1
        return k, float(r["fpr"][k]) if k >= 0 else 0.0

    return select


@dataclass(frozen=True)
class Rule:
    """A threshold rule: how it is fitted, named and drawn."""

    name: str  # key in the thresholds/evaluate files, the tables and threshold.method
    label: str  # how tables and figures name it
    objective: str  # the formula, for docs and the thresholds file's readers
    select: Select | None  # (rates per threshold, options) -> (index, objective); None: oracle
    needs_anomalous: bool = True  # False: fitted on good samples alone (the counts of the good samples only)
    headline: bool = True  # may be threshold.method
    levels: tuple[str, ...] = ("image", "pixel")
    marker: str = "d"  # matplotlib marker and colour of its point on the report's curves
    color: str = "k"


RULE_TABLE: dict[str, Rule] = {
    r.name: r
    for r in (
        Rule("roc", "ROC-T", "argmax √(TPR·(1−FPR))", argmax_rule(lambda r: np.sqrt(r["tpr"] * (1 - r["fpr"]))),
             marker="o", color="tab:blue"),
        Rule("iou", "IoU-T", "argmax √(IoU·(1−FPR))", argmax_rule(lambda r: np.sqrt(r["iou"] * (1 - r["fpr"]))),
             marker="s", color="tab:orange"),
        Rule("pr", "PR-T", "argmax F1", argmax_rule(lambda r: r["f1"]), marker="^", color="tab:green"),
        Rule("good_fpr", "good-FPR (good only)", "lowest t flagging ≤ threshold.good_fpr of the good samples",
             lowest_within_budget("good_fpr"), needs_anomalous=False, marker="x", color="tab:red"),
        Rule("oracle", "oracle (upper bound)", "argmax mean per-image IoU on test", None, headline=False,
             levels=("pixel",), marker="*", color="tab:purple"),
    )
}  # fmt: skip


def fitted_rules() -> tuple[str, ...]:
    """Rules fitted on validation (every rule but the oracle), in table order."""
    return tuple(n for n, r in RULE_TABLE.items() if r.select is not None)


def anomalous_rules() -> tuple[str, ...]:
    """Validation rules that need anomalous samples (roc, iou, pr)."""
    return tuple(n for n in fitted_rules() if RULE_TABLE[n].needs_anomalous)


def good_only_rule() -> str:
    """The rule fitted on good samples alone, which stands in for the others without anomalous samples."""
    (name,) = (n for n in fitted_rules() if not RULE_TABLE[n].needs_anomalous)
    return name


def headline_rules() -> tuple[str, ...]:
    """The values ``threshold.method`` accepts."""
    return tuple(n for n, r in RULE_TABLE.items() if r.headline)


def headline_method(params: dict[str, Any], source: str = "params.yaml") -> str:
    """``threshold.method``, checked against :func:`headline_rules` (the schema in :mod:`iadbench.params` knows only
    that it is a string: the rules live here).
    """
    from iadbench.errors import ParamsError
    from iadbench.params import ThresholdParams

    method = ThresholdParams.from_params(params, source).method
    if method not in headline_rules():
        raise ParamsError(f"{source}: threshold.method must be one of {list(headline_rules())}, got {method!r}")
    return method


def level_rules(level: str) -> tuple[str, ...]:
    """Every rule evaluated at ``level`` (image or pixel), in table order; the oracle is pixel-only and last."""
    return tuple(n for n, r in RULE_TABLE.items() if level in r.levels)


def rule_label(name: str) -> str:
    """The display name of a rule."""
    return RULE_TABLE[name].label


@dataclass(frozen=True)
class FittedThreshold:
    """A threshold chosen by a rule, with the counts and rates behind it (written to the thresholds file)."""

    rule: str
    threshold: float
    objective: float
    tp: float
    fp: float
    fn: float
    tn: float
    tpr: float
    fpr: float
    precision: float
    f1: float
    iou: float

    def to_dict(self) -> dict:
        """Flat, JSON-ready."""
        return asdict(self)


def fit_threshold(c: Counts, rule: str, options: Options | None = None) -> FittedThreshold:
    """Fit ``rule`` (a validation rule of :data:`RULE_TABLE`) on validation counts ``c``, with ``options`` (default:
    ``{"good_fpr": DEFAULT_GOOD_FPR}``).

    A good-only rule is meant for the counts of the good samples alone (:func:`describe_at` then gives the pooled
    counts at its threshold). Rules that need anomalous samples refuse counts without them (a ``ValueError`` names
    the good-only rule).
    """
    options = {"good_fpr": DEFAULT_GOOD_FPR, **(options or {})}
    if not len(c.thresholds):
        raise ValueError("no validation samples to fit a threshold on")
    if rule not in fitted_rules():
        raise ValueError(f"unknown threshold rule {rule!r}; valid: {list(fitted_rules())}")
    spec = RULE_TABLE[rule]
    if spec.needs_anomalous and c.n_pos == 0:
        raise ValueError(f"rule {rule!r} needs anomalous validation samples; use {good_only_rule()!r}")
    if not spec.needs_anomalous and c.n_neg == 0:
        raise ValueError(f"{rule} needs good validation samples")
    k, objective = spec.select(rates(c), options)
    threshold = float(np.nextafter(c.thresholds[0], np.inf)) if k < 0 else float(c.thresholds[k])
    return describe_at(c, rule, threshold, objective)


def describe_at(c: Counts, rule: str, threshold: float, objective: float) -> FittedThreshold:
    """The counts and rates of ``c`` at ``threshold`` (samples with score ≥ threshold are flagged), for the
    thresholds file: a good-only rule fitted on the good samples is described on the pooled validation counts.
    """
    # the last index with thresholds[k] ≥ threshold (they are in descending order); -1: none
    k = int(np.searchsorted(-c.thresholds, -threshold, side="right")) - 1
    tp, fp = (float(c.tp[k]), float(c.fp[k])) if k >= 0 else (0.0, 0.0)
    fn, tn = c.n_pos - tp, c.n_neg - fp
    return FittedThreshold(
        rule, threshold, objective, tp, fp, fn, tn,
        float(_div(tp, c.n_pos)), float(_div(fp, c.n_neg)), float(_div(tp, tp + fp)),
        float(_div(2 * tp, 2 * tp + fp + fn)), float(_div(tp, tp + fp + fn)),
    )  # fmt: skip
