"""``iadbench annotate``: Label Studio round trip: serve, push tasks, pull the export (see annotation/README.md)."""

from __future__ import annotations

import argparse

from iadbench.errors import IadbenchError
from iadbench.paths import ASSIGNMENT, CATEGORIES, MANIFEST, SPLIT, dataset_root

HELP = "Label Studio: serve | push | pull | status | config (annotation/README.md)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments."""
    parser.add_argument("action", choices=["serve", "push", "pull", "status", "config"])
    parser.add_argument("--dataset", help="dataset name (push, pull, status)")
    parser.add_argument("--host", default="127.0.0.1", help="serve: address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="serve: port (default 8080)")
    parser.add_argument("--no-dvc", action="store_true", help="pull: write the export without `dvc add`")
    parser.add_argument("--replace", action="store_true",
                   help="pull: overwrite the export with the server's instead of merging (unlabelled images lose "
                   "their earlier labels)")  # fmt: skip


def run(args: argparse.Namespace) -> None:
    """Label Studio round trip: serve, push tasks, pull the export (see annotation/README.md)."""
    from iadbench.annotation import client
    from iadbench.annotation.workflow import pull_steps, push_steps
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
    ls = client.connect()
    if args.action == "push":
        result = client.push(ls, args.dataset, read_table(ASSIGNMENT), read_table(CATEGORIES))
        verb = "created" if result["created"] else "updated"
        print(f"{verb} project {result['project_id']} ({client.project_title(args.dataset)}): imported "
              f"{result['imported']} new task(s), {result['already_there']} already there")  # fmt: skip
        print("next: label in the browser; after each sitting:")
        for line in push_steps(args.dataset):
            print(f"  {line}")
    elif args.action == "status":
        r = client.status(ls, args.dataset)
        by = ", ".join(f"{k} annotator(s): {v}" for k, v in r["by_annotators"].items())
        print(f"project {r['project_id']} ({client.project_title(args.dataset)}): {r['labelled']} of {r['tasks']} "
              f"task(s) labelled by {r['annotators']} person(s); per task {by}; {r['disagreements']} disagreement(s), "
              f"{r['cancelled']} skipped")  # fmt: skip
    else:
        from iadbench.data.categories import relative_ids

        ids = set(relative_ids(read_table(MANIFEST), dataset_root(args.dataset)))
        result = client.pull(ls, args.dataset, ids, track=not args.no_dvc, replace=args.replace)
        print(f"wrote {result['path']}: {result['tasks']} task(s), {result['votes']} annotation(s)")
        if result["merged"]:
            print(f"merged with the previous export: {result['labelled_now']} image(s) labelled on the server, "
                  f"{result['kept_previous']} kept their earlier labels, {result['only_previous']} only in the "
                  "previous export (--replace overwrites instead)")  # fmt: skip
        if result["unlabelled_tasks"]:
            print(f"note: {result['unlabelled_tasks']} task(s) have no annotation yet; their images keep no category "
                  "and the categories gate will name them")  # fmt: skip
        print("next:")
        for line in pull_steps(args.dataset):
            print(f"  {line}")
