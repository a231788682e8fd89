"""Typed, range-checked views of ``params.yaml``; each stage reads only its own sections."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from iadbench.errors import ParamsError
from iadbench.paths import PARAMS

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def load_params(path: str | Path = PARAMS) -> dict[str, Any]:
    """Read ``params.yaml`` as a dict; a missing or malformed file is a :class:`ParamsError`."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found (run from the repository root)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: must be a mapping of sections")
    return data


def _section(params: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    section = params.get(name)
    if not isinstance(section, dict):
        raise ParamsError(f"{source}: section '{name}' is missing or not a mapping")
    return section


def _get(section: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in section:
        raise ParamsError(f"{where}.{key} is missing")
    value = section[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ParamsError(f"{where}.{key} must be {kind.__name__}, got {value!r}")
    return value


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ParamsError(message)


@dataclass(frozen=True)
class DataParams:
    """``data``: the datasets under ``data/raw`` a run evaluates, and their products (the matrix cells).

    ``datasets`` is a list (``data.dataset: NAME``, the older single form, is the one-element list). A *cell* is a
    product as ``data.products`` writes it: a bare name (``nut``) when the run has one dataset, or
    ``<dataset>/<product>`` (``btad/01``), required with several datasets. Cells name every per-product path
    (``models/<model>/<cell>``, ``data/maps/<model>/<cell>.npz``), so a dataset's cells never collide with another's,
    and they are the ``product`` column of every table (with a ``dataset`` column beside it); image ids carry the
    same prefix (``btad/01/test/ko/000.bmp``).
    """

    datasets: tuple[str, ...]
    products: tuple[str, ...]

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "params.yaml") -> DataParams:
        """Validate ``data.datasets`` (folder names) and ``data.products`` (cells, see the class docstring)."""
        s = _section(params, "data", source)
        w = f"{source}: data"
        if "datasets" in s:
            raw = s["datasets"]
            _check(isinstance(raw, list) and len(raw) > 0 and all(isinstance(d, str) for d in raw),
                   f"{w}.datasets must be a non-empty list of dataset names, got {raw!r}")  # fmt: skip
            if "dataset" in s:
                _check(
                    [s["dataset"]] == raw,
                    f"{w}.dataset ({s['dataset']!r}) and data.datasets ({raw!r}) are both set and disagree: keep "
                    "data.datasets (data.dataset=X is the one-element data.datasets=[X])",
                )
            datasets = tuple(raw)
        elif "dataset" in s:
            datasets = (_get(s, "dataset", str, w),)
        else:
            raise ParamsError(f"{w}.datasets is missing (a list of folders under data/raw)")
        for dataset in datasets:
            _check(bool(DATASET_NAME.match(dataset)),
                   f"{w}.datasets: {dataset!r} must be a plain folder name (letters, digits, _ . -)")  # fmt: skip
        _check(len(set(datasets)) == len(datasets), f"{w}.datasets lists a dataset twice")
        _check("all" not in datasets, f"{w}.datasets: 'all' is reserved (the tables' rows that pool every dataset)")
        products = s.get("products", [])
        _check(isinstance(products, list) and all(isinstance(p, str) and p for p in products),
               f"{w}.products must be a list of product names, got {products!r}")  # fmt: skip
        _check(len(set(products)) == len(products), f"{w}.products lists a product twice")
        out = cls(datasets=datasets, products=tuple(products))
        qualified = [p for p in products if "/" in p]
        if len(datasets) > 1 or qualified:
            bare = [p for p in products if "/" not in p]
            _check(not bare, f"{w}.products: with several datasets (or any product written dataset/product) every "
                   f"product is written <dataset>/<product>; got {bare}")  # fmt: skip
            for cell in products:
                dataset, _, product = cell.partition("/")
                _check(dataset in datasets and bool(product) and "/" not in product,
                       f"{w}.products: {cell!r} must be <dataset>/<product> with a dataset of data.datasets "
                       f"{list(datasets)}")  # fmt: skip
            unused = [d for d in datasets if not any(c.startswith(f"{d}/") for c in products)]
            _check(not unused, f"{w}.datasets: {unused} have no product in data.products")
        return out

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


@dataclass(frozen=True)
class SynthesizeParams:
    """``synthesize``: sizes and seed of the embedded synthetic dataset."""

    seed: int
    image_size: int
    n_train: int
    n_test_good: int
    n_test_per_defect: int
    annotators: int
    annotator_error: float
    products: tuple[str, ...]

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "params.yaml") -> SynthesizeParams:
        """Validate ranges: sizes ≥ 32 px, at least 2 train and 2 test images of each kind, 1–9 annotators."""
        from iadbench.synth.products import PRODUCTS

        s = _section(params, "synthesize", source)
        w = f"{source}: synthesize"
        out = cls(
            seed=_get(s, "seed", int, w),
            image_size=_get(s, "image_size", int, w),
            n_train=_get(s, "n_train", int, w),
            n_test_good=_get(s, "n_test_good", int, w),
            n_test_per_defect=_get(s, "n_test_per_defect", int, w),
            annotators=_get(s, "annotators", int, w),
            annotator_error=_get(s, "annotator_error", float, w),
            products=tuple(_get(s, "products", list, w)),
        )
        _check(out.seed >= 0, f"{w}.seed must be >= 0, got {out.seed}")
        _check(32 <= out.image_size <= 1024, f"{w}.image_size must be in [32, 1024], got {out.image_size}")
        _check(out.n_train >= 2, f"{w}.n_train must be >= 2, got {out.n_train}")
        _check(out.n_test_good >= 2, f"{w}.n_test_good must be >= 2, got {out.n_test_good}")
        _check(out.n_test_per_defect >= 1, f"{w}.n_test_per_defect must be >= 1, got {out.n_test_per_defect}")
        _check(1 <= out.annotators <= 9, f"{w}.annotators must be in [1, 9], got {out.annotators}")
        _check(
            0.0 <= out.annotator_error < 0.5,
            f"{w}.annotator_error must be in [0, 0.5), got {out.annotator_error}",
        )
        _check(len(out.products) > 0, f"{w}.products must name at least one product")
        unknown = sorted(set(out.products) - set(PRODUCTS))
        _check(not unknown, f"{w}.products: unknown product(s) {unknown}; valid: {sorted(PRODUCTS)}")
        _check(len(set(out.products)) == len(out.products), f"{w}.products lists a product twice")
        return out


@dataclass(frozen=True)
class SplitParams:
    """``split``: validation fraction of each product's test images, the seed, and the share of noisy train labels."""

    seed: int
    val_fraction: float
    train_noise: float = 0.0  # share of each product's train images replaced by anomalous ones (noise study)

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "params.yaml") -> SplitParams:
        """Validate ``0 < val_fraction < 1`` (0 leaves no data to fit thresholds, 1 none to test on), 0 ≤ noise < 1."""
        s = _section(params, "split", source)
        w = f"{source}: split"
        noise = _get(s, "train_noise", float, w) if "train_noise" in s else 0.0
        out = cls(seed=_get(s, "seed", int, w), val_fraction=_get(s, "val_fraction", float, w), train_noise=noise)
        _check(out.seed >= 0, f"{w}.seed must be >= 0, got {out.seed}")
        _check(
            0.0 < out.val_fraction < 1.0,
            f"{w}.val_fraction must be strictly between 0 and 1, got {out.val_fraction}",
        )
        _check(0.0 <= out.train_noise < 1.0, f"{w}.train_noise must be in [0, 1), got {out.train_noise}")
        return out


