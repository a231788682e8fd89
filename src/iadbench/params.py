"""``params.yaml``: one declarative schema (pydantic 2) for every section; each stage reads only its own sections.

Every section is a model with ``extra="forbid"``: an unknown key (``train.epoch``) or an unknown section is an error
that names the file, the key and the valid keys, like a value of the wrong type (``models: padim``) or out of range.
:func:`load_params` checks the whole file against :class:`ParamsFile`, so every stage refuses a bad file before it
does any work; the ``gate_params`` stage (``iadbench check``) depends on the whole file and adds the checks that need
the code of a model, a metric or a product (:mod:`iadbench.checks`).

Constraints are data (scikit-learn's ``validate_params`` idea): ranges are :class:`Range` annotations, choices are
``Literal`` types or the tuples below. This module imports nothing of iadbench but :mod:`iadbench.errors` and
:mod:`iadbench.paths`, so that it is a leaf of every stage's import closure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from iadbench.errors import IadbenchError, ParamsError
from iadbench.paths import PARAMS

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SYNTHETIC_PRODUCTS = ("nut", "weave", "tiles")  # iadbench.synth.products.PRODUCTS (a test keeps them equal)
VALIDATION_STRATEGIES = ("fixed", "early_stopping")
TRAIN_PROFILES = ("demo", "full")  # train.profile: each method's demo (CPU) or full (published) epochs
SEGMENT_SOURCES = ("whole", "grid", "image")
SEGAD_ENSEMBLES = ("all",)
SEGAD_SUFFIX = "+segad"
XGBOOST_OBJECTIVES = ("binary:logitraw", "binary:logistic")
DRIFT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "position": ("rotate", "crop", "perspective"),
    "lighting": ("jitter", "shadow"),
    "camera": ("blur", "noise"),
}  # the order in which a drift plan applies them: the scene moves, the light changes, then the camera sees it
DRIFT_CATEGORY_OF = {name: category for category, names in DRIFT_CATEGORIES.items() for name in names}


# ------------------------------------------------------------------------------------------------ constraints
def _num(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Range:
    """``low ≤ value ≤ high`` (``open`` ends exclusive); ``high`` None is unbounded. The message is the rule."""

    low: float
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def rule(self) -> str:
        """The rule in words: ``>= 1``, ``in (0, 1]``, ``strictly between 0 and 1``."""
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {_num(self.low)}"
        if self.low_open and self.high_open:
            return f"strictly between {_num(self.low)} and {_num(self.high)}"
        return f"in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}{')' if self.high_open else ']'}"

    def contains(self, value: float) -> bool:
        """``value`` lies inside."""
        above = value > self.low if self.low_open else value >= self.low
        return above and (self.high is None or (value < self.high if self.high_open else value <= self.high))

    def __call__(self, value: Any) -> Any:
        """``value`` when inside, else the pydantic error that :func:`describe` turns into the key's line."""
        if not self.contains(value):
            raise PydanticCustomError("range", "must be {rule}, got {value}", {"rule": self.rule(), "value": value})
        return value


def ranged(kind: Any, low: float, high: float | None = None, low_open: bool = False, high_open: bool = False) -> Any:
    """``kind`` constrained to a :class:`Range`."""
    return Annotated[kind, AfterValidator(Range(low, high, low_open, high_open))]


Float = Annotated[float, Field(strict=True)]  # a YAML number (an int is a float), never a string or a bool
Seed = ranged(StrictInt, 0, 2**32 - 1)
Count = ranged(StrictInt, 1)
Fraction = ranged(Float, 0.0, 1.0, True, True)


def _pair(low: float, high: float) -> Any:
    """A ``[lo, hi]`` pair with ``low ≤ lo ≤ hi ≤ high``."""

    def check(value: tuple[float, float]) -> tuple[float, float]:
        lo, hi = value
        if not (low <= lo <= hi <= high):
            raise PydanticCustomError(
                "pair", "must satisfy {low} <= low <= high <= {high}, got [{lo}, {hi}]",
                {"low": low, "high": high, "lo": lo, "hi": hi},
            )  # fmt: skip
        return (float(lo), float(hi))

    return Annotated[tuple[Float, Float], AfterValidator(check)]


