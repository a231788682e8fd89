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
    ray = parser.add_argument_group("Ray executor (README: Scale out)")
    ray.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="local: DVC's queue on this machine (default); ray: one Ray task per experiment, shared "
                     "through the git and DVC remotes")  # fmt: skip
    ray.add_argument("--address", help="ray: an existing cluster (default: a local Ray instance for this run)")
    ray.add_argument("--cpus-per-experiment", type=float, default=1.0, help="ray: CPUs per experiment (default 1)")
    ray.add_argument("--gpus-per-experiment", type=float, default=0.0, help="ray: GPUs per experiment (default 0)")
    ray.add_argument("--max-retries", type=int, default=2,
                     help="ray: retries of an experiment whose worker died (default 2)")  # fmt: skip
    ray.add_argument("--git-remote", default="origin", help="ray: the git remote workers clone from (default origin)")
    ray.add_argument("--force-cpu", action="store_true", help="ray: hide GPUs from the experiments")


def run(args: argparse.Namespace) -> None:
    """Queue, run and summarise a study (a grid of DVC experiments): reports/studies/NAME.{json,md}."""
    from iadbench.studies.run import run_study

    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()] if args.conditions else None
    ray = None
    if args.executor == "ray":
        from iadbench.studies.ray_executor import RaySettings

        ray = RaySettings(args.address, args.cpus_per_experiment, args.gpus_per_experiment, args.max_retries,
                          args.git_remote, args.force_cpu)  # fmt: skip
    run_study(
        args.name, seeds=args.seeds, jobs=args.jobs, conditions=conditions, dry_run=args.dry_run,
        collect_only=args.collect, echo=lambda line: print(line, flush=True), rev=args.rev, ray=ray,
    )  # fmt: skip