@dataclass(frozen=True)
class GateParams:
    """``gates``: how strict the validation gates are where a choice is reasonable."""

    empty_mask: str  # "warn" or "fail": an anomalous image whose mask has no foreground pixel

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "params.yaml") -> GateParams:
        """Validate ``gates.empty_mask`` in {warn, fail}."""
        s = _section(params, "gates", source)
        out = cls(empty_mask=_get(s, "empty_mask", str, f"{source}: gates"))
        _check(
            out.empty_mask in {"warn", "fail"},
            f"{source}: gates.empty_mask must be 'warn' or 'fail', got {out.empty_mask!r}",
        )
        return out


@dataclass(frozen=True)
class ModelParams:
    """``data.image_size`` (one input size for every model) and ``backbone`` (name, layers, weights)."""

    image_size: int
    backbone: str
    layers: tuple[str, ...]
    weights: str

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "params.yaml") -> ModelParams:
        """Validate: image size in [32, 1024]; weights is package, hub, none or a file path."""
        d = _section(params, "data", source)
        b = _section(params, "backbone", source)
        size = _get(d, "image_size", int, f"{source}: data")
        _check(32 <= size <= 1024, f"{source}: data.image_size must be in [32, 1024], got {size}")
        layers = tuple(_get(b, "layers", list, f"{source}: backbone"))
        _check(bool(layers), f"{source}: backbone.layers must name at least one layer")
        return cls(
            size, _get(b, "name", str, f"{source}: backbone"), layers, _get(b, "weights", str, f"{source}: backbone")
        )


