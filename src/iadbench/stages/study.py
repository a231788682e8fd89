"""``iadbench study``: queue, run and summarise a study (a grid of DVC experiments): reports/studies/NAME.{json,md}."""

from __future__ import annotations

import argparse

HELP = "run a study as queued DVC experiments; write reports/studies/NAME.{json,md}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments."""
    from iadbench.studies import NAMES

    parser.add_argument("name", help=" | ".join(NAMES))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per condition (default 3)")
    parser.add_argument("--jobs", type=int, default=1, help="experiments run in parallel (dvc queue start --jobs)")
    parser.add_argument("--conditions", help="comma-separated conditions instead of the study's default grid")
    parser.add_argument("--dry-run", action="store_true", help="print what would be queued; run nothing")
    parser.add_argument("--collect", action="store_true", help="rebuild the tables from existing experiments only")
    parser.add_argument("--rev", help="--collect: the commit the experiments derive from (default HEAD)")


def run(args: argparse.Namespace) -> None:
    """Queue, run and summarise a study (a grid of DVC experiments): reports/studies/NAME.{json,md}."""
    from iadbench.studies.run import run_study

    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()] if args.conditions else None
    run_study(
        args.name, seeds=args.seeds, jobs=args.jobs, conditions=conditions, dry_run=args.dry_run,
        collect_only=args.collect, echo=lambda line: print(line, flush=True), rev=args.rev,
    )  # fmt: skip
