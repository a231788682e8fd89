"""``iadbench infer``: run an export folder on image files, with no repository, DVC or anomalib.

Writes per image a mask PNG at the image's own size, the score, the verdict and a JSON line (``--map``: the
float16 anomaly map too), then ``summary.json`` with images per second (:mod:`iadbench.deploy.runtime`). Images
that cannot be read, or whose channel count differs from the training images', are skipped and listed; the exit
status is then non-zero.
"""

from __future__ import annotations

import argparse

HELP = "run an exported detector on images: masks, scores, verdicts (no repository needed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments."""
    parser.add_argument("export", help="folder written by iadbench export")
    parser.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--out", required=True, help="folder for masks/, maps/, predictions.jsonl, summary.json")
    parser.add_argument("--map", action="store_true", help="also save each anomaly map (float16 .npy)")
    parser.add_argument("--threads", type=int, help="CPU threads of the runtime (default: its own)")


def run(args: argparse.Namespace) -> None:
    """Score the images and print the summary; raise if any image could not be scored."""
    import sys
    from pathlib import Path

    from iadbench.deploy.bundle import read_bundle
    from iadbench.deploy.runtime import collect_images, infer_images, load_runner
    from iadbench.errors import IadbenchError

    bundle = read_bundle(args.export)
    images = collect_images(args.images)
    if not images:
        raise IadbenchError(f"no image files in {' '.join(args.images)} (looked for .png .jpg .jpeg .bmp .tif .webp)")
    runner = load_runner(bundle, args.threads)
    summary = infer_images(bundle, images, Path(args.out), args.map, runner, progress=sys.stderr.isatty())
    print(f"{summary['scored']} of {summary['images']} image(s) scored with {bundle.manifest['model']} "
          f"({bundle.format}, rule {bundle.manifest['rule']}): {summary['anomalous']} anomalous, "
          f"{summary['images_per_second']} img/s; {args.out}/predictions.jsonl")  # fmt: skip
    if summary["failed"]:
        listed = "; ".join(f"{f['image']}: {f['error']}" for f in summary["failed"][:5])
        more = f" (and {len(summary['failed']) - 5} more)" if len(summary["failed"]) > 5 else ""
        raise IadbenchError(f"{len(summary['failed'])} image(s) skipped, listed in {args.out}/summary.json: "
                            f"{listed}{more}")  # fmt: skip
