"""``iadbench report``: write reports/report.html and reports/report.md with tables, threshold curves and overlays."""

from __future__ import annotations

import argparse

from iadbench.stages import read_params

HELP = "write reports/report.html and .md (tables, curves, overlays)"
IMPORTS = ("iadbench.evaluation.report",)  # imported before any work: the warm worker preloads them


def run(args: argparse.Namespace) -> None:
    """Write reports/report.html and reports/report.md with tables, threshold curves and overlays."""
    from iadbench.evaluation.report import write_report

    written = write_report(read_params(args))
    print("wrote " + ", ".join(map(str, written)))
