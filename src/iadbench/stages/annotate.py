"""``iadbench annotate``: Label Studio round trip: serve, push tasks, pull the export (see annotation/README.md)."""

from __future__ import annotations

import argparse

from iadbench.errors import IadbenchError
from iadbench.paths import CATEGORIES, MANIFEST, SPLIT, dataset_root

HELP = "Label Studio: serve | push | pull | status | config (annotation/README.md)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments."""
    parser.add_argument("action", choices=["serve", "push", "pull", "status", "config"])
    parser.add_argument("--dataset", help="dataset name (push, pull, status)")
    parser.add_argument("--host", default="127.0.0.1", help="serve: address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="serve: port (default 8080)")
    parser.add_argument("--no-dvc", action="store_true", help="pull: write the export without `dvc add`")
    parser.add_argument("--sandbox", action="store_true",
                        help="push, pull, status: a separate project 'iadbench NAME (sandbox)' whose pulls go to "
                        "annotation/sandbox/NAME (git-ignored), never to the pipeline's inputs; works on the synthetic "
                        "data: learn the interface there")  # fmt: skip
    parser.add_argument("--prefill", metavar="MODEL",
                        help="push: pre-draw regions on the images without a mask from MODEL's trained cells (its "
                        "stored maps at a normal-only pixel threshold); annotators correct them")  # fmt: skip
    parser.add_argument(
        "--prefill-rule",
        default="good_quantile",
        help="push --prefill: the normal-only rule of the pixel threshold (default good_quantile, SuperADD's: the "
        "closest to IoU-T without masks in the fewshot study, docs/fewshot.md)",
    )
    parser.add_argument("--replace", action="store_true",
                   help="pull: overwrite the export with the server's instead of merging (unlabelled images lose "
                   "their earlier labels)")  # fmt: skip


def run(args: argparse.Namespace) -> None:
    """Label Studio round trip: serve, push tasks, pull the export (see annotation/README.md)."""
    from iadbench.annotation import client
    from iadbench.annotation.workflow import pull_steps, push_steps, sandbox_steps
    from iadbench.data.manifest import read_table

    if args.action == "config":
        from iadbench.annotation.config import write_config, write_examples

        print(f"wrote {write_config()}")
        if SPLIT.is_file():
            print("wrote " + ", ".join(map(str, write_examples())))
        return
    if args.action == "serve":
        from iadbench.annotation.server import serve

        raise SystemExit(serve(args.host, args.port))
    if not args.dataset:
        raise IadbenchError(f"annotate {args.action} needs --dataset NAME (a folder under data/raw)")
    if args.prefill and args.action != "push":
        raise IadbenchError("--prefill applies to `annotate push` only")
    ls = client.connect()
    title = client.project_title(args.dataset, args.sandbox)
    if args.action == "push":
        from iadbench.evaluation.cells import read_split_with_masks
        from iadbench.params import DataParams
        from iadbench.stages import read_params

        products = list(DataParams.from_params(read_params(args)).products) if args.prefill else None
        rows = read_split_with_masks()
        result = client.push(ls, args.dataset, rows, read_table(CATEGORIES), args.prefill, args.prefill_rule,
                             args.sandbox, products)  # fmt: skip
        verb = "created" if result["created"] else "updated"
        print(f"{verb} project {result['project_id']} ({title}): imported "
              f"{result['imported']} new task(s), {result['already_there']} already there")  # fmt: skip
        if result["prefilled"]:
            which = "(a sandbox: every image, mask or not)" if args.sandbox else "without a mask"
            print(f"pre-drawn regions on {result['prefilled']} image(s) {which} ({result['prefill_version']})")
        if result["prefill_skipped_products"]:
            print(f"no pre-drawn regions for product(s) {result['prefill_skipped_products']}: not in data.products, "
                  "so no trained cell")  # fmt: skip
        print("next: label in the browser; after each sitting:")
        for line in sandbox_steps(args.dataset) if args.sandbox else push_steps(args.dataset):
            print(f"  {line}")
    elif args.action == "status":
        r = client.status(ls, args.dataset, args.sandbox)
        by = ", ".join(f"{k} annotator(s): {v}" for k, v in r["by_annotators"].items())
        print(f"project {r['project_id']} ({title}): {r['labelled']} of {r['tasks']} "
              f"task(s) labelled by {r['annotators']} person(s); per task {by}; {r['disagreements']} disagreement(s), "
              f"{r['cancelled']} skipped; regions drawn on {r['with_regions']} task(s)")  # fmt: skip
    else:
        from iadbench.annotation.masks import dataset_images
        from iadbench.data.categories import relative_ids

        manifest = read_table(MANIFEST)
        root = dataset_root(args.dataset)
        ids = set(relative_ids(manifest, root))
        images = dataset_images(manifest, root)
        result = client.pull(ls, args.dataset, ids, track=not args.no_dvc, replace=args.replace, images=images,
                             sandbox=args.sandbox)  # fmt: skip
        print(f"wrote {result['path']}: {result['tasks']} task(s), {result['votes']} annotation(s)")
        if result["masks_path"]:
            sources = ", ".join(f"{n} {s}" for s, n in result["mask_sources"].items()) or "none"
            agree = result["mean_agreement_iou"]
            print(f"wrote {result['masks_path']}: {result['masks']} mask(s) ({sources}); {result['unchanged_shipped']} "
                  "shipped mask(s) left unchanged"
                  + (f"; annotators' agreement: mean IoU {agree:.3f}" if agree is not None else ""))  # fmt: skip
        if result["merged"]:
            print(f"merged with the previous export: {result['labelled_now']} image(s) labelled on the server, "
                  f"{result['kept_previous']} kept their earlier labels, {result['only_previous']} only in the "
                  "previous export (--replace overwrites instead)")  # fmt: skip
        if result["unlabelled_tasks"]:
            print(f"note: {result['unlabelled_tasks']} task(s) have no annotation yet; their images keep no category "
                  "and the categories gate will name them")  # fmt: skip
        if args.sandbox:
            print("a sandbox pull: nothing here is read by the pipeline")
            return
        print("next:")
        for line in pull_steps(args.dataset, bool(result["masks_path"])):
            print(f"  {line}")
