"""AUPIMO with iadbench's counting kernel against anomalib 2.7's ``aupimo_scores``, the same maps, in one run.

    python benchmarks/aupimo_speed.py [--maps 200] [--size 256] [--seed 0] [--out reports/bench/aupimo_speed.json]

The maps are those of ``benchmarks/metrics_speed.py`` (smooth noise, raised blobs on half the images), float16 as the
predict stage stores them; anomalib gets them as float32 (what it needs) with its defaults (300,000 thresholds, FPR
1e-5…1e-4, ``force=True`` so that a coarse grid does not stop it). Printed: seconds of each, the ratio
anomalib / iadbench (the baseline is anomalib), and the largest per-image difference of the two (they must agree
within 1e-6: the reference test ``tests/metrics/test_pimo.py`` asserts it on smaller maps).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from metrics_speed import make_maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/aupimo_speed.json"))
    args = parser.parse_args()

    import torch
    from anomalib.metrics.pimo.functional import aupimo_scores

    from iadbench.metrics.pimo import aupimo

    maps, masks, _ = make_maps(args.maps, args.size, args.seed)
    start = time.perf_counter()
    ours = aupimo(maps, masks)
    ours_s = time.perf_counter() - start
    logging.disable(logging.WARNING)  # anomalib's "fewer than 300 points" warnings
    start = time.perf_counter()
    *_, reference, points = aupimo_scores(torch.from_numpy(maps.astype(np.float32)), torch.from_numpy(masks),
                                          force=True)  # fmt: skip
    anomalib_s = time.perf_counter() - start
    difference = float(np.nanmax(np.abs(ours.scores - reference.numpy())))
    result = {
        "maps": args.maps, "size": args.size, "seed": args.seed, "iadbench_seconds": round(ours_s, 3),
        "anomalib_seconds": round(anomalib_s, 3), "anomalib_over_iadbench": round(anomalib_s / ours_s, 1),
        "max_abs_difference": difference, "points_iadbench": ours.points, "points_anomalib": int(points),
        "mean_aupimo": float(np.nanmean(ours.scores)),
    }  # fmt: skip
    print(f"AUPIMO of {args.maps} maps of {args.size}² px: iadbench {ours_s:.2f} s, anomalib {anomalib_s:.2f} s "
          f"(baseline anomalib: {anomalib_s / ours_s:.0f}× slower); largest difference {difference:.1e}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
