"""``iadbench summary``: write reports/data_summary.json."""

from __future__ import annotations

import argparse
import json

from iadbench.paths import CATEGORIES, DATA_SUMMARY, MANIFEST, SPLIT

HELP = "write reports/data_summary.json (DVC metrics)"


def run(args: argparse.Namespace) -> None:
    """Write reports/data_summary.json."""
    from iadbench.data.manifest import read_table
    from iadbench.data.summary import data_summary

    summary = data_summary(read_table(SPLIT), read_table(MANIFEST), read_table(CATEGORIES))
    DATA_SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    DATA_SUMMARY.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{DATA_SUMMARY}: {summary['images']}")
