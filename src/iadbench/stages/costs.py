"""``iadbench costs``: write reports/costs.{json,md}: seconds and memory per model, from reports/resources."""

from __future__ import annotations

import argparse

from iadbench.stages import read_params

HELP = "write reports/costs.{json,md}: seconds and memory per model (from reports/resources)"


def run(args: argparse.Namespace) -> None:
    """Write reports/costs.{json,md}: seconds and memory per model, from reports/resources."""
    from iadbench.params import evaluated_models
    from iadbench.paths import COSTS_MD
    from iadbench.resources import write_costs

    table = write_costs(evaluated_models(read_params(args)))
    print(f"{COSTS_MD}: {len(table)} model(s)")