VALIDATION_STRATEGIES = ("fixed", "early_stopping")


@dataclass(frozen=True)
class TrainParams:
    """``train``: seed, epochs, batch size, loader workers, determinism, validation strategy, training regime."""

    seed: int
    epochs: int
    batch_size: int
    num_workers: int
    deterministic: bool | str = "warn"  # Lightning's flag: True, False or "warn" (deterministic where supported)
    validation: str = "fixed"  # fixed: train.epochs, no validation; early_stopping: on validation image AUROC
    patience: int = 3  # early_stopping: epochs without improvement before stopping (the best epoch is kept)
    unified: bool = False  # one model per method on the train images of every product of the dataset

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "params.yaml") -> TrainParams:
        """Validate: epochs ≥ 1, batch size ≥ 1, workers ≥ 0, deterministic in {true, false, warn}, patience ≥ 1."""
        s = _section(params, "train", source)
        w = f"{source}: train"
        deterministic = s.get("deterministic", "warn")
        _check(
            deterministic in (True, False, "warn"),
            f"{w}.deterministic must be true, false or warn, got {deterministic!r}",
        )
        out = cls(
            _get(s, "seed", int, w),
            _get(s, "epochs", int, w),
            _get(s, "batch_size", int, w),
            _get(s, "num_workers", int, w),
            deterministic,
            _get(s, "validation", str, w) if "validation" in s else "fixed",
            _get(s, "patience", int, w) if "patience" in s else 3,
            _get(s, "unified", bool, w) if "unified" in s else False,
        )
        _check(out.seed >= 0, f"{w}.seed must be >= 0, got {out.seed}")
        _check(out.epochs >= 1, f"{w}.epochs must be >= 1, got {out.epochs}")
        _check(out.batch_size >= 1, f"{w}.batch_size must be >= 1, got {out.batch_size}")
        _check(out.num_workers >= 0, f"{w}.num_workers must be >= 0, got {out.num_workers}")
        _check(
            out.validation in VALIDATION_STRATEGIES,
            f"{w}.validation must be one of {list(VALIDATION_STRATEGIES)}, got {out.validation!r}",
        )
        _check(out.patience >= 1, f"{w}.patience must be >= 1, got {out.patience}")
        return out


@dataclass(frozen=True)
class ThresholdParams:
    """``threshold``: the rule behind the headline numbers (every rule is fitted and reported regardless)."""

    method: str

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "params.yaml") -> ThresholdParams:
        """Validate ``threshold.method`` ∈ {roc, iou, pr}."""
        from iadbench.metrics.registry import headline_rules

        s = _section(params, "threshold", source)
        method = _get(s, "method", str, f"{source}: threshold")
        _check(method in headline_rules(),
               f"{source}: threshold.method must be one of {list(headline_rules())}, got {method!r}")  # fmt: skip
        return cls(method)


