"""The threshold rules, declared where they are fitted: :data:`RULE_TABLE` and :func:`fit_threshold`.

The thresholds and evaluate stages, the tables, the report, its figures, ``threshold.method``'s check and the
README benchmarks all read :data:`RULE_TABLE`, so a new rule is one entry here (and its test).

Rules, fitted on the validation split only (``s ≥ t`` is anomalous; rates as in :mod:`iadbench.metrics.curves`):

- **ROC-T**: argmax_t √(TPR·(1−FPR)); **IoU-T**: argmax_t √(IoU·(1−FPR)); **PR-T**: argmax_t F1 — the three rules
  of [Rethinking] (docs/references.md), which need anomalous validation samples;
- **normal-only rules**, fitted on the *good* validation samples alone — good images (image level) or the pixels of
  the good images (pixel level) — so that a product without anomalous validation images (MVTec AD 2 ships none)
  still gets thresholds. With the good scores ``g_1 … g_n``:

  - **good-FPR** (a quantile at a false-alarm budget): the lowest threshold that flags at most a share b of the good
    samples, b = ``threshold.good_fpr`` (1 % by default); it stands in for the anomalous-sample rules in the
    headline of a product whose validation split has no anomalous sample (the notes and tables say so);
  - **mean + k·σ**: ``t = mean(g) + k·std(g)`` (population σ, ``ddof = 0``), k = ``threshold.good_k`` (3 by
    default) — the "3σ rule" that industrial tools apply to normal scores (e.g. RoBiS, arXiv:2505.21152, binarises
    MVTec AD 2 maps with mean + 3·std);
  - **max good**: the maximum good score, with anomalib's strict ``score > t`` (``F1AdaptiveThreshold``'s fallback
    without anomalous validation samples, anomalib 2.7 ``metrics/threshold/f1_adaptive_threshold.py``): here, where
    ``s ≥ t`` is anomalous, ``t = nextafter(max(g), +∞)`` — no good validation sample is flagged;
  - **quantile × factor** (SuperADD): ``t = Q_q(g) · f``, the q-quantile with linear interpolation (numpy's and
    ``torch.quantile``'s default) times a factor; q = ``threshold.good_quantile`` (0.95), f =
    ``threshold.good_factor`` per level (pixel 1.421, image 1.0) — the values of SuperADD's post-processor
    (anomalib 2.7 ``models/image/super_add/post_processor.py``, from https://github.com/LukasRoom/SuperADD). It
    assumes non-negative scores (a factor > 1 lowers a negative quantile);

- **oracle**: the test-optimal pixel threshold (maximum mean per-image IoU on the test images themselves) — an
  upper bound reported beside the rules, never a result.

Ties between thresholds go to the highest threshold (the first in descending order). A normal-only statistic
(mean, σ, quantile) is computed exactly from the counts: the good samples are the multiset of distinct scores
``thresholds[k]`` with multiplicities ``FP_k − FP_{k−1}``.
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
DEFAULT_OPTIONS: Options = {  # threshold.<key> when not given (the values of params.yaml and of the sources)
    "good_fpr": 0.01,  # the good-FPR budget before it was a param
    "good_k": 3.0,  # mean + 3σ
    "good_quantile": 0.95,  # SuperADD's percentile
    "good_factor": 1.421,  # SuperADD's pixel factor (its image factor is 1.0: threshold.good_factor.image)
}
DEFAULT_GOOD_FPR = DEFAULT_OPTIONS["good_fpr"]
Select = Callable[[Counts, Rates, Options], tuple[float, float]]  # -> (threshold, objective)


def _at_index(c: Counts, k: int) -> float:
    """The threshold at index ``k`` of ``c`` (descending); -1: just above the highest score (nothing flagged)."""
    return float(np.nextafter(c.thresholds[0], np.inf)) if k < 0 else float(c.thresholds[k])


def argmax_rule(goal: Callable[[Rates], np.ndarray]) -> Select:
    """A rule that maximises ``goal`` over thresholds (NaN rates count as 0; ties: the highest threshold)."""

    def select(c: Counts, r: Rates, options: Options) -> tuple[float, float]:
        values = goal({k: np.nan_to_num(v) for k, v in r.items()})
        k = int(np.argmax(values))
        return _at_index(c, k), float(values[k])

    return select


def lowest_within_budget(option: str) -> Select:
    """The lowest threshold whose FPR ≤ ``options[option]`` (the budget); just above every score when even the top
    one exceeds it. Objective: the FPR on the good samples.
    """

    def select(c: Counts, r: Rates, options: Options) -> tuple[float, float]:
        limit = options[option]
        ok = np.flatnonzero(r["fpr"] <= limit + 1e-12)
        k = int(ok[-1]) if len(ok) else -1
        return _at_index(c, k), float(r["fpr"][k]) if k >= 0 else 0.0

    return select


def negative_samples(c: Counts) -> tuple[np.ndarray, np.ndarray]:
    """The negative (good) samples of ``c`` as (distinct scores ascending, multiplicities)."""
    weights = np.diff(c.fp, prepend=0.0)
    keep = weights > 0
    return c.thresholds[keep][::-1], weights[keep][::-1]


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The q-quantile of the multiset (``values`` ascending, integer ``weights``) with linear interpolation —
    exactly ``np.quantile(np.repeat(values, weights), q)`` (numpy's default method), without the repeat.
    """
    n = float(weights.sum())
    position = q * (n - 1)  # 0-based position in the sorted multiset
    lower = int(np.floor(position))
    ends = np.cumsum(weights)  # the sorted multiset's index of each value's last copy is ends - 1
    i = int(np.searchsorted(ends, lower, side="right"))
    j = int(np.searchsorted(ends, min(lower + 1, n - 1), side="right"))
    frac = position - lower
    return float(values[i] + (values[j] - values[i]) * frac) if frac else float(values[i])


