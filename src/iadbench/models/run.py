"""Fitting and running one (model, product) cell: what the ``train`` and ``predict`` stages
(:mod:`iadbench.stages.train`, :mod:`iadbench.stages.predict`) call; they read the split and write the files.

``fit`` fits on the split file's train rows only, for the epochs :func:`~iadbench.models.registry.training_epochs`
resolves (``train.profile``, ``train.epochs``, ``model_options.<m>.epochs``; no early stopping and no checkpoint
choice on held-out data unless ``train.validation: early_stopping``), seeds everywhere and ``deterministic`` where
the library allows; DVCLive's Lightning logger records the training curves. ``infer`` reloads the weights and
returns, for the rows given, the raw anomaly maps (at ``data.image_size``) and the raw image scores; ``to_float16``
is how maps are stored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from iadbench.errors import IadbenchError
from iadbench.models.geometry import receptive_field_shifts
from iadbench.models.live import loss_curve
from iadbench.models.quiet import ignore_known_noise, quiet_libraries
from iadbench.models.registry import ModelConfig, build_model, effective_options, get_entry, training_epochs
from iadbench.paths import ASSIGNMENT, MODELS_DIR


def model_config(params: dict[str, Any], model: str, corrections: bool = True) -> ModelConfig:
    """Model config from ``data.image_size``, ``backbone`` and ``model_options.<model>`` (checked, defaults filled)."""
    from iadbench.params import ModelParams

    mp = ModelParams.from_params(params)
    return ModelConfig(
        model=model,
        image_size=mp.image_size,
        backbone=mp.backbone,
        layers=mp.layers,
        weights=mp.weights,
        options=effective_options(model, (params.get("model_options") or {}).get(model)),
        corrections=corrections,
    )


def versions() -> dict[str, str]:
    """Package versions that produced an artifact."""
    import anomalib
    import lightning
    import timm
    import torchvision

    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "anomalib": anomalib.__version__,
        "lightning": lightning.__version__,
        "timm": timm.__version__,
    }


def split_rows(product: str, splits: tuple[str, ...], every_product: bool = False) -> pd.DataFrame:
    """The product's rows of the given splits; ``every_product``: those of every product (the unified regime)."""
    from iadbench.data.manifest import read_table

    split = read_table(ASSIGNMENT)
    if product not in set(split["product"]):
        known = sorted(split["product"].unique())
        raise IadbenchError(f"{ASSIGNMENT}: product {product!r} not found; products: {known} (set data.products)")
    rows = split[split["split"].isin(splits)]
    if not every_product:
        rows = rows[rows["product"] == product]
    rows = rows.sort_values("image_id")
    if rows.empty:
        raise IadbenchError(f"{ASSIGNMENT}: product {product!r} has no {'/'.join(splits)} images")
    return rows


# Warnings that carry no information about a cell (library deprecations, Lightning's advice for multi-GPU or
# worker settings that the protocol fixes on purpose). Everything else is kept: recorded in the cell's metadata.
FLOAT16_MAX = float(np.finfo(np.float16).max)


@contextlib.contextmanager
def fidelity(cfg: ModelConfig, shifts: dict[str, list[float]] | None = None) -> Iterator[dict[str, Any]]:
    """Run a model with grid placement (:mod:`iadbench.models.geometry`) and its warnings recorded, not hidden.

    Yields a dict that, after the block, holds ``warnings`` (message, category, count; known noise dropped) and
    ``grid_placement`` (interpolations placed at true cell centres, and those left as the library wrote them).
    """
    from iadbench.models.geometry import GridPlacement, parse_shifts

    record: dict[str, Any] = {}
    size = (cfg.image_size, cfg.image_size)
    placement = GridPlacement(size, parse_shifts(shifts or {})) if cfg.corrections else contextlib.nullcontext()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every occurrence counted, then the noise taken out again
        ignore_known_noise()
        with placement:
            yield record
    counts: dict[tuple[str, str], int] = {}
    for item in caught:
        key = (item.category.__name__, str(item.message).strip().splitlines()[0][:300])
        counts[key] = counts.get(key, 0) + 1
    record["warnings"] = [{"category": c, "message": m, "count": n} for (c, m), n in sorted(counts.items())]
    for entry in record["warnings"]:
        logging.getLogger("iadbench").warning("%s: %s (x%d)", entry["category"], entry["message"], entry["count"])
    if cfg.corrections:
        record["grid_placement"] = {"placed": placement.placed, "left_as_written": placement.fallbacks}
    else:
        record["grid_placement"] = "off (anomalib's own interpolation)"


