"""The model registry: one entry per method, each built from explicit params (no library defaults for protocol
settings: input size, no centre crop, backbone, weights, raw outputs).

Every model is constructed with ``post_processor=False`` (raw anomaly maps and scores: thresholds are fitted by
iadbench on the validation split, never by anomalib's normalisation), ``evaluator=False`` and
``visualizer=False``, and with the model's own pre-processor at ``data.image_size`` (resize, no crop).

To add a method: write its builder and decorate it with :func:`register_model` (name, family, options and
defaults, its training length, what it outputs); :data:`MODELS` is filled by the decorators, in this file's order.

Training length: a method trained by gradient descent declares :class:`Epochs`, its epoch count in each profile of
``train.profile`` (``full``: the method's published or anomalib's configured length; ``demo``: the reduced length a
2-core CPU affords the default run). :func:`training_epochs` resolves a cell's count, most specific first:
``model_options.<m>.epochs``, then ``train.epochs`` (one count for every trained method), then the profile. A memory
bank (PaDiM, PatchCore, DFM, DFKDE) is fitted in one pass and has no epochs to choose.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from iadbench.errors import IadbenchError
from iadbench.models import cflow
from iadbench.models.weights import BackboneWeights, inject, resolve_weights
from iadbench.params import SEGAD_SUFFIX


class ModelConfigError(IadbenchError):
    """A model cannot be built with the given params (unknown name, bad size, bad layer, missing download)."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything a builder may read, from ``params.yaml``."""

    model: str
    image_size: int
    backbone: str
    layers: tuple[str, ...]
    weights: str
    options: dict[str, Any] = field(default_factory=dict)  # effective: declared defaults overridden by params
    # iadbench's fidelity corrections (grid placement, CFLOW's training-time normalisation, docs/fidelity.md).
    # Off only to reproduce anomalib's own outputs (the parity test, the before/after benchmark); no param sets it.
    corrections: bool = True

    def option(self, key: str) -> Any:
        """An effective option (every builder reads its options here; the defaults live in the registry entry)."""
        return self.options[key]


Builder = Callable[[ModelConfig, str, bool], Any]  # (config, backbone name, pretrained?) -> AnomalibModule


DEMO_EPOCHS = 10  # the demo profile's length for every trained method: what the default run affords on 2 CPU cores


@dataclass(frozen=True)
class Epochs:
    """A trained method's epochs per profile: ``full`` (``source`` says where the number comes from) and ``demo``."""

    full: int
    source: str
    demo: int = DEMO_EPOCHS

    def of(self, profile: str) -> int:
        """The epochs of ``profile`` (one of :data:`iadbench.params.TRAIN_PROFILES`)."""
        return self.full if profile == "full" else self.demo


ANOMALIB_CONFIG = "anomalib 1.x example config (trainer.max_epochs)"


@dataclass(frozen=True)
class ModelEntry:
    """One registered method."""

    name: str
    family: str
    build: Builder
    options: dict[str, Any] = field(default_factory=dict)  # every option the builder reads, with its default
    pixel_maps: bool = True  # False: image scores only (excluded from pixel metrics)
    image_score: str = "map_max"  # "map_max" or "model" (the model defines its own image score)
    default_backbone: str | None = None  # a fixed own backbone ("" for none); see own_backbone
    uses_layers: bool = True
    size_multiple: int = 1
    min_size: int = 32
    note: str = ""
    precheck: Callable[[ModelConfig], str | None] | None = None  # message if a needed download is absent
    # after fitting: measure constants on the training batches (module, batches) -> metadata (CFLOW's maxima)
    calibrate: Callable[[Any, Any], dict[str, Any]] | None = None
    min_train: Callable[[ModelConfig], int] | None = None  # fewest train images the method can fit on
    epochs: Epochs | None = None  # None: fitted in one pass (a memory bank), no epochs to choose

    @property
    def own_backbone(self) -> str | None:
        """None: the shared ``backbone.*``; "": no backbone; a name: the model's own default backbone (its declared
        ``backbone`` option where users may change it, else the fixed one of ``default_backbone``).
        """
        return self.options.get("backbone", self.default_backbone)