def _distinct(what: str) -> Any:
    def check(value: tuple) -> tuple:
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            raise PydanticCustomError("distinct", "lists {what} twice: {twice}", {"what": what, "twice": twice})
        return value

    return AfterValidator(check)


def _invalid(message: str, **context: Any) -> PydanticCustomError:
    return PydanticCustomError("rule", message.format(**context))


class Section(BaseModel):
    """A section of ``params.yaml``: unknown keys are errors; instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    section: ClassVar[str] = ""
    optional: ClassVar[bool] = False

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "params.yaml") -> Any:
        """Validate this section of ``params`` (the whole file's dict)."""
        name = cls.section
        if name not in params and cls.optional:
            return cls()
        return validate(cls, params.get(name), source, (name,))


# ------------------------------------------------------------------------------------------------ sections
class DataParams(Section):
    """``data``: the datasets under ``data/raw`` a run evaluates, their products (the matrix cells), the input size.

    ``datasets`` is a list (``data.dataset: NAME``, the older single form, is the one-element list). A *cell* is a
    product as ``data.products`` writes it: a bare name (``nut``) when the run has one dataset, or
    ``<dataset>/<product>`` (``btad/01``), required with several datasets. Cells name every per-product path
    (``models/<model>/<cell>``, ``data/maps/<model>/<cell>.npz``), so a dataset's cells never collide with another's,
    and they are the ``product`` column of every table (with a ``dataset`` column beside it); image ids carry the
    same prefix (``btad/01/test/ko/000.bmp``).
    """

    section: ClassVar[str] = "data"
    optional: ClassVar[bool] = False
    datasets: Annotated[tuple[StrictStr, ...], Field(min_length=1), _distinct("a dataset")]
    products: Annotated[tuple[Annotated[StrictStr, Field(min_length=1)], ...], _distinct("a product")] = ()
    image_size: ranged(StrictInt, 32, 1024)  # one input size for every model; anomaly maps are stored at it

    @model_validator(mode="before")
    @classmethod
    def _single_form(cls, value: Any) -> Any:
        if not isinstance(value, dict) or "dataset" not in value:
            return value
        value = dict(value)
        single = value.pop("dataset")
        if "datasets" in value and [single] != value["datasets"]:
            raise _invalid(
                "data.dataset ({single!r}) and data.datasets ({many!r}) are both set and disagree: keep "
                "data.datasets (data.dataset=X is the one-element data.datasets=[X])",
                single=single, many=value["datasets"],
            )  # fmt: skip
        value.setdefault("datasets", [single])
        return value

    @field_validator("datasets")
    @classmethod
    def _names(cls, datasets: tuple[str, ...]) -> tuple[str, ...]:
        for dataset in datasets:
            if not DATASET_NAME.match(dataset):
                raise _invalid("{d!r} must be a plain folder name (letters, digits, _ . -)", d=dataset)
        if "all" in datasets:
            raise _invalid("'all' is reserved (the tables' rows that pool every dataset)")
        return datasets

    @model_validator(mode="after")
    def _cells(self) -> DataParams:
        if not self.qualified:
            return self
        bare = [p for p in self.products if "/" not in p]
        if bare:
            raise _invalid(
                "products: with several datasets (or any product written dataset/product) every product is written "
                "<dataset>/<product>; got {bare}", bare=bare,
            )  # fmt: skip
        for cell in self.products:
            dataset, _, product = cell.partition("/")
            if not (dataset in self.datasets and product and "/" not in product):
                raise _invalid("products: {cell!r} must be <dataset>/<product> with a dataset of data.datasets "
                               "{datasets}", cell=cell, datasets=list(self.datasets))  # fmt: skip
        unused = [d for d in self.datasets if not any(c.startswith(f"{d}/") for c in self.products)]
        if unused:
            raise _invalid("data.datasets: {unused} have no product in data.products", unused=unused)
        return self

    @property
    def qualified(self) -> bool:
        """Cells are written ``<dataset>/<product>`` (several datasets, or the user wrote them so)."""
        return len(self.datasets) > 1 or any("/" in p for p in self.products)

    @property
    def dataset(self) -> str:
        """The run's only dataset (for verbs that work on one); an error when there are several."""
        if len(self.datasets) != 1:
            raise ParamsError(f"data.datasets lists {list(self.datasets)}: name one (--dataset)")
        return self.datasets[0]

    def cell(self, dataset: str, product: str) -> str:
        """The cell id of ``product`` of ``dataset``: ``<dataset>/<product>`` when qualified, else ``product``."""
        return f"{dataset}/{product}" if self.qualified else product

    def dataset_of(self, cell: str) -> str:
        """The dataset of a cell id."""
        return cell.partition("/")[0] if self.qualified else self.datasets[0]

    def prefix(self, dataset: str) -> str:
        """What cell ids and image ids of ``dataset`` start with (``""`` in a one-dataset run of bare names)."""
        return f"{dataset}/" if self.qualified else ""


class SynthesizeParams(Section):
    """``synthesize``: sizes and seed of the embedded synthetic dataset (sizes ≥ 32 px, 1–9 annotators)."""

    section: ClassVar[str] = "synthesize"
    optional: ClassVar[bool] = False
    seed: Seed
    image_size: ranged(StrictInt, 32, 1024)
    n_train: ranged(StrictInt, 2)
    n_test_good: ranged(StrictInt, 2)
    n_test_per_defect: Count
    annotators: ranged(StrictInt, 1, 9)
    annotator_error: ranged(Float, 0.0, 0.5, False, True)
    products: Annotated[tuple[Literal[SYNTHETIC_PRODUCTS], ...], Field(min_length=1), _distinct("a product")]


VALIDATION_SOURCES = ("from_test", "shipped")  # split.validation: drawn from the test images | the dataset's own


class SplitParams(Section):
    """``split``: validation fraction of each product's test images, the seed, and the share of noisy train labels.

    ``0 < val_fraction < 1``: 0 leaves no data to fit thresholds, 1 none to test on.
    """

    section: ClassVar[str] = "split"
    optional: ClassVar[bool] = False
    seed: Seed
    val_fraction: Fraction
    train_noise: ranged(Float, 0.0, 1.0, False, True) = 0.0  # share of each product's train images replaced by
    # anomalous ones (noise study)
    validation: Literal[VALIDATION_SOURCES] = "from_test"  # where the validation split comes from


class GateParams(Section):
    """``gates``: how strict the validation gates are where a choice is reasonable."""

    section: ClassVar[str] = "gates"
    optional: ClassVar[bool] = False
    empty_mask: Literal["warn", "fail"]  # an anomalous image whose mask has no foreground pixel


class BackboneParams(Section):
    """``backbone``: the shared feature extractor (a timm name, its weights, the feature layers)."""

    section: ClassVar[str] = "backbone"
    optional: ClassVar[bool] = False
    name: StrictStr
    weights: StrictStr  # package | hub | none | path/to/file
    layers: Annotated[tuple[StrictStr, ...], Field(min_length=1)]


@dataclass(frozen=True)
class ModelParams:
    """``data.image_size`` (one input size for every model) and ``backbone`` (name, layers, weights)."""

    image_size: int
    backbone: str
    layers: tuple[str, ...]
    weights: str

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "params.yaml") -> ModelParams:
        """The two sections, validated."""
        data, backbone = DataParams.from_params(params, source), BackboneParams.from_params(params, source)
        return cls(data.image_size, backbone.name, backbone.layers, backbone.weights)