def _engine(
    max_epochs: int,
    root: str,
    logger: Any,
    progress: bool,
    deterministic: bool | str = "warn",
    callbacks: list[Any] | None = None,
) -> Any:
    from anomalib.callbacks.checkpoint import ModelCheckpoint
    from anomalib.engine import Engine

    # iadbench saves the fitted state itself; a checkpoint callback that keeps nothing stops the Engine from adding
    # one that writes a Lightning checkpoint per epoch (no checkpoint is ever chosen on held-out data anyway).
    no_checkpoints = ModelCheckpoint(dirpath=root, save_top_k=0, save_last=False)
    return Engine(
        accelerator="auto", devices=1, max_epochs=max_epochs, deterministic=deterministic, logger=logger,
        default_root_dir=root, enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[no_checkpoints, *(callbacks or [])],
    )  # fmt: skip


@dataclass
class Fitted:
    """A fitted model: its module, the metadata the cell records, the fit time (seconds) and the epochs run."""

    module: torch.nn.Module
    meta: dict[str, Any]
    fit_seconds: float
    epochs: int


def fit(
    params: dict[str, Any],
    model: str,
    product: str,
    rows: pd.DataFrame,
    held_out: pd.DataFrame | None = None,
    curve_dir: Path | None = None,
    progress: bool | None = None,
    corrections: bool = True,
) -> Fitted:
    """Fit ``model`` on ``rows`` (a split table's train rows) with the Engine, seeded and deterministic where the
    library allows; nothing is written but DVCLive's training curve in ``curve_dir`` (None: no curve).

    Args:
        params: params.yaml's content (``train``, ``backbone``, ``data.image_size``, ``model_options``).
        model: a registered model name.
        product: the cell's product (named in errors).
        rows: the images to fit on, in the order the loader reads them.
        held_out: validation rows for ``train.validation: early_stopping`` (stops on their image AUROC,
            :mod:`iadbench.models.validation`); None with ``fixed``.
        curve_dir: DVCLive's folder of the cell (``reports/train/<model>/<product>``).
        progress: Lightning's progress bar (None: when stderr is a terminal).
        corrections: False reproduces anomalib's own outputs (no grid placement, CFLOW's batch normalisation);
            only the parity test and the before/after benchmark use it.

    Returns:
        The module, its metadata (everything a function of data, params and code), the fit seconds and epochs.

    """
    from anomalib.models.components import MemoryBankMixin
    from lightning.pytorch import seed_everything

    from iadbench.models.dataset import loader
    from iadbench.params import TrainParams

    quiet_libraries()
    train = TrainParams.from_params(params)
    cfg = model_config(params, model, corrections)
    progress = sys.stderr.isatty() if progress is None else progress
    seed_everything(train.seed, workers=True)
    module, weights, entry, requested = build_model(cfg)
    if entry.min_train is not None and len(rows) < entry.min_train(cfg):
        raise IadbenchError(
            f"{ASSIGNMENT}: {model} needs at least {entry.min_train(cfg)} train images of {product}, found {len(rows)} "
            f"(see model_options.{model})"
        )
    planned, epochs_rule = training_epochs(entry, cfg.options, train.epochs, train.profile)
    curve = loss_curve(curve_dir, has_loss=not isinstance(module, MemoryBankMixin)) if curve_dir else None
    calibration: dict[str, Any] = {}
    shifts = receptive_field_shifts(module, cfg.image_size) if cfg.corrections else {}
    ordered = loader(rows, cfg.image_size, train.batch_size, False, train.seed, train.num_workers)
    stopping = None
    if held_out is not None:
        from iadbench.models.validation import ValidationEarlyStopping

        stopping = ValidationEarlyStopping(
            loader(held_out, cfg.image_size, train.batch_size, False, train.seed, train.num_workers),
            (held_out["label"] == "anomalous").to_numpy(),
            train.patience,
            prepare=(lambda m: entry.calibrate(m, ordered)) if entry.calibrate is not None else None,
        )
    with tempfile.TemporaryDirectory(prefix="iadbench-engine-") as root, fidelity(cfg, shifts) as record:
        callbacks = [c for c in (curve, stopping) if c is not None]
        engine = _engine(planned, root, False, progress, train.deterministic, callbacks)
        data = loader(rows, cfg.image_size, train.batch_size, True, train.seed, train.num_workers)
        start = time.perf_counter()
        engine.fit(module, train_dataloaders=data)
        stopped = stopping.restore(module) if stopping is not None else {}
        if entry.calibrate is not None:  # a no-op where the correction is not installed
            calibration = entry.calibrate(module, ordered)
        fit_seconds = time.perf_counter() - start
        epochs = int(stopped.get("epochs_run", engine.trainer.max_epochs))
    if curve is not None:
        curve.finish(epochs)
    meta = {
        "model": model, "product": product, "family": entry.family, "pixel_maps": entry.pixel_maps,
        "image_score": entry.image_score, "epochs": epochs, "epochs_rule": epochs_rule,
        "epochs_full": entry.epochs.full if entry.epochs is not None else 1, "seed": train.seed,
        "image_size": cfg.image_size,
        "n_train": len(rows), **_regime(train, rows), **stopped,
        "options": cfg.options, "deterministic": train.deterministic, **weights.metadata(),
        "pretrained_requested": requested, "corrections": cfg.corrections, "receptive_field_shifts": shifts,
        **calibration, **record,
        "device": "cuda" if torch.cuda.is_available() else "cpu", "versions": versions(),
    }  # fmt: skip
    return Fitted(module, meta, fit_seconds, epochs)


