"""``iadbench check``: check params.yaml (shape, then what the code behind each name needs); write
reports/gates/params.json.
"""

from __future__ import annotations

import argparse
import json

from iadbench.paths import gate_result

HELP = "check params.yaml: every key, type and range, and each model's options (before a run)"


def run(args: argparse.Namespace) -> None:
    """Check params.yaml (shape, then what the code behind each name needs); write reports/gates/params.json."""
    from iadbench.checks import check
    from iadbench.params import load_params

    check(load_params(args.params, complete=True), str(args.params))
    out = gate_result("params")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"file": str(args.params), "success": True}, indent=1) + "\n")
    print(f"{args.params}: every section, key and model option checked -> {out}")