def _deterministic(value: Any) -> Any:
    if value is True or value is False or value == "warn":
        return value
    raise PydanticCustomError("choice", "must be true, false or warn, got {value!r}", {"value": value})


class TrainParams(Section):
    """``train``: seed, training length (profile, or one epoch count for every trained method), batch size, loader
    workers, determinism, validation strategy, training regime. A method's own ``model_options.<m>.epochs`` wins over
    both (:func:`iadbench.models.registry.training_epochs`).
    """

    section: ClassVar[str] = "train"
    optional: ClassVar[bool] = False
    seed: Seed
    profile: Literal[TRAIN_PROFILES] = "demo"  # each method's epochs: full (published/anomalib) or demo (CPU)
    epochs: Count | None = None  # one count for every trained method (None: train.profile decides)
    batch_size: Count
    num_workers: ranged(StrictInt, 0)
    deterministic: Annotated[bool | str, BeforeValidator(_deterministic)] = (
        "warn"  # Lightning's flag (deterministic where supported)
    )
    validation: Literal[VALIDATION_STRATEGIES] = "fixed"  # fixed: the resolved epochs, no validation; early_stopping:
    # on validation image AUROC
    patience: Count = 3  # early_stopping: epochs without improvement before stopping (the best epoch is kept)
    unified: StrictBool = False  # one model per method on the train images of every product of the dataset


