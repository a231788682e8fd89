"""``iadbench categories``: parse each dataset's Label Studio export into data/categories.csv."""

from __future__ import annotations

import argparse

from iadbench.paths import CATEGORIES, MANIFEST, dataset_root, export_path
from iadbench.stages import read_params

HELP = "parse each dataset's annotation/exports/<dataset>.json: data/categories.csv"


def run(args: argparse.Namespace) -> None:
    """Parse each dataset's Label Studio export into data/categories.csv."""
    from iadbench.data.categories import dataset_votes, resolve_categories
    from iadbench.data.manifest import read_table, write_table
    from iadbench.params import DataParams

    data = DataParams.from_params(read_params(args))
    manifest = read_table(MANIFEST)
    votes = [v for d in data.datasets for v in dataset_votes(export_path(d), dataset_root(d), manifest)]
    table = resolve_categories(votes, manifest)
    write_table(table, CATEGORIES)
    print(f"{CATEGORIES}: {len(votes)} annotations on {(table['n_annotators'] > 0).sum()} images")