@dataclass(frozen=True)
class EvaluateParams:
    """``evaluate``: AUPRO's FPR limit and the bootstrap behind the 95 % confidence intervals."""

    aupro_fpr_limit: float
    bootstrap: int
    confidence: float
    seed: int

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "params.yaml") -> EvaluateParams:
        """Validate: 0 < aupro_fpr_limit ≤ 1, bootstrap ≥ 0 (0 = no intervals), 0 < confidence < 1, seed ≥ 0."""
        s = _section(params, "evaluate", source)
        w = f"{source}: evaluate"
        out = cls(
            _get(s, "aupro_fpr_limit", float, w),
            _get(s, "bootstrap", int, w),
            _get(s, "confidence", float, w),
            _get(s, "seed", int, w),
        )
        _check(0 < out.aupro_fpr_limit <= 1, f"{w}.aupro_fpr_limit must be in (0, 1], got {out.aupro_fpr_limit}")
        _check(out.bootstrap >= 0, f"{w}.bootstrap must be >= 0, got {out.bootstrap}")
        _check(0 < out.confidence < 1, f"{w}.confidence must be in (0, 1), got {out.confidence}")
        _check(out.seed >= 0, f"{w}.seed must be >= 0, got {out.seed}")
        return out


SEGMENT_SOURCES = ("whole", "grid", "image")
SEGAD_ENSEMBLES = ("all",)
SEGAD_SUFFIX = "+segad"
# The paper's boosted random forest (Baitieva et al., CVPR 2024, §4): XGBoost parameter -> (kind, lowest, highest,
# is the lowest allowed itself). Every key must be given; the defaults in params.yaml are the paper's.
XGBOOST_RANGES: dict[str, tuple[type, float, float, bool]] = {
    "n_estimators": (int, 1, 10_000, True),
    "num_parallel_tree": (int, 1, 10_000, True),
    "learning_rate": (float, 0.0, 1.0, False),
    "max_depth": (int, 1, 32, True),
    "colsample_bytree": (float, 0.0, 1.0, False),
    "colsample_bynode": (float, 0.0, 1.0, False),
    "subsample": (float, 0.0, 1.0, False),
    "reg_alpha": (float, 0.0, 1e6, True),
}
XGBOOST_OBJECTIVES = ("binary:logitraw", "binary:logistic")


