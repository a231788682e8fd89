"""``iadbench``: one command-line entry point for every pipeline stage (each DVC stage's ``cmd`` is a verb here).

The verbs are the modules of :mod:`iadbench.stages`, discovered: this module only builds the parser from them and
turns the library's errors into exit statuses.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from iadbench import __version__, stages
from iadbench.errors import GateFailed, IadbenchError
from iadbench.paths import PARAMS


def build_parser() -> argparse.ArgumentParser:
    """The ``iadbench`` argument parser: one sub-command per module of :mod:`iadbench.stages`."""
    parser = argparse.ArgumentParser(prog="iadbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"iadbench {__version__}")
    parser.add_argument("--params", type=Path, default=PARAMS, help="params file (default: params.yaml)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in stages.module_names():
        module = stages.load(verb)
        p = sub.add_parser(verb, help=module.HELP, description=module.HELP)
        p.set_defaults(func=module.run)
        if hasattr(module, "add_arguments"):
            module.add_arguments(p)
    return parser


def _timed(args: argparse.Namespace, log: str) -> None:
    """Run the verb, appending ``{verb, argv, import_seconds, work_seconds, startup_seconds}`` to ``log`` (JSON
    lines; ``IADBENCH_TIMING_LOG``): start-up = process start to here (interpreter, ``iadbench.cli``), import =
    the verb's modules, work = the rest.
    """
    import importlib
    import os
    import time

    ticks = os.sysconf("SC_CLK_TCK")
    with open("/proc/self/stat") as fh:
        started = int(fh.read().rsplit(")", 1)[1].split()[19]) / ticks
    with open("/proc/uptime") as fh:
        startup = float(fh.read().split()[0]) - started
    start = time.perf_counter()
    for module in getattr(stages.load(args.verb), "IMPORTS", ()):
        importlib.import_module(module)
    imported = time.perf_counter()
    args.func(args)
    done = time.perf_counter()
    record = {"verb": args.verb, "argv": sys.argv[1:], "startup_seconds": round(startup, 3),
              "import_seconds": round(imported - start, 3), "work_seconds": round(done - imported, 3)}  # fmt: skip
    with open(log, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run one verb; user errors print one clear message (no traceback) and exit 1 (gate) or 2 (input)."""
    import os

    args = build_parser().parse_args(argv)
    try:
        if log := os.environ.get("IADBENCH_TIMING_LOG"):
            _timed(args, log)
        else:
            args.func(args)
    except GateFailed as exc:
        print(f"iadbench: {exc}", file=sys.stderr)
        return 1
    except IadbenchError as exc:
        print(f"iadbench {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