def mean_k_sigma(c: Counts, r: Rates, options: Options) -> tuple[float, float]:
    """``mean + k·σ`` of the good samples (population σ); objective: σ."""
    values, weights = negative_samples(c)
    mean = float(np.sum(values * weights) / weights.sum())
    sigma = float(np.sqrt(np.sum(weights * (values - mean) ** 2) / weights.sum()))
    return mean + options["good_k"] * sigma, sigma


def max_good(c: Counts, r: Rates, options: Options) -> tuple[float, float]:
    """Just above the highest good score (anomalib's fallback with its strict ``>``); objective: that score."""
    values, _ = negative_samples(c)
    return float(np.nextafter(values[-1], np.inf)), float(values[-1])


def quantile_times_factor(c: Counts, r: Rates, options: Options) -> tuple[float, float]:
    """``Q_q(good) · f`` (SuperADD); objective: the quantile before the factor."""
    values, weights = negative_samples(c)
    q = weighted_quantile(values, weights, options["good_quantile"])
    return q * options["good_factor"], q


@dataclass(frozen=True)
class Rule:
    """A threshold rule: how it is fitted, named and drawn."""

    name: str  # key in the thresholds/evaluate files, the tables and threshold.method
    label: str  # how tables and figures name it
    objective: str  # the formula, for docs and the thresholds file's readers
    select: Select | None  # (counts, rates per threshold, options) -> (threshold, objective); None: oracle
    needs_anomalous: bool = True  # False: normal-only, fitted on good samples alone (the counts of the good samples)
    headline: bool = True  # may be threshold.method
    figures: bool = True  # the figures stage draws its overlays and thumbnail masks (False: tables only)
    options: tuple[str, ...] = ()  # the threshold.<key> settings it reads
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
             lowest_within_budget("good_fpr"), needs_anomalous=False, marker="x", color="tab:red",
             options=("good_fpr",)),
        Rule("good_ksigma", "mean+kσ (good only)", "mean + threshold.good_k · σ of the good samples", mean_k_sigma,
             needs_anomalous=False, figures=False, marker="P", color="tab:brown", options=("good_k",)),
        Rule("good_max", "max good (good only)", "just above the highest good sample (anomalib's fallback)",
             max_good, needs_anomalous=False, figures=False, marker="v", color="tab:gray"),
        Rule("good_quantile", "quantile×factor (good only, SuperADD)",
             "threshold.good_quantile-quantile of the good samples × threshold.good_factor", quantile_times_factor,
             needs_anomalous=False, figures=False, marker="X", color="tab:olive",
             options=("good_quantile", "good_factor")),
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


def normal_only_rules() -> tuple[str, ...]:
    """Validation rules fitted on good samples alone, in table order."""
    return tuple(n for n in fitted_rules() if not RULE_TABLE[n].needs_anomalous)


STAND_IN = "good_fpr"  # the normal-only rule behind the headline of a product without anomalous validation samples


def good_only_rule() -> str:
    """The normal-only rule that stands in for the headline rule without anomalous samples (:data:`STAND_IN`)."""
    return STAND_IN


def figure_rules() -> tuple[str, ...]:
    """The headline rules the figures stage draws overlays and thumbnail masks for."""
    return tuple(n for n in headline_rules() if RULE_TABLE[n].figures)


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
    """Fit ``rule`` (a validation rule of :data:`RULE_TABLE`) on validation counts ``c``, with ``options`` (missing
    keys: :data:`DEFAULT_OPTIONS`).

    A good-only rule is meant for the counts of the good samples alone (:func:`describe_at` then gives the pooled
    counts at its threshold). Rules that need anomalous samples refuse counts without them (a ``ValueError`` names
    the good-only rule).
    """
    options = {**DEFAULT_OPTIONS, **(options or {})}
    if not len(c.thresholds):
        raise ValueError("no validation samples to fit a threshold on")
    if rule not in fitted_rules():
        raise ValueError(f"unknown threshold rule {rule!r}; valid: {list(fitted_rules())}")
    spec = RULE_TABLE[rule]
    if spec.needs_anomalous and c.n_pos == 0:
        raise ValueError(f"rule {rule!r} needs anomalous validation samples; use {good_only_rule()!r}")
    if not spec.needs_anomalous and c.n_neg == 0:
        raise ValueError(f"{rule} needs good validation samples")
    threshold, objective = spec.select(c, rates(c), options)
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
