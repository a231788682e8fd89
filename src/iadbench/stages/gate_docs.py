"""``iadbench gate-docs``: render the gates' Great Expectations Data Docs (offline) into reports/gates/docs."""

from __future__ import annotations

import argparse

HELP = "render the gates' Great Expectations Data Docs, offline: reports/gates/docs"
IMPORTS = ("iadbench.datadocs", "great_expectations")  # imported before any work (GX lazily): preloaded


def run(args: argparse.Namespace) -> None:
    """Render the gates' Great Expectations Data Docs (offline) into reports/gates/docs."""
    from iadbench import datadocs

    datadocs.main()
