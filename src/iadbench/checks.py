"""``iadbench check``: every check of ``params.yaml`` that needs the code behind a name, before anything runs.

:func:`iadbench.params.load_params` checks the file's shape (every section and key, types, ranges) without importing
domain code. This adds what only the code knows: that each of ``models`` is registered, that ``model_options`` has a
block only for registered models and each block only their declared options, of the right kind and range (PaDiM's
``n_features`` against the channels of its layers), that ``data.image_size`` suits every model, and that
``threshold.method`` is a headline rule. The ``check_params`` stage runs it on every change of the file (it depends on
all of ``params.yaml``), and the data stages depend on its result, so a bad value stops ``dvc repro`` first.
"""

from __future__ import annotations

from typing import Any

from iadbench.errors import IadbenchError, ParamsError
from iadbench.params import ModelParams


def problems(params: dict[str, Any], source: str = "params.yaml") -> list[str]:
    """Every problem of ``params`` (already checked against the schema by ``load_params(complete=True)``), one
    line each, naming file and key.
    """
    from iadbench.metrics.rules import headline_method
    from iadbench.models.registry import MODELS, ModelConfig, effective_options, option_problems, size_problem

    found: list[str] = []
    try:
        headline_method(params, source)
    except ParamsError as exc:
        found.append(str(exc))
    models = [str(m) for m in params["models"]]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        found.append(f"{source}: models: {unknown} are not registered; valid: {sorted(MODELS)} (iadbench models)")
    options = params.get("model_options") or {}
    stray = sorted(set(options) - set(MODELS))
    if stray:
        found.append(f"{source}: model_options: {stray} are not registered models; valid: {sorted(MODELS)}")
    base = ModelParams.from_params(params, source)
    for model in (m for m in models if m in MODELS):
        try:
            effective = effective_options(model, options.get(model), source)
        except IadbenchError as exc:
            found.append(str(exc))
            continue
        if problem := size_problem(model, base.image_size):
            found.append(f"{source}: data.image_size: {problem}")
        cfg = ModelConfig(model, base.image_size, base.backbone, base.layers, base.weights, effective)
        found.extend(option_problems(cfg, source))
    return found


def check(params: dict[str, Any], source: str = "params.yaml") -> None:
    """Raise a :class:`ParamsError` listing every problem of :func:`problems`."""
    if found := problems(params, source):
        raise ParamsError("\n".join(found))