class GoodFactor(BaseModel):
    """``threshold.good_factor``: quantile × factor's factor per level (SuperADD: pixel 1.421, image 1.0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    pixel: ranged(Float, 0.0, None, True)
    image: ranged(Float, 0.0, None, True)


class ThresholdParams(Section):
    """``threshold``: the rule behind the headline numbers (every rule is fitted and reported regardless), the
    normal-only rules' settings, and how many anomalous validation images fit them (the thresholds stage reads every
    key but ``method``).

    The valid names are the headline rules of :mod:`iadbench.metrics.rules` (checked by ``iadbench check``
    and by the stages that read it, so that this module stays a leaf).
    """

    section: ClassVar[str] = "threshold"
    optional: ClassVar[bool] = False
    method: StrictStr
    good_fpr: Fraction  # good-FPR's false-alarm budget (share of good validation images or pixels)
    # required, as every key a stage declares (DVC refuses a stage param missing from params.yaml)
    good_k: ranged(Float, 0.0, None, True)  # mean + k·σ of the good samples (k > 0)
    good_quantile: Fraction  # quantile × factor: the quantile (SuperADD: 0.95)
    good_factor: GoodFactor  # ... and the factor per level
    anomalous_images: Literal["all"] | ranged(StrictInt, 0)  # per product, for fitting (0: normal-only rules only)
    seed: Seed  # which anomalous validation images, when not all

    def options(self) -> dict[str, float]:
        """The rules' settings (:func:`iadbench.metrics.rules.fit_threshold`'s ``options``), factor per level aside."""
        return {"good_fpr": self.good_fpr, "good_k": self.good_k, "good_quantile": self.good_quantile}


class EvaluateParams(Section):
    """``evaluate``: AUPRO's FPR limit, the bootstrap behind the confidence intervals (0 resamples: none), and
    whether masks accepted unchanged from a detector's pre-drawn regions count in pixel figures.
    """

    section: ClassVar[str] = "evaluate"
    optional: ClassVar[bool] = False
    aupro_fpr_limit: ranged(Float, 0.0, 1.0, True, False)
    bootstrap: ranged(StrictInt, 0)
    confidence: Fraction
    seed: Seed
    exclude_prefill_accepted: StrictBool

    def excluded_mask_sources(self) -> tuple[str, ...]:
        """Mask sources left out of pixel thresholds and metrics: a mask a person accepted unchanged from a
        detector's pre-drawn regions favours that detector (``exclude_prefill_accepted``, on by default).
        """
        return ("prefill_accepted",) if self.exclude_prefill_accepted else ()


class DriftParams(Section):
    """``drift``: the transform pool (empty: no drift, the default), how many per image, ranges, seed.

    A missing section means no drift. The transforms and their categories are :data:`DRIFT_CATEGORIES`.
    """

    section: ClassVar[str] = "drift"
    optional: ClassVar[bool] = True
    transforms: Annotated[tuple[StrictStr, ...], _distinct("a transform")] = ()
    max_per_image: ranged(StrictInt, 1, len(DRIFT_CATEGORIES)) = 2
    seed: Seed = 0
    blur_sigma: _pair(0.01, 10.0) = (0.1, 1.5)
    noise_scale: _pair(0.0, 1.0) = (0.01, 0.05)
    jitter: _pair(0.01, 5.0) = (0.5, 1.5)
    shadow_layers: ranged(StrictInt, 1, 10) = 3
    shadow_opacity: _pair(0.0, 1.0) = (0.3, 0.7)
    rotate_degrees: ranged(Float, 0.0, 45.0) = 5.0
    crop_scale: _pair(0.1, 1.0) = (0.8, 1.0)
    perspective: ranged(Float, 0.0, 0.9) = 0.2

    @field_validator("transforms")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [n for n in names if n not in DRIFT_CATEGORY_OF]
        if unknown:
            valid = ", ".join(f"{n} ({c})" for n, c in DRIFT_CATEGORY_OF.items())
            raise _invalid("unknown transform(s) {unknown}; valid: {valid}", unknown=unknown, valid=valid)
        return names

    @property
    def categories(self) -> tuple[str, ...]:
        """The categories of the pool, in the order a plan applies them."""
        return tuple(c for c in DRIFT_CATEGORIES if any(DRIFT_CATEGORY_OF[t] == c for t in self.transforms))

    @property
    def on(self) -> bool:
        """True when test images drift (a non-empty transform pool)."""
        return bool(self.transforms)


class XGBoostParams(Section):
    """``segad.xgboost``: the paper's boosted random forest (Baitieva et al., CVPR 2024, §4); every key required."""

    section: ClassVar[str] = "xgboost"
    optional: ClassVar[bool] = False
    n_estimators: ranged(StrictInt, 1, 10_000)
    num_parallel_tree: ranged(StrictInt, 1, 10_000)
    learning_rate: ranged(Float, 0.0, 1.0, True)
    objective: Literal[XGBOOST_OBJECTIVES]
    max_depth: ranged(StrictInt, 1, 32)
    colsample_bytree: ranged(Float, 0.0, 1.0, True)
    colsample_bynode: ranged(Float, 0.0, 1.0, True)
    subsample: ranged(Float, 0.0, 1.0, True)
    reg_alpha: ranged(Float, 0.0, 1e6)


