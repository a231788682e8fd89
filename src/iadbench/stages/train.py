"""``iadbench train``: train one (model, product) cell."""

from __future__ import annotations

import argparse
import json
from typing import Any

from iadbench.stages import TORCH_LIBRARIES, add_cell_arguments, read_params

HELP = "train one (model, product) cell on the split's train rows"
IMPORTS = (*TORCH_LIBRARIES, "iadbench.models.run")  # imported before any work: the warm worker preloads them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments: the cell."""
    add_cell_arguments(parser)


def run(args: argparse.Namespace) -> None:
    """Train one (model, product) cell."""
    meta = train_cell(read_params(args), args.model, args.product, progress=False if args.quiet else None)
    print(
        f"trained {args.model} on {args.product}: {meta['epochs']} epoch(s), {meta['fit_seconds']} s, "
        f"peak RSS {meta['peak_rss_mb']} MiB, weights {meta['weights_source']} {meta['backbone']}"
    )


def train_cell(
    params: dict[str, Any], model: str, product: str, progress: bool | None = None, corrections: bool = True
) -> dict[str, Any]:
    """Fit ``model`` on ``product``'s train rows of ``data/assignment.csv``; write
    ``models/<model>/<product>/{model.pt,meta.json}``.

    Everything in the cell's folder is a function of data, params and code (a rebuild on another machine gives the
    same bytes for deterministic models); DVCLive's curves go to ``reports/train/<model>/<product>/`` and the fit
    time and memory to ``reports/resources/train/`` (:mod:`iadbench.resources`). Returns the metadata with
    ``fit_seconds`` and ``peak_rss_mb`` added.

    Studies: ``train.unified`` fits one model on the train rows of *every* product of the dataset (the cell of
    each product then holds that same unified model, evaluated on its own product); ``train.validation:
    early_stopping`` stops on the product's validation image AUROC (:mod:`iadbench.models.validation`).
    ``corrections=False``: anomalib's own outputs (:func:`iadbench.models.run.fit`).
    """
    import torch

    from iadbench import resources
    from iadbench.models.registry import get_entry
    from iadbench.models.run import fit, split_rows
    from iadbench.params import TrainParams
    from iadbench.paths import MODELS_DIR, train_report_dir

    get_entry(model)  # an unknown name is the first thing to report
    train = TrainParams.from_params(params)
    rows = split_rows(product, ("train",), every_product=train.unified)
    held_out = split_rows(product, ("validation",)) if train.validation == "early_stopping" else None
    fitted = fit(params, model, product, rows, held_out, train_report_dir(model, product), progress, corrections)
    out = MODELS_DIR / model / product
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in fitted.module.state_dict().items()}, out / "model.pt")
    (out / "meta.json").write_text(json.dumps(fitted.meta, indent=1, default=str) + "\n")
    spent = resources.record("train", model, product, fit_seconds=fitted.fit_seconds, epochs=fitted.epochs)
    return {**fitted.meta, **resources.read("train", model, product), "resources": str(spent)}