def _regime(train: Any, rows: pd.DataFrame) -> dict[str, Any]:
    """Metadata of the study knobs that change what a cell learns (absent at their defaults: files unchanged)."""
    out: dict[str, Any] = {}
    if train.unified:
        out["regime"] = "unified"
        out["train_products"] = sorted(rows["product"].unique())
    anomalous = int((rows["label"] == "anomalous").sum())
    if anomalous:
        out["n_train_anomalous"] = anomalous  # split.train_noise: noisy training labels
    return out


def load_state(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a state dict, first resizing buffers that memory-bank models grow while fitting (PatchCore, PaDiM)."""
    buffers = dict(module.named_buffers())
    for key, value in state.items():
        if key in buffers and buffers[key].shape != value.shape:
            parent_name, _, attr = key.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            parent.register_buffer(attr, torch.empty_like(value))
    module.load_state_dict(state)


def infer(
    params: dict[str, Any],
    model: str,
    product: str,
    rows: pd.DataFrame,
    progress: bool | None = None,
    corrections: bool = True,
    plans: dict[str, list] | None = None,
    edits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the trained cell ``models/<model>/<product>`` on ``rows`` (in their order) as the predict stage does.

    Returns ``scores`` (float32, N), ``maps`` (float32, N×S×S at ``data.image_size``, None for image-score models),
    ``seconds`` (the engine's predict time), ``record`` (warnings, grid placement), ``entry``, ``cfg`` and ``meta``
    (the cell's training metadata). ``plans``: test-time drift per image id; ``edits``: per image id, a function of
    the model's input (SegAD's synthetic disturbances).
    """
    from iadbench.models.dataset import loader
    from iadbench.params import TrainParams

    quiet_libraries()
    get_entry(model)
    train = TrainParams.from_params(params)
    cfg = model_config(params, model, corrections)
    progress = sys.stderr.isatty() if progress is None else progress
    cell = MODELS_DIR / model / product
    if not (cell / "model.pt").is_file():
        raise IadbenchError(f"{cell / 'model.pt'}: trained model not found (run the train stage first)")
    meta = json.loads((cell / "meta.json").read_text())
    module, _, entry, _ = build_model(cfg)
    load_state(module, torch.load(cell / "model.pt", map_location="cpu", weights_only=True))
    module.eval()
    shifts = meta.get("receptive_field_shifts", {})
    with tempfile.TemporaryDirectory(prefix="iadbench-engine-") as root, fidelity(cfg, shifts) as record:
        engine = _engine(1, root, False, progress, train.deterministic)
        data = loader(rows, cfg.image_size, train.batch_size, False, train.seed, train.num_workers, plans, edits)
        start = time.perf_counter()
        batches = engine.predict(module, dataloaders=data)
        seconds = time.perf_counter() - start
    scores = torch.cat([b.pred_score.reshape(-1) for b in batches]).float().cpu().numpy()
    raw = None
    if entry.pixel_maps:
        maps = torch.cat([b.anomaly_map.reshape(len(b.pred_score), *b.anomaly_map.shape[-2:]) for b in batches])
        if maps.shape[-1] != cfg.image_size or maps.shape[-2] != cfg.image_size:
            maps = torch.nn.functional.interpolate(maps[:, None].float(), size=(cfg.image_size,) * 2, mode="bilinear")[
                :, 0
            ]
        raw = maps.float().cpu().numpy()
    return {"scores": scores, "maps": raw, "seconds": seconds, "record": record, "entry": entry, "cfg": cfg,
            "meta": meta}  # fmt: skip


def to_float16(raw: np.ndarray, model: str, product: str) -> np.ndarray:
    """Maps as stored: float16 (exact counting kernel; on the magnetic tile float16 and float32 maps give pixel
    AUROC/AUPRO within 2e-6, docs/fidelity.md). A map beyond float16's range (±65504) is refused rather than
    stored as inf.
    """
    low, high = float(raw.min()), float(raw.max())
    if max(abs(low), abs(high)) > FLOAT16_MAX:
        raise IadbenchError(
            f"{model}/{product}: raw anomaly maps span [{low:.4g}, {high:.4g}], beyond float16's "
            f"±{FLOAT16_MAX:.0f}: storing them would turn scores into inf (its maps need another scale)"
        )
    return raw.astype(np.float16)