class SegadSection(Section):
    """``segad`` as written: SegAD (Baitieva, Hurych, Besnier, Bernard, "Supervised Anomaly Detection for Complex
    Industrial Images", CVPR 2024) on the maps of the selected detectors (cross-checked against ``models`` by
    :class:`SegadParams`). ``detectors`` empty = SegAD off (the split and every detector are then exactly those of a
    run without it).
    """

    section: ClassVar[str] = "segad"
    optional: ClassVar[bool] = True
    detectors: Annotated[tuple[StrictStr, ...], _distinct("a detector")] = ()  # each gives the setup <detector>+segad
    ensembles: tuple[Literal[SEGAD_ENSEMBLES], ...] = ()  # ("all",): also all+segad, one BRF on every detector's maps
    brf_fraction: Fraction = (
        0.5  # share of each product's train/good images whose maps train the BRF (not the detector)
    )
    shots: ranged(StrictInt, 0) = 0  # real anomalous images per product for the BRF (0 = one-class: disturbances)
    synthetic_per_image: Count = 1  # one-class: disturbed copies of each BRF good image
    segments: Literal[SEGMENT_SOURCES] = "grid"  # whole | grid | image (<product>/segments.png of the dataset)
    grid: ranged(StrictInt, 1, 16) = 2  # K: the grid source's K x K cells
    seed: Seed = 0
    detector_score: StrictBool = False  # also feed each detector's own image score (the authors' code does; the
    # paper lists the K·L·4 statistics only)
    xgboost: XGBoostParams | None = None

    @model_validator(mode="after")
    def _ensembles(self) -> SegadSection:
        if self.ensembles and len(self.detectors) < 2:
            raise _invalid("ensembles: all+segad combines K > 1 detectors, but segad.detectors has {n}",
                           n=len(self.detectors))  # fmt: skip
        return self


