"""``iadbench synthesize``: write the embedded synthetic dataset and its annotation export."""

from __future__ import annotations

import argparse

from iadbench.paths import dataset_root, export_path
from iadbench.stages import read_params

HELP = "write the embedded synthetic dataset (params: synthesize)"


def run(args: argparse.Namespace) -> None:
    """Write the embedded synthetic dataset and its annotation export."""
    from iadbench.params import SynthesizeParams
    from iadbench.synth.generate import generate

    params = SynthesizeParams.from_params(read_params(args))
    counts = generate(params, dataset_root("synthetic"), export_path("synthetic"), progress=not args.quiet)
    print(f"wrote {sum(counts.values())} images to {dataset_root('synthetic')}: {counts}")
