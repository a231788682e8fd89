"""``iadbench split``: write the stratified, seeded split to data/split.csv, what models read of it to
data/assignment.csv and every image's mask and mask source to data/masks.csv.
"""

from __future__ import annotations

import argparse

from iadbench.paths import ASSIGNMENT, CATEGORIES, MANIFEST, MASKS_TABLE, SPLIT
from iadbench.stages import read_params

HELP = "write the seeded, stratified split to data/split.csv (params: split)"


def run(args: argparse.Namespace) -> None:
    """Write the stratified, seeded split to data/split.csv."""
    from iadbench.data.manifest import read_table, write_table
    from iadbench.data.split import ASSIGNMENT_COLUMNS, MASK_TABLE_COLUMNS, make_split
    from iadbench.params import SegadParams, SplitParams

    raw = read_params(args)
    params, segad = SplitParams.from_params(raw), SegadParams.from_params(raw)  # bad params before missing tables
    split = make_split(read_table(MANIFEST), read_table(CATEGORIES), params, segad)
    write_table(split, SPLIT)
    write_table(split[ASSIGNMENT_COLUMNS], ASSIGNMENT)
    write_table(split[MASK_TABLE_COLUMNS], MASKS_TABLE)
    print(f"{SPLIT}: " + ", ".join(f"{k} {v}" for k, v in split["split"].value_counts().sort_index().items()))