class SegadParams(SegadSection):
    """``segad`` checked against ``models``, with the XGBoost parameters as sorted ``(name, value)`` pairs (what the
    BRF is given); ``SegadParams()`` is SegAD off.
    """

    xgboost: tuple[tuple[str, Any], ...] = ()  # type: ignore[assignment]

    @property
    def on(self) -> bool:
        """SegAD runs (some detector is selected)."""
        return bool(self.detectors)

    @property
    def setups(self) -> tuple[str, ...]:
        """Registry names of the SegAD setups: ``<detector>+segad`` for each detector, then ``all+segad``."""
        return tuple(f"{d}{SEGAD_SUFFIX}" for d in (*self.detectors, *self.ensembles))

    def detectors_of(self, setup: str) -> list[str]:
        """The detectors whose maps a setup reads: ``D+segad`` → [D]; ``all+segad`` → every ``segad.detectors``."""
        if setup not in self.setups:
            raise IadbenchError(f"unknown SegAD setup {setup!r}; this run's setups (params segad): {list(self.setups)}")
        base = setup.removesuffix(SEGAD_SUFFIX)
        return list(self.detectors) if base in self.ensembles else [base]

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "params.yaml") -> SegadParams:
        """Validate the section (:class:`SegadSection`: a missing section is SegAD off) and that every detector is a
        name of ``models``; the XGBoost parameters are required when the section is given.
        """
        if "segad" not in params:
            return cls()
        s = SegadSection.from_params(params, source)
        if s.xgboost is None:
            raise ParamsError(f"{source}: segad.xgboost is missing (the BRF's XGBoost parameters)")
        models = [str(m) for m in params.get("models") or []]
        unknown = [d for d in s.detectors if d not in models]
        if unknown:
            raise ParamsError(f"{source}: segad.detectors: {unknown} not in models {models} (SegAD reads the maps of "
                              "run models)")  # fmt: skip
        return cls(**s.model_dump(exclude={"xgboost"}), xgboost=tuple(sorted(s.xgboost.model_dump().items())))


EXPORT_FORMATS = ("torch", "onnx", "openvino")  # iadbench.deploy.bundle.FORMATS (a test keeps them equal)


class ExportCell(BaseModel):
    """One (model, product, rule, format) that the ``export`` stage keeps exported (``iadbench export``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    model: StrictStr
    product: StrictStr
    rule: StrictStr
    format: Literal["torch", "onnx", "openvino"] = "onnx"


class ExportParams(Section):
    """``export``: the cells the ``export`` stage writes to ``exports/<model>/<product>/<rule>-<format>`` (an empty
    list: no export stage). Model, product and rule are checked when the stage runs (a trained cell, a fitted rule).
    """

    section: ClassVar[str] = "export"
    cells: tuple[ExportCell, ...] = ()


class ParamsFile(BaseModel):
    """The whole of ``params.yaml``: every section, no other (``model_options`` is checked per model by the
    registry, through ``iadbench check`` and the train stage: its keys are the options each model declares).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    data: DataParams
    synthesize: SynthesizeParams
    split: SplitParams
    gates: GateParams
    threshold: ThresholdParams
    evaluate: EvaluateParams
    models: Annotated[tuple[StrictStr, ...], Field(min_length=1), _distinct("a model")]
    backbone: BackboneParams
    train: TrainParams
    drift: DriftParams = DriftParams()
    segad: SegadSection = SegadSection()
    export: ExportParams = ExportParams()
    model_options: dict[StrictStr, dict[StrictStr, Any] | None] = {}