def _raw(cls: Any, cfg: ModelConfig, **pre_kwargs: Any) -> dict[str, Any]:
    size = (cfg.image_size, cfg.image_size)
    return {
        "pre_processor": cls.configure_pre_processor(image_size=size, **pre_kwargs),
        "post_processor": False,
        "evaluator": False,
        "visualizer": False,
    }


def _layers(cfg: ModelConfig) -> list[str]:
    """``model_options.<model>.layers``, or ``backbone.layers`` where that option is null."""
    layers = cfg.options.get("layers")
    return list(cfg.layers if layers is None else layers)


def _layer(cfg: ModelConfig) -> str:
    """``model_options.<model>.layer``, or the last of ``backbone.layers`` where that option is null."""
    layer = cfg.options.get("layer")
    return str(cfg.layers[-1] if layer is None else layer)


MODELS: dict[str, ModelEntry] = {}  # filled by @register_model below, in registration order


def register_model(name: str, family: str, **entry: Any) -> Callable[[Builder], Builder]:
    """Register the decorated builder as the method ``name`` (timm's ``@register_model``): its family, every option
    it reads with its default (``options``) and the rest of :class:`ModelEntry`, declared where it is built.
    """

    def register(build: Builder) -> Builder:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        if entry.get("epochs") is not None:  # a trained method: model_options.<m>.epochs (null: train.*) is an option
            entry["options"] = {**entry.get("options", {}), "epochs": None}
        MODELS[name] = ModelEntry(name, family, build, **entry)
        return build

    return register


def _pretrained_dir() -> Any:
    from anomalib.utils.path import get_pretrained_weights_dir

    return get_pretrained_weights_dir()


def _dsr_needs(cfg: ModelConfig) -> str | None:
    path = _pretrained_dir() / "dsr" / "vq_model_pretrained_128_4096.pckl"
    if path.is_file():
        return None
    return (
        f"dsr needs anomalib's pretrained VQ model, which is a download: put vq_model_pretrained_128_4096.pckl "
        f"(anomalib's DSR weights release) at {path} (anomalib reads only that place)"
    )


def _efficient_ad_needs(cfg: ModelConfig) -> str | None:
    teacher = _pretrained_dir() / "efficientad_pretrained_weights"
    imagenet = cfg.option("imagenet_dir")
    from pathlib import Path

    missing = []
    if not teacher.is_dir():
        missing.append(f"its teacher weights (anomalib's efficientad_pretrained_weights release) at {teacher}")
    if not Path(imagenet).is_dir():
        missing.append(f"an ImageNet(te) image folder; set model_options.efficient_ad.imagenet_dir (now {imagenet})")
    return "efficient_ad needs downloads that are not here: " + "; ".join(missing) if missing else None


