"""How long each gate takes, before and after the gates became a Great Expectations project, on the same data.

    python benchmarks/gate_speed.py                  # baseline: the commit before the gx/ project (BASE)
    python benchmarks/gate_speed.py --base REV --repeats 3 --readme

Both revisions run ``iadbench gate NAME`` for every gate on a copy of this workspace's gate inputs (the manifest,
categories and split tables, ``data/maps``, ``reports/thresholds``, ``reports/evaluate``, ``reports/tables``,
``params.yaml`` and, for the new code, ``gx/``) in a scratch folder, so the workspace's DVC outputs are never
touched. The baseline runs from a ``git worktree`` of ``--base`` (``PYTHONPATH`` points at its ``src``), the new code
from this checkout, with this checkout's virtual environment. Each gate is a fresh process (as in ``dvc repro``);
the best of ``--repeats`` wall times is kept. Both must reach the same verdict (errors, warnings) on the same data.
Results: ``reports/bench/gate_speed.json`` and, with ``--readme``, the README block ``gate-speed``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from readme_blocks import PROJECT, replace_block, save_result

BASE = "dfd2f15"  # the last commit whose gates built their suites in code (issue 21, §5)
GATES = ["manifest", "categories", "split", "maps", "thresholds", "evaluate", "tables"]
INPUTS = ["params.yaml", "data/manifest.csv", "data/manifest_masks.csv", "data/manifest_segments.csv",
          "data/categories.csv", "data/split.csv", "data/assignment.csv", "data/maps", "reports/thresholds",
          "reports/evaluate", "reports/tables", "gx"]  # fmt: skip


def _copy_inputs(target: Path) -> None:
    for name in INPUTS:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("uncommitted"))
        elif source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
        else:
            sys.exit(f"{source}: missing; run `dvc repro` first (the benchmark reads the workspace's gate inputs)")


def _run_gate(gate: str, src: Path, cwd: Path) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "iadbench.cli", "gate", gate], cwd=cwd, env=env,
                          capture_output=True, text=True)  # fmt: skip
    seconds = time.perf_counter() - start
    result_file = cwd / "reports/gates" / f"{gate}.json"
    if not result_file.is_file():
        sys.exit(f"gate {gate} wrote no result in {cwd} (exit {done.returncode}):\n{done.stderr[-2000:]}")
    result = json.loads(result_file.read_text())
    return seconds, {"success": result["success"], "n_errors": result["n_errors"], "n_warnings": result["n_warnings"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=BASE, help=f"baseline revision (default {BASE})")
    parser.add_argument("--repeats", type=int, default=3, help="runs per gate and revision; the best is kept")
    parser.add_argument("--readme", action="store_true", help="write the README block gate-speed")
    args = parser.parse_args()
    home = Path.cwd()
    scratch = Path(tempfile.mkdtemp(prefix="gate_speed_"))
    base_tree = scratch / "base"
    subprocess.run(["git", "-C", str(PROJECT), "worktree", "add", "--detach", str(base_tree), args.base],
                   check=True, capture_output=True)  # fmt: skip
    head = subprocess.run(["git", "-C", str(PROJECT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    try:
        rows = []
        for label, src in (("before", base_tree / "src"), ("after", PROJECT / "src")):
            work = scratch / label
            _copy_inputs(work)
            for gate in GATES:
                times, verdict = [], {}
                for _ in range(args.repeats):
                    seconds, verdict = _run_gate(gate, src, work)
                    times.append(seconds)
                rows.append({"revision": label, "gate": gate, "seconds": round(min(times), 2), **verdict})
                print(f"{label:6s} {gate:10s} {min(times):6.2f} s  {verdict}", flush=True)
    finally:
        subprocess.run(["git", "-C", str(PROJECT), "worktree", "remove", "--force", str(base_tree)],
                       capture_output=True)  # fmt: skip
    by = {(r["revision"], r["gate"]): r for r in rows}
    table = []
    for gate in GATES:
        before, after = by[("before", gate)], by[("after", gate)]
        same = all(before[k] == after[k] for k in ("success", "n_errors", "n_warnings"))
        table.append({"gate": gate, "before": before["seconds"], "after": after["seconds"],
                      "ratio": round(after["seconds"] / before["seconds"], 2), "same_verdict": same})  # fmt: skip
    total_before, total_after = sum(r["before"] for r in table), sum(r["after"] for r in table)
    result = {"base": args.base, "head": head, "repeats": args.repeats, "gates": table,
              "total_before": round(total_before, 2), "total_after": round(total_after, 2),
              "ratio": round(total_after / total_before, 2)}  # fmt: skip
    out = save_result("gate_speed", result, home, scratch)
    print(f"total {total_before:.1f} s -> {total_after:.1f} s (x{result['ratio']}); {out}")
    if args.readme:
        lines = [
            f"From `python benchmarks/gate_speed.py --repeats {args.repeats}` (`reports/bench/gate_speed.json`): each "
            f"gate as one `iadbench gate NAME` process on the same inputs, `{args.base}` (suites built in code) vs "
            f"`{head}` (the `gx/` project), best of {args.repeats}, this machine (2 CPUs).",
            "",
            "| gate | before (s) | after (s) | after / before | same verdict |",
            "| --- | ---: | ---: | ---: | --- |",
            *[
                f"| {r['gate']} | {r['before']:.2f} | {r['after']:.2f} | {r['ratio']:.2f} | "
                f"{'yes' if r['same_verdict'] else 'NO'} |"
                for r in table
            ],  # fmt: skip
            f"| **all** | {total_before:.2f} | {total_after:.2f} | {result['ratio']:.2f} | |",
        ]
        replace_block("gate-speed", lines)


if __name__ == "__main__":
    main()