# ------------------------------------------------------------------------------------------------ errors
_KINDS = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "string_type": "a string", "bool_type": "true or false",
    "bool_parsing": "true or false", "tuple_type": "a list", "list_type": "a list", "dict_type": "a mapping",
    "model_type": "a mapping", "model_attributes_type": "a mapping",
}  # fmt: skip


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The section model that holds the key at ``loc`` (to list its valid keys)."""
    for key in loc:
        field = model.model_fields.get(str(key)) if isinstance(key, str) else None
        annotation = getattr(field, "annotation", None)
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def describe(
    exc: ValidationError, model: type[BaseModel], source: str, prefix: tuple = (), sections_optional: bool = False
) -> str:
    """One line per problem: ``params.yaml: train.epoch: unknown key; valid: [...]`` (file, key, rule);
    ``sections_optional``: a missing section is no problem (the stage that reads it names it).
    """
    lines = []
    errors = [e for e in exc.errors() if not (sections_optional and e["type"] == "missing" and len(e["loc"]) == 1)]
    deeper = {tuple(e["loc"][:-1]) for e in errors if e["type"] != "too_short"}
    for error in errors:
        kind = error["type"]
        if kind == "too_short" and tuple(error["loc"]) in {d[: len(error["loc"])] for d in deeper}:
            continue  # a list whose items were refused: the items' lines say why
        loc = tuple(x for x in error["loc"] if not (isinstance(x, str) and ("[" in x or x.startswith("function-"))))
        key = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in (*prefix, *loc)).lstrip(".")
        where = f"{source}: {key}" if key else source
        if kind == "extra_forbidden":
            parent = _model_at(model, loc[:-1])
            valid = sorted(parent.model_fields) if parent is not None else []
            what = "section" if not prefix and len(loc) == 1 else "key"
            lines.append(f"{where}: unknown {what}; valid: {valid}")
        elif kind == "missing":
            lines.append(f"{where} is missing")
        elif kind in _KINDS:
            lines.append(f"{where} must be {_KINDS[kind]}, got {error['input']!r}")
        elif kind in ("literal_error", "enum"):
            expected = error.get("ctx", {}).get("expected", "")
            lines.append(f"{where} must be one of {expected}, got {error['input']!r}")
        elif kind == "too_short":
            lines.append(f"{where} must be a non-empty list, got {error['input']!r}")
        elif kind in ("range", "pair", "choice"):
            lines.append(f"{where} {error['msg']}")
        else:
            lines.append(f"{where}: {error['msg']}")
    return "\n".join(dict.fromkeys(lines))


def validate(
    model: type[BaseModel], value: Any, source: str, prefix: tuple = (), sections_optional: bool = False
) -> Any:
    """``model.model_validate(value)``, a failure as a :class:`ParamsError` naming the file and each key."""
    if value is None and prefix:
        raise ParamsError(f"{source}: section '{'.'.join(prefix)}' is missing or empty")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        if message := describe(exc, model, source, prefix, sections_optional):
            raise ParamsError(message) from None
        return None


def load_params(path: str | Path = PARAMS, check: bool = True, complete: bool = False) -> dict[str, Any]:
    """Read ``params.yaml`` as a dict, checked against :class:`ParamsFile`: every section given, every key of it,
    no other section (``complete``: every section present too, as ``iadbench check`` requires; without it the stage
    that reads a missing section names it). ``check=False``: only parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found (run from the repository root)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: must be a mapping of sections")
    if check:
        validate(ParamsFile, data, str(path), sections_optional=not complete)
        SegadParams.from_params(data, str(path))
    return data


def evaluated_models(params: dict[str, Any]) -> list[str]:
    """Every name the evaluation stages read: ``models``, then the SegAD setups (:class:`SegadParams`)."""
    return [str(m) for m in params.get("models") or []] + list(SegadParams.from_params(params).setups)