# ------------------------------------------------------------------------------------------------ builders
@register_model(
    "ae",
    "reconstruction (AE, SSIM loss)",
    epochs=Epochs(200, "Bergmann et al. 2019, SSIM autoencoder paper"),
    options={"latent_dim": 100, "base_channels": 32, "lr": 0.0002},
    default_backbone="",
    uses_layers=False,
    size_multiple=32,
    note="Bergmann et al. SSIM autoencoder; written for iadbench (anomalib has none)",
)
def _ae(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from iadbench.models.ae import SsimAutoencoder

    return SsimAutoencoder(
        latent_dim=cfg.option("latent_dim"), base_channels=cfg.option("base_channels"), lr=cfg.option("lr"),
        **_raw(SsimAutoencoder, cfg),
    )  # fmt: skip


@register_model(
    "stfpm",
    "knowledge distillation (KD)",
    epochs=Epochs(100, ANOMALIB_CONFIG + "; the STFPM paper trains 100 epochs"),
    options={"layers": None},
    note="stands in for the multiresolution KD (MKD) of [Rethinking]: same teacher-student feature "
    "regression on a pyramid of layers; anomalib 2.7 has no MKD",
)
def _stfpm(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import Stfpm

    return Stfpm(backbone=backbone, layers=_layers(cfg), **_raw(Stfpm, cfg))


@register_model(
    "padim",
    "memory bank / Gaussian",
    options={"layers": None, "n_features": 100},
)
def _padim(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import Padim

    return Padim(
        backbone=backbone,
        layers=_layers(cfg),
        pre_trained=pretrained,
        n_features=cfg.option("n_features"),
        **_raw(Padim, cfg),
    )


@register_model(
    "cflow",
    "normalizing flow",
    epochs=Epochs(50, ANOMALIB_CONFIG),
    options={
        "layers": ["blocks.2", "blocks.4"],
        "coupling_blocks": 4,
        "fiber_batch_size": 64,
        "condition_vector": 128,
        "lr": 0.0001,
    },
    calibrate=cflow.calibrate,
    note="coupling_blocks 4 (anomalib's default is 8) halves its CPU time; maps normalised with training "
    "statistics, not the batch maximum (see docs/fidelity.md)",
)
def _cflow(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import Cflow

    module = Cflow(
        backbone=backbone, layers=_layers(cfg), pre_trained=pretrained,
        fiber_batch_size=cfg.option("fiber_batch_size"), coupling_blocks=cfg.option("coupling_blocks"),
        condition_vector=cfg.option("condition_vector"), lr=cfg.option("lr"),
        **_raw(Cflow, cfg),
    )  # fmt: skip
    if cfg.corrections:
        cflow.install(module)  # maps normalised by training maxima, not by the batch's (iadbench.models.cflow)
    return module


@register_model(
    "patchcore",
    "memory bank / nearest neighbour",
    options={"layers": ["blocks.2", "blocks.4"], "coreset_sampling_ratio": 0.1, "num_neighbors": 9},
    image_score="model",
)
def _patchcore(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import Patchcore

    return Patchcore(
        backbone=backbone, layers=_layers(cfg), pre_trained=pretrained,
        coreset_sampling_ratio=cfg.option("coreset_sampling_ratio"), num_neighbors=cfg.option("num_neighbors"),
        **_raw(Patchcore, cfg, center_crop_size=None),
    )  # fmt: skip


@register_model(
    "reverse_distillation",
    "knowledge distillation",
    epochs=Epochs(200, ANOMALIB_CONFIG + "; the paper trains 200 epochs"),
    options={"backbone": "resnet18", "weights": "hub", "layers": ["layer1", "layer2", "layer3"]},
    note="its decoder exists only for ResNet/Wide-ResNet backbones",
)
def _rd(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import ReverseDistillation

    return ReverseDistillation(
        backbone=backbone, layers=_layers(cfg), pre_trained=pretrained, **_raw(ReverseDistillation, cfg)
    )


@register_model(
    "fastflow",
    "normalizing flow",
    epochs=Epochs(500, ANOMALIB_CONFIG),
    options={"backbone": "resnet18", "weights": "hub", "flow_steps": 8},
    uses_layers=False,
    note="supports resnet18, wide_resnet50_2, cait and deit backbones only",
)
def _fastflow(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import Fastflow

    return Fastflow(
        backbone=backbone, pre_trained=pretrained, flow_steps=cfg.option("flow_steps"), **_raw(Fastflow, cfg)
    )


@register_model(
    "dfm",
    "feature modelling (PCA)",
    options={"layer": None, "pooling_kernel_size": 4, "pca_level": 0.97},
    uses_layers=False,
    image_score="model",
)
def _dfm(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import Dfm

    return Dfm(
        backbone=backbone, layer=_layer(cfg), pre_trained=pretrained,
        pooling_kernel_size=cfg.option("pooling_kernel_size"), pca_level=cfg.option("pca_level"), score_type="fre",
        **_raw(Dfm, cfg),
    )  # fmt: skip


@register_model(
    "dfkde",
    "feature modelling (KDE)",
    options={"layer": None, "n_pca_components": 16},
    pixel_maps=False,
    uses_layers=False,
    image_score="model",
    min_train=lambda cfg: int(cfg.option("n_pca_components")),
    note="its KDE silently stays unfitted with fewer train images than n_pca_components",
)
def _dfkde(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import Dfkde

    return Dfkde(
        backbone=backbone, layers=[_layer(cfg)], pre_trained=pretrained,
        n_pca_components=cfg.option("n_pca_components"), **_raw(Dfkde, cfg),
    )  # fmt: skip


@register_model(
    "fre",
    "feature reconstruction",
    epochs=Epochs(220, ANOMALIB_CONFIG),
    options={"layer": None, "pooling_kernel_size": 2, "latent_dim": 220},
    uses_layers=False,
    image_score="model",
)
def _fre(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    import timm
    from anomalib.models import Fre

    layer = _layer(cfg)
    pool = cfg.option("pooling_kernel_size")
    probe = timm.create_model(backbone, pretrained=False, features_only=True)
    info = {i["module"]: i for i in probe.feature_info.info}[layer]
    side = cfg.image_size // info["reduction"] // pool
    return Fre(
        backbone=backbone, layer=layer, pre_trained=pretrained, pooling_kernel_size=pool,
        input_dim=info["num_chs"] * side * side, latent_dim=cfg.option("latent_dim"), **_raw(Fre, cfg),
    )  # fmt: skip


@register_model(
    "ganomaly",
    "GAN reconstruction",
    epochs=Epochs(100, ANOMALIB_CONFIG),
    options={"batch_size": 16, "n_features": 64},
    pixel_maps=False,
    uses_layers=False,
    image_score="model",
    default_backbone="",
)
def _ganomaly(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import Ganomaly

    return Ganomaly(batch_size=cfg.option("batch_size"), n_features=cfg.option("n_features"), **_raw(Ganomaly, cfg))


@register_model(
    "cfa",
    "coupled hypersphere",
    epochs=Epochs(30, ANOMALIB_CONFIG),
    options={"backbone": "resnet18", "weights": "hub", "gamma_c": 1},
    uses_layers=False,
    note="supports vgg19_bn, resnet18, wide_resnet50_2 and efficientnet_b5 backbones only",
)
def _cfa(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import Cfa

    return Cfa(backbone=backbone, gamma_c=cfg.option("gamma_c"), **_raw(Cfa, cfg))


@register_model(
    "csflow",
    "normalizing flow",
    epochs=Epochs(240, ANOMALIB_CONFIG),
    options={"weights": "hub", "n_coupling_blocks": 4},
    default_backbone="tf_efficientnet_b5",
    uses_layers=False,
)
def _csflow(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import Csflow

    return Csflow(n_coupling_blocks=cfg.option("n_coupling_blocks"), **_raw(Csflow, cfg))


@register_model(
    "uflow",
    "normalizing flow (U-shaped)",
    epochs=Epochs(200, ANOMALIB_CONFIG),
    options={"weights": "hub"},
    default_backbone="cait_m48_448",
    uses_layers=False,
    note="its 'mcait' extractor loads cait_m48_448 and cait_s24_224 and resizes to 448 px whatever the input",
)
def _uflow(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import Uflow

    return Uflow(backbone="mcait", **_raw(Uflow, cfg))


@register_model(
    "draem",
    "synthetic anomalies + reconstruction",
    epochs=Epochs(700, ANOMALIB_CONFIG + "; the DRAEM paper trains 700 epochs"),
    options={"anomaly_source_dir": "data/raw/synthetic"},
    default_backbone="",
    uses_layers=False,
    image_score="model",
    note="model_options.draem.anomaly_source_dir: a folder of texture images (DTD)",
)
def _draem(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import Draem

    return Draem(dtd_dir=cfg.option("anomaly_source_dir"), **_raw(Draem, cfg))


@register_model(
    "dsr",
    "dual subspace re-projection",
    epochs=Epochs(700, ANOMALIB_CONFIG),
    options={"latent_anomaly_strength": 0.2},
    default_backbone="",
    uses_layers=False,
    image_score="model",
    precheck=_dsr_needs,
)
def _dsr(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import Dsr

    return Dsr(latent_anomaly_strength=cfg.option("latent_anomaly_strength"), **_raw(Dsr, cfg))


@register_model(
    "efficient_ad",
    "student-teacher + AE",
    epochs=Epochs(1000, ANOMALIB_CONFIG + ", which also caps it at 70 000 steps (the paper's length)"),
    options={"imagenet_dir": "datasets/imagenette", "model_size": "small"},
    default_backbone="",
    uses_layers=False,
    min_size=256,
    precheck=_efficient_ad_needs,
    image_score="model",
)
def _efficient_ad(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import EfficientAd

    return EfficientAd(
        imagenet_dir=cfg.option("imagenet_dir"),
        model_size=cfg.option("model_size"),
        **_raw(EfficientAd, cfg),
    )


@register_model(
    "supersimplenet",
    "synthetic anomalies + discriminator",
    epochs=Epochs(300, ANOMALIB_CONFIG + "; the paper trains 300 epochs"),
    options={"backbone": "wide_resnet50_2.tv_in1k", "weights": "hub", "layers": ["layer2", "layer3"]},
    image_score="model",
    min_size=72,
    note="anomalib 2.x draws Perlin scales up to 32 on the feature grid padded to a power of two; a grid of "
    "16 rows or fewer (data.image_size <= 64) gets an empty noise tensor and training fails at random",
)
def _supersimplenet(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    from anomalib.models import Supersimplenet

    return Supersimplenet(backbone=backbone, layers=_layers(cfg), **_raw(Supersimplenet, cfg))


def _segad_setup(cfg: ModelConfig, backbone: str, pretrained: bool) -> Any:
    raise ModelConfigError(
        f"{cfg.model} is a SegAD setup, not a network: the segad stage fits it on its detectors' maps "
        "(params: segad.detectors, segad.ensembles); it has no train/predict cell"
    )


def segad_entry(name: str) -> ModelEntry:
    """The registry entry of a SegAD setup (Baitieva et al., CVPR 2024): ``<detector>+segad`` for a registered
    detector with anomaly maps, or ``all+segad``; image scores only, from its boosted random forest.
    """
    base = name.removesuffix(SEGAD_SUFFIX)
    if base != "all":
        detector = get_entry(base)
        if not detector.pixel_maps:
            raise ModelConfigError(f"{name}: {base} writes image scores only; SegAD needs anomaly maps")
    return ModelEntry(
        name, "segment statistics + boosted random forest", _segad_setup, pixel_maps=False, image_score="model",
        default_backbone="", uses_layers=False,
        note=f"SegAD on the maps of {'every segad.detectors' if base == 'all' else base} (segad section of params)",
    )  # fmt: skip


def get_entry(name: str) -> ModelEntry:
    """Registry entry of ``name`` (a registered method, or a SegAD setup ``<detector>+segad`` / ``all+segad``); an
    unknown name lists the valid ones.
    """
    if name.endswith(SEGAD_SUFFIX) and name != SEGAD_SUFFIX:
        return segad_entry(name)
    if name not in MODELS:
        raise ModelConfigError(
            f"unknown model {name!r}; valid: {sorted(MODELS)} (and SegAD setups <detector>{SEGAD_SUFFIX}, "
            f"all{SEGAD_SUFFIX})"
        )
    return MODELS[name]


@functools.cache
def feature_stages(backbone: str) -> tuple[str, ...]:
    """Names of the feature stages timm exposes for ``backbone`` (``features_only``), cached per process."""
    import timm
    import torch

    try:
        # fork_rng: building the probe initialises weights, which would otherwise consume the seeded global stream
        # on the first call of a process only, so a model built later would differ between a first and a second run
        with torch.random.fork_rng():
            probe = timm.create_model(backbone, pretrained=False, features_only=True)
    except Exception as exc:  # noqa: BLE001 - timm raises RuntimeError/ValueError for unknown names
        raise ModelConfigError(f"backbone {backbone!r} is not a timm model with feature stages: {exc}") from exc
    return tuple(probe.feature_info.module_name())


def check_layers(backbone: str, layers: list[str]) -> None:
    """Fail if a layer is not a feature stage of the timm backbone (anomalib would drop it silently)."""
    available = list(feature_stages(backbone))
    unknown = [layer for layer in layers if layer not in available]
    if unknown:
        raise ModelConfigError(f"layers {unknown} are not feature stages of {backbone}; available: {available}")


def check_backbone_name(backbone: str) -> None:
    """Fail with a useful message if timm does not know ``backbone``."""
    import timm

    if not timm.is_model(backbone):
        close = timm.list_models(f"*{backbone.split('_')[0]}*")[:10]
        raise ModelConfigError(f"unknown timm backbone {backbone!r}; similar names: {close}")


def _same_kind(value: Any, default: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, list | tuple):
        return isinstance(value, list | tuple)
    return isinstance(value, type(default))


def effective_options(model: str, given: dict[str, Any] | None, source: str = "params.yaml") -> dict[str, Any]:
    """``model_options.<model>`` checked against the entry's declared options, with the defaults filled in.

    An undeclared key (a typo such as ``n_featurs``) or a value of another kind than its default is an error that
    names the model, the key and the valid keys: a misspelt option must never train silently with the default.
    """
    entry = get_entry(model)
    given = dict(given or {})
    if "epochs" in given and entry.epochs is None:
        raise ModelConfigError(
            f"{source}: model_options.{model}.epochs: {model} is fitted in one pass (a memory bank); it has no "
            "epochs to set"
        )
    epochs = given.get("epochs")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ModelConfigError(
            f"{source}: model_options.{model}.epochs must be an integer >= 1 or null (train.epochs, then "
            f"train.profile), got {epochs!r}"
        )
    unknown = sorted(set(given) - set(entry.options))
    if unknown:
        raise ModelConfigError(
            f"{source}: model_options.{model} has unknown option(s) {unknown}; {model} accepts "
            f"{sorted(entry.options) or 'no options'}"
        )
    for key, value in given.items():
        default = entry.options[key]
        if not _same_kind(value, default):
            raise ModelConfigError(
                f"{source}: model_options.{model}.{key} must be a {type(default).__name__} like its default "
                f"{default!r}, got {value!r}"
            )
    return {**entry.options, **given}


def training_epochs(entry: ModelEntry, options: dict[str, Any], epochs: int | None, profile: str) -> tuple[int, str]:
    """The epochs a cell of ``entry`` trains for, and the rule that chose them, most specific first.

    Args:
        entry: the method's registry entry.
        options: its effective options (``model_options.<m>``; ``epochs`` null or absent: not set there).
        epochs: ``train.epochs`` (None: not set, the profile decides).
        profile: ``train.profile``, ``demo`` or ``full`` (:class:`Epochs`).

    Returns:
        ``(epochs, rule)``, rule one of ``one pass``, ``model_options.<m>.epochs``, ``train.epochs``,
        ``profile demo`` or ``profile full``.

    """
    if entry.epochs is None:
        return 1, "one pass"
    if options.get("epochs") is not None:
        return int(options["epochs"]), f"model_options.{entry.name}.epochs"
    if epochs is not None:
        return epochs, "train.epochs"
    return entry.epochs.of(profile), f"profile {profile}"


# Ranges of numeric options, as data: (model, option) -> (lowest, highest or None, lowest excluded). What anomalib
# would otherwise reject deep inside a fit (or accept and misbehave on) is named here with the file and the key.
OPTION_RANGES: dict[tuple[str, str], tuple[float, float | None, bool]] = {
    ("ae", "latent_dim"): (1, None, False),
    ("ae", "base_channels"): (1, None, False),
    ("ae", "lr"): (0.0, None, True),
    ("padim", "n_features"): (1, None, False),
    ("cflow", "coupling_blocks"): (1, None, False),
    ("cflow", "fiber_batch_size"): (1, None, False),
    ("cflow", "condition_vector"): (1, None, False),
    ("cflow", "lr"): (0.0, None, True),
    ("patchcore", "coreset_sampling_ratio"): (0.0, 1.0, True),
    ("patchcore", "num_neighbors"): (1, None, False),
    ("fastflow", "flow_steps"): (1, None, False),
    ("dfm", "pooling_kernel_size"): (1, None, False),
    ("dfm", "pca_level"): (0.0, 1.0, True),
    ("dfkde", "n_pca_components"): (1, None, False),
    ("fre", "pooling_kernel_size"): (1, None, False),
    ("fre", "latent_dim"): (1, None, False),
    ("ganomaly", "batch_size"): (1, None, False),
    ("ganomaly", "n_features"): (1, None, False),
    ("csflow", "n_coupling_blocks"): (1, None, False),
    ("dsr", "latent_anomaly_strength"): (0.0, None, True),
}


@functools.cache
def feature_channels(backbone: str) -> dict[str, int]:
    """Channels of each feature stage timm exposes for ``backbone`` (random weights, no download), per process."""
    import timm
    import torch

    with torch.random.fork_rng():  # as feature_stages: building a probe must not consume the seeded stream
        probe = timm.create_model(backbone, pretrained=False, features_only=True)
    return dict(zip(probe.feature_info.module_name(), probe.feature_info.channels(), strict=True))


def option_problems(cfg: ModelConfig, source: str = "params.yaml") -> list[str]:
    """Out-of-range options of ``cfg`` (effective options): :data:`OPTION_RANGES`, and PaDiM's ``n_features`` no
    more than the channels of its layers (it draws that many of them; anomalib fails with an index error).
    """
    from iadbench.params import Range

    problems = []
    for (model, key), (low, high, low_open) in OPTION_RANGES.items():
        value, limits = cfg.options.get(key), Range(low, high, low_open)
        if model == cfg.model and value is not None and not limits.contains(value):
            problems.append(f"{source}: model_options.{model}.{key} must be {limits.rule()}, got {value}")
    if cfg.model == "padim" and not problems and get_entry("padim").uses_layers:
        layers = _layers(cfg)
        try:
            channels = feature_channels(cfg.backbone)
        except Exception:  # noqa: BLE001 - an unknown backbone is named by check_backbone_name
            return problems
        total = sum(channels.get(layer, 0) for layer in layers)
        if all(layer in channels for layer in layers) and cfg.option("n_features") > total:
            problems.append(
                f"{source}: model_options.padim.n_features must be <= {total} (the channels of layers {layers} of "
                f"{cfg.backbone}), got {cfg.option('n_features')}"
            )
    return problems


def size_problem(model: str, image_size: int) -> str | None:
    """Why ``model`` cannot run at ``image_size`` (its size multiple and minimum), or None."""
    entry = get_entry(model)
    if image_size < entry.min_size or image_size % entry.size_multiple:
        return (
            f"{model} does not accept data.image_size={image_size}: needs a multiple of {entry.size_multiple} "
            f"and at least {entry.min_size} px"
        )
    return None


def build_model(cfg: ModelConfig) -> tuple[Any, BackboneWeights, ModelEntry, list[str]]:
    """Construct the model of ``cfg`` with its backbone weights; return (module, weights, entry, requested)."""
    entry = get_entry(cfg.model)
    cfg = replace(cfg, options=effective_options(cfg.model, cfg.options))
    if problem := size_problem(cfg.model, cfg.image_size):
        raise ModelConfigError(problem)
    if problems := option_problems(cfg):
        raise ModelConfigError("\n".join(problems))
    if entry.precheck is not None and (problem := entry.precheck(cfg)):
        raise ModelConfigError(problem)
    if entry.own_backbone == "":
        backbone, spec, param = "", "none", ""
    elif entry.own_backbone is not None:
        backbone = str(cfg.options.get("backbone", entry.own_backbone))
        spec, param = str(cfg.option("weights")), f"model_options.{cfg.model}.weights"
    else:
        backbone, spec, param = cfg.backbone, cfg.weights, "backbone.weights"
        check_backbone_name(backbone)
        if entry.uses_layers:
            check_layers(backbone, _layers(cfg))
    weights = resolve_weights(backbone, spec, param) if backbone else BackboneWeights("", "none")
    try:
        with inject(weights, cfg.model, param) as requested:
            module = entry.build(cfg, backbone, weights.source != "none")
    except IadbenchError:
        raise
    except OSError as exc:
        raise ModelConfigError(
            f"{cfg.model} needs a file that is not here: {exc}. Set the matching model_options.{cfg.model} param."
        ) from exc
    return module, weights, entry, requested
