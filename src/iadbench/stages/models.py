"""``iadbench models``: print the model registry."""

from __future__ import annotations

import argparse

HELP = "list the registered models"


def run(args: argparse.Namespace) -> None:
    """Print the model registry."""
    from iadbench.models.registry import MODELS

    for entry in MODELS.values():
        maps = "maps+scores" if entry.pixel_maps else "scores only"
        print(f"{entry.name:22s} {entry.family:40s} {maps:12s} {entry.note}")
        options = ", ".join(f"{key}={value!r}" for key, value in entry.options.items()) or "(none)"
        print(f"{'':22s} options: {options}")
        if entry.epochs is None:
            print(f"{'':22s} epochs: one pass (a memory bank)")
        else:
            print(f"{'':22s} epochs: full {entry.epochs.full} ({entry.epochs.source}), demo {entry.epochs.demo}")
    for name in ("<detector>+segad", "all+segad"):
        print(
            f"{name:22s} {'segment statistics + boosted random forest':40s} {'scores only':12s} SegAD "
            "(Baitieva et al., CVPR 2024) on the maps of a detector / of every segad.detectors; params: segad"
        )
