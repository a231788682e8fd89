"""``iadbench gate``: run one validation gate (a module of :mod:`iadbench.gates`); exit non-zero on any error-severity
violation.
"""

from __future__ import annotations

import argparse
import sys

from iadbench.errors import GateFailed
from iadbench.paths import gate_result
from iadbench.stages import read_params

HELP = "run a Great Expectations validation gate; exit 1 on any error"
IMPORTS = ("iadbench.gates", "great_expectations")  # imported before any work (GX lazily, ~2.5 s): preloaded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The verb's arguments."""
    parser.add_argument("gate", choices=gate_names(), help="the gate: one module of iadbench.gates")
    parser.add_argument("--max-lines", type=int, default=100, help="violations printed (all are in the JSON)")


def gate_names() -> list[str]:
    """The modules of :mod:`iadbench.gates`, listed without importing that package (every verb builds the parser,
    and a stage must import only what it uses: ``iadbench.depsclosure``).
    """
    import importlib.util
    import pkgutil

    loaded = sys.modules.get("iadbench.gates")  # already imported (a test may extend its __path__): ask it
    spec = importlib.util.find_spec("iadbench.gates") if loaded is None else None
    path = loaded.__path__ if loaded is not None else spec.submodule_search_locations
    return sorted(m.name for m in pkgutil.iter_modules(path) if not m.name.startswith("_"))


def run(args: argparse.Namespace) -> None:
    """Run one validation gate (a module of :mod:`iadbench.gates`); exit non-zero on any error-severity violation."""
    from iadbench import gates

    result = gates.load(args.gate).run(read_params(args))
    out = gate_result(args.gate)
    result.write(out)
    for violation in result.violations[: args.max_lines]:
        print(violation, file=sys.stderr)
    if len(result.violations) > args.max_lines:
        print(f"... {len(result.violations) - args.max_lines} more in {out}", file=sys.stderr)
    status = "passed" if result.success else "FAILED"
    print(f"gate {args.gate} {status}: {len(result.errors)} error(s), {len(result.warnings)} warning(s) -> {out}")
    if not result.success:
        raise GateFailed(f"gate {args.gate} failed; nothing downstream runs. Details: {out}")