@dataclass(frozen=True)
class SegadParams:
    """``segad``: SegAD (Baitieva, Hurych, Besnier, Bernard, "Supervised Anomaly Detection for Complex Industrial
    Images", CVPR 2024) on the maps of the selected detectors.

    ``detectors`` empty = SegAD off (the split and every detector are then exactly those of a run without it).
    """

    detectors: tuple[str, ...] = ()  # each gives the setup <detector>+segad
    ensembles: tuple[str, ...] = ()  # ("all",): also all+segad, one BRF on the maps of every detector above
    brf_fraction: float = 0.5  # share of each product's train/good images whose maps train the BRF (not the detector)
    shots: int = 0  # real anomalous images per product for the BRF (0 = one-class: synthetic disturbances)
    synthetic_per_image: int = 1  # one-class: disturbed copies of each BRF good image
    segments: str = "grid"  # whole | grid | image (<product>/segments.png of the dataset)
    grid: int = 2  # K: the grid source's K x K cells
    seed: int = 0
    detector_score: bool = False  # also feed each detector's own image score (the authors' code does; the paper
    # lists the K·L·4 statistics only)
    xgboost: tuple[tuple[str, Any], ...] = ()  # (name, value), the keys of XGBOOST_RANGES plus objective

    @property
    def on(self) -> bool:
        """SegAD runs (some detector is selected)."""
        return bool(self.detectors)

    @property
    def setups(self) -> tuple[str, ...]:
        """Registry names of the SegAD setups: ``<detector>+segad`` for each detector, then ``all+segad``."""
        return tuple(f"{d}{SEGAD_SUFFIX}" for d in (*self.detectors, *self.ensembles))

    @classmethod
    def from_params(cls, params: dict[str, Any], source: str = "params.yaml") -> SegadParams:
        """Validate: detectors are distinct names of ``models``; ensembles ⊂ {all} and need two detectors or more;
        0 < brf_fraction < 1; shots ≥ 0; synthetic_per_image ≥ 1; segments ∈ {whole, grid, image}; 1 ≤ grid ≤ 16;
        every XGBoost parameter present and in range. A missing section is SegAD off.
        """
        if "segad" not in params:
            return cls()
        s = _section(params, "segad", source)
        w = f"{source}: segad"
        detectors = tuple(str(d) for d in _get(s, "detectors", list, w))
        ensembles = tuple(str(e) for e in _get(s, "ensembles", list, w))
        xgb = s.get("xgboost")
        _check(isinstance(xgb, dict), f"{w}.xgboost must be a mapping of XGBoost parameters")
        out = cls(
            detectors=detectors, ensembles=ensembles, brf_fraction=_get(s, "brf_fraction", float, w),
            shots=_get(s, "shots", int, w), synthetic_per_image=_get(s, "synthetic_per_image", int, w),
            segments=_get(s, "segments", str, w), grid=_get(s, "grid", int, w), seed=_get(s, "seed", int, w),
            detector_score=_get(s, "detector_score", bool, w) if "detector_score" in s else False,
            xgboost=tuple(sorted(_xgboost(xgb, f"{w}.xgboost").items())),
        )  # fmt: skip
        models = [str(m) for m in params.get("models") or []]
        unknown = [d for d in detectors if d not in models]
        _check(not unknown, f"{w}.detectors: {unknown} not in models {models} (SegAD reads the maps of run models)")
        _check(len(set(detectors)) == len(detectors), f"{w}.detectors lists a detector twice: {list(detectors)}")
        bad = [e for e in ensembles if e not in SEGAD_ENSEMBLES]
        _check(not bad, f"{w}.ensembles: unknown {bad}; valid: {list(SEGAD_ENSEMBLES)} (or [] for none)")
        _check(
            not ensembles or len(detectors) >= 2,
            f"{w}.ensembles: all+segad combines K > 1 detectors, but segad.detectors has {len(detectors)}",
        )
        _check(0.0 < out.brf_fraction < 1.0, f"{w}.brf_fraction must be strictly between 0 and 1, got "
               f"{out.brf_fraction}")  # fmt: skip
        _check(out.shots >= 0, f"{w}.shots must be >= 0 (0 = one-class), got {out.shots}")
        _check(out.synthetic_per_image >= 1, f"{w}.synthetic_per_image must be >= 1, got {out.synthetic_per_image}")
        _check(out.segments in SEGMENT_SOURCES, f"{w}.segments must be one of {list(SEGMENT_SOURCES)}, got "
               f"{out.segments!r}")  # fmt: skip
        _check(1 <= out.grid <= 16, f"{w}.grid must be in [1, 16], got {out.grid}")
        _check(out.seed >= 0, f"{w}.seed must be >= 0, got {out.seed}")
        return out


def _xgboost(section: dict[str, Any], where: str) -> dict[str, Any]:
    """The BRF's XGBoost parameters, each checked against :data:`XGBOOST_RANGES`; unknown keys are errors."""
    known = {*XGBOOST_RANGES, "objective"}
    unknown = sorted(set(section) - known)
    _check(not unknown, f"{where}: unknown parameter(s) {unknown}; valid: {sorted(known)}")
    out: dict[str, Any] = {}
    for key, (kind, low, high, low_ok) in XGBOOST_RANGES.items():
        value = _get(section, key, kind, where)
        inside = (low <= value if low_ok else low < value) and value <= high
        _check(inside, f"{where}.{key} must be in {'[' if low_ok else '('}{low:g}, {high:g}], got {value}")
        out[key] = value
    objective = _get(section, "objective", str, where)
    _check(objective in XGBOOST_OBJECTIVES, f"{where}.objective must be one of {list(XGBOOST_OBJECTIVES)}, "
           f"got {objective!r}")  # fmt: skip
    out["objective"] = objective
    return out


def evaluated_models(params: dict[str, Any]) -> list[str]:
    """Every name the evaluation stages read: ``models``, then the SegAD setups (:class:`SegadParams`)."""
    return [str(m) for m in params.get("models") or []] + list(SegadParams.from_params(params).setups)
